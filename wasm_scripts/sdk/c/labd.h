/* labd.h — guest SDK for labd experiment scripts, ABI v1 (see wasm_scripts/ABI.md).
 *
 * Freestanding: needs no libc. Build with
 *   clang --target=wasm32 -O2 -nostdlib -Wl,--no-entry -Wl,--export=run -I wasm_scripts/sdk/c x.c -o x.wasm
 * Every fallible call returns an int32: >= 0 success, < 0 one of the LABD_E_* codes;
 * labd_last_error() gives the message. The host never allocates in your memory: outputs
 * go to buffers you own.
 */
#ifndef LABD_H
#define LABD_H

#include <stdint.h>

#define LABD_ABI_VERSION 1

/* error codes */
#define LABD_E_INVAL      (-1)
#define LABD_E_NOTFOUND   (-2)
#define LABD_E_KIND       (-3)
#define LABD_E_BADHANDLE  (-4)
#define LABD_E_FAULT      (-5)
#define LABD_E_DEVICE     (-6)
#define LABD_E_TIMEOUT    (-7)
#define LABD_E_DENIED     (-8)
#define LABD_E_TOOSMALL   (-9)
#define LABD_E_CANCELLED  (-10)
#define LABD_E_BUSY       (-11)
#define LABD_E_LIMIT      (-12)

/* capability kinds (third argument of labd_cap_get) */
#define LABD_MOVABLE             1
#define LABD_STOPPABLE           2
#define LABD_READABLE            3
#define LABD_FRAME_PRODUCER      4
#define LABD_EXPOSURE_CONTROL    5
#define LABD_TEMPERATURE_SENSOR  6
#define LABD_VOLTAGE_SOURCE      7
#define LABD_SWITCHABLE          8
#define LABD_CONFIGURABLE        9

/* log levels */
#define LABD_DEBUG 0
#define LABD_INFO  1
#define LABD_WARN  2
#define LABD_ERROR 3

/* structs: little-endian C layout; later versions only append fields */
typedef struct { double value; double timestamp; } labd_reading_v1;
typedef struct { double low; double high; } labd_limits_v1;
typedef struct {
    uint32_t width, height;
    int64_t seq;
    double timestamp, sum, min, max, centroid_x, centroid_y;
} labd_frame_stats_v1;
typedef struct {
    double voltage, current, timestamp;
    int32_t in_compliance, reserved;
} labd_supply_readback_v1;

#define LABD_IMPORT(name) __attribute__((import_module("labd_v1"), import_name(#name)))
/* Export a function under its name, e.g. `LABD_EXPORT(cleanup) void cleanup(void)`. */
#define LABD_EXPORT(name) __attribute__((export_name(#name)))

/* general */
LABD_IMPORT(abi_version) int32_t labd_abi_version(void);
LABD_IMPORT(last_error) int32_t labd_last_error(char *buf, int32_t cap);
LABD_IMPORT(log) int32_t labd_log(int32_t level, const char *text, int32_t len);
LABD_IMPORT(time_us) int64_t labd_time_us(void);
LABD_IMPORT(sleep_ms) int32_t labd_sleep_ms(int32_t ms);
LABD_IMPORT(checkpoint) int32_t labd_checkpoint(void);
LABD_IMPORT(result_f64) int32_t labd_result_f64(const char *name, int32_t len, double value);
LABD_IMPORT(arg_f64) int32_t labd_arg_f64(const char *name, int32_t len, double *out);
LABD_IMPORT(arg_str) int32_t labd_arg_str(const char *name, int32_t len, char *buf, int32_t cap);
LABD_IMPORT(cap_get) int32_t labd_cap_get(const char *name, int32_t len, int32_t kind);
/* Movable */
LABD_IMPORT(movable_move_abs) int32_t labd_movable_move_abs(int32_t h, double position);
LABD_IMPORT(movable_move_rel) int32_t labd_movable_move_rel(int32_t h, double delta);
LABD_IMPORT(movable_position) int32_t labd_movable_position(int32_t h, labd_reading_v1 *out, int32_t size);
LABD_IMPORT(movable_wait_settled) int32_t labd_movable_wait_settled(int32_t h, double timeout_s, labd_reading_v1 *out, int32_t size);
LABD_IMPORT(movable_limits) int32_t labd_movable_limits(int32_t h, labd_limits_v1 *out, int32_t size);
/* Stoppable */
LABD_IMPORT(stoppable_stop) int32_t labd_stoppable_stop(int32_t h);
/* Readable */
LABD_IMPORT(readable_read) int32_t labd_readable_read(int32_t h, labd_reading_v1 *out, int32_t size);
/* FrameProducer: frames stay in the host; ask for statistics, or copy the pixels */
LABD_IMPORT(frame_snap) int32_t labd_frame_snap(int32_t h);
LABD_IMPORT(frame_stats) int32_t labd_frame_stats(int32_t frame, labd_frame_stats_v1 *out, int32_t size);
LABD_IMPORT(frame_copy) int32_t labd_frame_copy(int32_t frame, void *buf, int32_t cap);
LABD_IMPORT(frame_release) int32_t labd_frame_release(int32_t frame);
/* ExposureControl */
LABD_IMPORT(exposure_get) int32_t labd_exposure_get(int32_t h, double *out);
LABD_IMPORT(exposure_set) int32_t labd_exposure_set(int32_t h, double seconds);
/* TemperatureSensor */
LABD_IMPORT(temperature_read) int32_t labd_temperature_read(int32_t h, labd_reading_v1 *out, int32_t size);
/* VoltageSource */
LABD_IMPORT(supply_set_voltage) int32_t labd_supply_set_voltage(int32_t h, double volts);
LABD_IMPORT(supply_set_current_limit) int32_t labd_supply_set_current_limit(int32_t h, double amps);
LABD_IMPORT(supply_readback) int32_t labd_supply_readback(int32_t h, labd_supply_readback_v1 *out, int32_t size);
/* Switchable */
LABD_IMPORT(switch_set) int32_t labd_switch_set(int32_t h, int32_t on);
LABD_IMPORT(switch_get) int32_t labd_switch_get(int32_t h);
/* Configurable: parameters by name. Numbers (and bools as 1/0) as f64 in the parameter's
 * unit; any kind as text, a number with its unit ("1064 nm"). Text output returns the
 * total length and fills min(cap, total) bytes. */
LABD_IMPORT(param_get_f64) int32_t labd_param_get_f64(int32_t h, const char *name, int32_t len, double *out);
LABD_IMPORT(param_set_f64) int32_t labd_param_set_f64(int32_t h, const char *name, int32_t len, double value);
LABD_IMPORT(param_get_text) int32_t labd_param_get_text(int32_t h, const char *name, int32_t len, char *buf, int32_t cap);
LABD_IMPORT(param_set_text) int32_t labd_param_set_text(int32_t h, const char *name, int32_t len, const char *value, int32_t value_len);
/* Tables: one row of named values, names comma-separated ("x,power"), one double each;
 * the first row fixes the columns. Returns the row's number. */
LABD_IMPORT(result_row) int32_t labd_result_row(const char *names, int32_t len, const double *values, int32_t count);

/* Conveniences for string literals. */
#define LABD_STR(s) (s), (int32_t)(sizeof(s) - 1)
#define labd_open(name, kind) labd_cap_get(LABD_STR(name), (kind))
#define labd_result(name, value) labd_result_f64(LABD_STR(name), (value))
#define labd_info(text) labd_log(LABD_INFO, LABD_STR(text))
/* A row from literal names and values: `LABD_ROW("x,power", x, p)`. */
#define LABD_ROW(names, ...) labd_result_row(LABD_STR(names), (const double[]){__VA_ARGS__}, \
    (int32_t)(sizeof((const double[]){__VA_ARGS__}) / sizeof(double)))
/* Return from run() with the code of a failed call: `LABD_TRY(labd_movable_move_abs(h, x));` */
#define LABD_TRY(call) do { int32_t labd_rc_ = (call); if (labd_rc_ < 0) return labd_rc_; } while (0)

/* Parameters by literal name: `labd_param_set(meter, "wavelength", 1064.0)`,
 * `labd_param_set_str(meter, "range", "auto")` (a string literal value). */
#define labd_param_get(h, name, out) labd_param_get_f64((h), LABD_STR(name), (out))
#define labd_param_set(h, name, value) labd_param_set_f64((h), LABD_STR(name), (value))
#define labd_param_set_str(h, name, text) labd_param_set_text((h), LABD_STR(name), LABD_STR(text))

static inline double labd_arg_or(const char *name, int32_t len, double fallback) {
    double v;
    return labd_arg_f64(name, len, &v) == 0 ? v : fallback;
}

#endif
