package labd

import "unsafe"

// The imports exactly as ABI v1 defines them (wasm_scripts/ABI.md), named as there.
// A string parameter crosses as the ABI's (ptr, len) pair; buffers and struct outputs
// cross as a pointer into the guest's memory and a length.

//go:wasmimport labd_v1 abi_version
func abi_version() int32

//go:wasmimport labd_v1 last_error
func last_error(buf *byte, size int32) int32

//go:wasmimport labd_v1 log
func log(level int32, text string) int32

//go:wasmimport labd_v1 time_us
func time_us() int64

//go:wasmimport labd_v1 sleep_ms
func sleep_ms(ms int32) int32

//go:wasmimport labd_v1 checkpoint
func checkpoint() int32

//go:wasmimport labd_v1 result_f64
func result_f64(name string, value float64) int32

//go:wasmimport labd_v1 arg_f64
func arg_f64(name string, out *float64) int32

//go:wasmimport labd_v1 arg_str
func arg_str(name string, buf *byte, size int32) int32

//go:wasmimport labd_v1 cap_get
func cap_get(name string, kind int32) int32

//go:wasmimport labd_v1 movable_move_abs
func movable_move_abs(h int32, position float64) int32

//go:wasmimport labd_v1 movable_move_rel
func movable_move_rel(h int32, delta float64) int32

//go:wasmimport labd_v1 movable_position
func movable_position(h int32, out unsafe.Pointer, size int32) int32

//go:wasmimport labd_v1 movable_wait_settled
func movable_wait_settled(h int32, timeoutS float64, out unsafe.Pointer, size int32) int32

//go:wasmimport labd_v1 movable_limits
func movable_limits(h int32, out unsafe.Pointer, size int32) int32

//go:wasmimport labd_v1 stoppable_stop
func stoppable_stop(h int32) int32

//go:wasmimport labd_v1 readable_read
func readable_read(h int32, out unsafe.Pointer, size int32) int32

//go:wasmimport labd_v1 frame_snap
func frame_snap(h int32) int32

//go:wasmimport labd_v1 frame_stats
func frame_stats(frame int32, out unsafe.Pointer, size int32) int32

//go:wasmimport labd_v1 frame_copy
func frame_copy(frame int32, buf *byte, size int32) int32

//go:wasmimport labd_v1 frame_release
func frame_release(frame int32) int32

//go:wasmimport labd_v1 exposure_get
func exposure_get(h int32, out *float64) int32

//go:wasmimport labd_v1 exposure_set
func exposure_set(h int32, seconds float64) int32

//go:wasmimport labd_v1 temperature_read
func temperature_read(h int32, out unsafe.Pointer, size int32) int32

//go:wasmimport labd_v1 supply_set_voltage
func supply_set_voltage(h int32, volts float64) int32

//go:wasmimport labd_v1 supply_set_current_limit
func supply_set_current_limit(h int32, amps float64) int32

//go:wasmimport labd_v1 supply_readback
func supply_readback(h int32, out unsafe.Pointer, size int32) int32

//go:wasmimport labd_v1 switch_set
func switch_set(h int32, on int32) int32

//go:wasmimport labd_v1 switch_get
func switch_get(h int32) int32

//go:wasmimport labd_v1 param_get_f64
func param_get_f64(h int32, name string, out *float64) int32

//go:wasmimport labd_v1 param_set_f64
func param_set_f64(h int32, name string, value float64) int32

//go:wasmimport labd_v1 param_get_text
func param_get_text(h int32, name string, buf *byte, size int32) int32

//go:wasmimport labd_v1 param_set_text
func param_set_text(h int32, name string, value string) int32

//go:wasmimport labd_v1 result_row
func result_row(names string, values *float64, count int32) int32
