// Package labd is the guest SDK for labd experiment scripts in Go, ABI v1
// (see wasm_scripts/ABI.md).
//
// A script is a main package built as a WASI reactor that exports run:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o scan.wasm
//
//	//go:wasmexport run
//	func run() int32 { return labd.Status(scan()) }
//
//	func main() {} // required, never called
//
// `labd run scan.go` does that build for you. fmt.Println and the log package write to the
// run's log (stdout as info, stderr as warn), and time.Sleep is cancellable like SleepMs.
package labd

import (
	"errors"
	"strconv"
	"structs"
	"unsafe"
)

// Errno is an ABI error code (always < 0). A failed call returns an *Error that wraps
// one, so errors.Is(err, labd.ECANCELLED) tells a stop from a failure.
type Errno int32

const (
	EINVAL     Errno = -1
	ENOTFOUND  Errno = -2
	EKIND      Errno = -3
	EBADHANDLE Errno = -4
	EFAULT     Errno = -5
	EDEVICE    Errno = -6
	ETIMEOUT   Errno = -7
	EDENIED    Errno = -8
	ETOOSMALL  Errno = -9
	ECANCELLED Errno = -10
	EBUSY      Errno = -11
	ELIMIT     Errno = -12
)

var errnoNames = map[Errno]string{
	EINVAL: "E_INVAL", ENOTFOUND: "E_NOTFOUND", EKIND: "E_KIND", EBADHANDLE: "E_BADHANDLE",
	EFAULT: "E_FAULT", EDEVICE: "E_DEVICE", ETIMEOUT: "E_TIMEOUT", EDENIED: "E_DENIED",
	ETOOSMALL: "E_TOOSMALL", ECANCELLED: "E_CANCELLED", EBUSY: "E_BUSY", ELIMIT: "E_LIMIT",
}

func (e Errno) Error() string {
	if name, ok := errnoNames[e]; ok {
		return name
	}
	return "labd error " + strconv.Itoa(int(e))
}

// Error is a failed call: its code and the host's message for it (last_error), read
// at once because the next failure replaces it.
type Error struct {
	Code    Errno
	Message string
}

func (e *Error) Error() string {
	if e.Message == "" {
		return e.Code.Error()
	}
	return e.Code.Error() + ": " + e.Message
}

func (e *Error) Unwrap() error { return e.Code }

const (
	kindMovable           = 1
	kindStoppable         = 2
	kindReadable          = 3
	kindFrameProducer     = 4
	kindExposureControl   = 5
	kindTemperatureSensor = 6
	kindVoltageSource     = 7
	kindSwitchable        = 8
	kindConfigurable      = 9
)

// Log levels for Log.
const (
	LevelDebug int32 = 0
	LevelInfo  int32 = 1
	LevelWarn  int32 = 2
	LevelError int32 = 3
)

// Reading is labd_reading_v1: a value and when it was taken (s since the Unix epoch).
type Reading struct {
	_         structs.HostLayout
	Value     float64
	Timestamp float64
}

// Limits is labd_limits_v1.
type Limits struct {
	_    structs.HostLayout
	Low  float64
	High float64
}

// FrameStats is labd_frame_stats_v1; the centroid is in pixels, background-subtracted.
type FrameStats struct {
	_         structs.HostLayout
	Width     uint32
	Height    uint32
	Seq       int64
	Timestamp float64
	Sum       float64
	Min       float64
	Max       float64
	CentroidX float64
	CentroidY float64
}

// SupplyReadback is labd_supply_readback_v1.
type SupplyReadback struct {
	_            structs.HostLayout
	Voltage      float64
	Current      float64
	Timestamp    float64
	InCompliance int32
	Reserved     int32
}

func check(rc int32) (int32, error) {
	if rc >= 0 {
		return rc, nil
	}
	return rc, &Error{Code: Errno(rc), Message: LastError()}
}

func checked(rc int32) error {
	_, err := check(rc)
	return err
}

// out calls an import that fills a versioned struct in the caller's memory.
func out[T any](call func(out unsafe.Pointer, size int32) int32) (T, error) {
	var value T
	_, err := check(call(unsafe.Pointer(&value), int32(unsafe.Sizeof(value))))
	return value, err
}

// Status is what run returns for err: 0 for nil, the code of a labd error, and 1 (a
// script error) for any other error, whose text goes to the log first.
func Status(err error) int32 {
	if err == nil {
		return 0
	}
	var code Errno
	if errors.As(err, &code) {
		return int32(code)
	}
	Log(LevelError, err.Error())
	return 1
}

// AbiVersion is the ABI the daemon speaks (1).
func AbiVersion() int32 { return abi_version() }

// LastError is the message of the most recent failed call.
func LastError() string {
	var buf [256]byte
	n := last_error(&buf[0], int32(len(buf)))
	if n <= 0 {
		return ""
	}
	if int(n) <= len(buf) {
		return string(buf[:n])
	}
	long := make([]byte, n)
	n = last_error(&long[0], int32(len(long)))
	return string(long[:min(int(n), len(long))])
}

// Log writes a line to the run's log at level (LevelDebug … LevelError).
func Log(level int32, text string) { log(level, text) }

// Result reports a named result, published with the run's results.
func Result(name string, value float64) error { return checked(result_f64(name, value)) }

// Row emits one row of a table: names comma-separated ("x,power"), one value each; the
// first row fixes the columns.
func Row(names string, values ...float64) error {
	var first *float64
	if len(values) > 0 {
		first = &values[0]
	}
	return checked(result_row(names, first, int32(len(values))))
}

// ArgF64 is the numeric --arg name=value; false when not given or not a number.
func ArgF64(name string) (float64, bool) {
	var v float64
	return v, arg_f64(name, &v) == 0
}

// ArgF64Or is ArgF64, or fallback when the argument was not given.
func ArgF64Or(name string, fallback float64) float64 {
	if v, ok := ArgF64(name); ok {
		return v
	}
	return fallback
}

// ArgStr is --arg name=value as text; false when not given.
func ArgStr(name string) (string, bool) {
	var small [1]byte
	n := arg_str(name, &small[0], 0)
	if n < 0 {
		return "", false
	}
	if n == 0 {
		return "", true
	}
	buf := make([]byte, n)
	arg_str(name, &buf[0], n)
	return string(buf), true
}

// Checkpoint is a pause point; it returns ECANCELLED when the run is being stopped.
func Checkpoint() error { return checked(checkpoint()) }

// SleepMs sleeps in the host, cancellably (time.Sleep is cancellable too).
func SleepMs(ms int32) error { return checked(sleep_ms(ms)) }

// TimeUs is the wall clock in µs since the Unix epoch.
func TimeUs() int64 { return time_us() }

func open(name string, kind int32) (int32, error) { return check(cap_get(name, kind)) }

type Movable struct{ h int32 }

func OpenMovable(name string) (Movable, error) {
	h, err := open(name, kindMovable)
	return Movable{h}, err
}

// MoveAbs returns once the move is commanded; see WaitSettled.
func (m Movable) MoveAbs(position float64) error {
	return checked(movable_move_abs(m.h, position))
}

func (m Movable) MoveRel(delta float64) error { return checked(movable_move_rel(m.h, delta)) }

func (m Movable) Position() (Reading, error) {
	return out[Reading](func(p unsafe.Pointer, n int32) int32 { return movable_position(m.h, p, n) })
}

// WaitSettled waits until the axis is at rest; timeoutS <= 0 uses the instrument's default.
func (m Movable) WaitSettled(timeoutS float64) (Reading, error) {
	return out[Reading](func(p unsafe.Pointer, n int32) int32 {
		return movable_wait_settled(m.h, timeoutS, p, n)
	})
}

func (m Movable) Limits() (Limits, error) {
	return out[Limits](func(p unsafe.Pointer, n int32) int32 { return movable_limits(m.h, p, n) })
}

type Stoppable struct{ h int32 }

func OpenStoppable(name string) (Stoppable, error) {
	h, err := open(name, kindStoppable)
	return Stoppable{h}, err
}

func (s Stoppable) Stop() error { return checked(stoppable_stop(s.h)) }

type Readable struct{ h int32 }

func OpenReadable(name string) (Readable, error) {
	h, err := open(name, kindReadable)
	return Readable{h}, err
}

func (r Readable) Read() (Reading, error) {
	return out[Reading](func(p unsafe.Pointer, n int32) int32 { return readable_read(r.h, p, n) })
}

type FrameProducer struct{ h int32 }

func OpenFrameProducer(name string) (FrameProducer, error) {
	h, err := open(name, kindFrameProducer)
	return FrameProducer{h}, err
}

// Snap takes a frame; its pixels stay in the host until Release (at most 8 held).
func (c FrameProducer) Snap() (Frame, error) {
	h, err := check(frame_snap(c.h))
	return Frame{h}, err
}

// Frame is a frame held by the host; Release it when done.
type Frame struct{ h int32 }

func (f Frame) Stats() (FrameStats, error) {
	return out[FrameStats](func(p unsafe.Pointer, n int32) int32 { return frame_stats(f.h, p, n) })
}

// CopyInto copies the raw pixels (row-major, native dtype) into buf and returns the
// frame's total size in bytes, which is more than len(buf) when buf was too small.
func (f Frame) CopyInto(buf []byte) (int, error) {
	var ptr *byte
	if len(buf) > 0 {
		ptr = &buf[0]
	}
	n, err := check(frame_copy(f.h, ptr, int32(len(buf))))
	return int(n), err
}

func (f Frame) Release() error { return checked(frame_release(f.h)) }

type ExposureControl struct{ h int32 }

func OpenExposureControl(name string) (ExposureControl, error) {
	h, err := open(name, kindExposureControl)
	return ExposureControl{h}, err
}

// Exposure is the exposure time in seconds.
func (e ExposureControl) Exposure() (float64, error) {
	var v float64
	_, err := check(exposure_get(e.h, &v))
	return v, err
}

func (e ExposureControl) SetExposure(seconds float64) error {
	return checked(exposure_set(e.h, seconds))
}

type TemperatureSensor struct{ h int32 }

func OpenTemperatureSensor(name string) (TemperatureSensor, error) {
	h, err := open(name, kindTemperatureSensor)
	return TemperatureSensor{h}, err
}

// Temperature is in kelvin unless the instrument says otherwise.
func (t TemperatureSensor) Temperature() (Reading, error) {
	return out[Reading](func(p unsafe.Pointer, n int32) int32 { return temperature_read(t.h, p, n) })
}

type VoltageSource struct{ h int32 }

func OpenVoltageSource(name string) (VoltageSource, error) {
	h, err := open(name, kindVoltageSource)
	return VoltageSource{h}, err
}

func (v VoltageSource) SetVoltage(volts float64) error {
	return checked(supply_set_voltage(v.h, volts))
}

func (v VoltageSource) SetCurrentLimit(amps float64) error {
	return checked(supply_set_current_limit(v.h, amps))
}

func (v VoltageSource) Readback() (SupplyReadback, error) {
	return out[SupplyReadback](func(p unsafe.Pointer, n int32) int32 { return supply_readback(v.h, p, n) })
}

type Switchable struct{ h int32 }

func OpenSwitchable(name string) (Switchable, error) {
	h, err := open(name, kindSwitchable)
	return Switchable{h}, err
}

func (s Switchable) SetOn(on bool) error {
	var v int32
	if on {
		v = 1
	}
	return checked(switch_set(s.h, v))
}

func (s Switchable) IsOn() (bool, error) {
	v, err := check(switch_get(s.h))
	return v == 1, err
}

// Configurable is an instrument's parameters by name.
type Configurable struct{ h int32 }

func OpenConfigurable(name string) (Configurable, error) {
	h, err := open(name, kindConfigurable)
	return Configurable{h}, err
}

// GetF64 is a number in the parameter's unit (a bool as 1/0); EKIND for text and choices.
func (c Configurable) GetF64(name string) (float64, error) {
	var v float64
	_, err := check(param_get_f64(c.h, name, &v))
	return v, err
}

// SetF64 sets a number in the parameter's unit (a bool: nonzero is on).
func (c Configurable) SetF64(name string, value float64) error {
	return checked(param_set_f64(c.h, name, value))
}

// GetText is the value as text: "1064 nm" (a number with its unit), "true", "auto".
func (c Configurable) GetText(name string) (string, error) {
	var small [64]byte
	n, err := check(param_get_text(c.h, name, &small[0], int32(len(small))))
	if err != nil {
		return "", err
	}
	if int(n) <= len(small) {
		return string(small[:n]), nil
	}
	buf := make([]byte, n)
	n, err = check(param_get_text(c.h, name, &buf[0], n))
	if err != nil {
		return "", err
	}
	return string(buf[:min(int(n), len(buf))]), nil
}

// SetText sets any kind from text: a quantity in any unit of its dimension ("1.064 um"),
// a bool word ("on"), a choice.
func (c Configurable) SetText(name string, value string) error {
	return checked(param_set_text(c.h, name, value))
}
