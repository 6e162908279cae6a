//! Guest SDK for labd experiment scripts in Zig, ABI v1 (see wasm_scripts/ABI.md).
//!
//! Build a script with this file as module "labd":
//!   python -m ziglang build-exe -target wasm32-freestanding -fno-entry -rdynamic -O ReleaseSmall \
//!       --dep labd -Mroot=scan.zig -Mlabd=labd.zig
//! The script exports `export fn run() i32` and returns `labd.status(result)`.

pub const Error = error{ Inval, NotFound, Kind, BadHandle, Fault, Device, Timeout, Denied, TooSmall, Cancelled, Busy, Limit, Unknown };

pub const Reading = extern struct { value: f64, timestamp: f64 };
pub const Limits = extern struct { low: f64, high: f64 };
pub const FrameStats = extern struct {
    width: u32,
    height: u32,
    seq: i64,
    timestamp: f64,
    sum: f64,
    min: f64,
    max: f64,
    centroid_x: f64,
    centroid_y: f64,
};
pub const SupplyReadback = extern struct { voltage: f64, current: f64, timestamp: f64, in_compliance: i32, reserved: i32 };

pub const Kind = enum(i32) { movable = 1, stoppable = 2, readable = 3, frame_producer = 4, exposure_control = 5, temperature_sensor = 6, voltage_source = 7, switchable = 8, configurable = 9 };

/// The imports exactly as ABI v1 defines them.
pub const raw = struct {
    pub extern "labd_v1" fn abi_version() i32;
    pub extern "labd_v1" fn last_error(buf: [*]u8, cap: i32) i32;
    pub extern "labd_v1" fn log(level: i32, ptr: [*]const u8, len: i32) i32;
    pub extern "labd_v1" fn time_us() i64;
    pub extern "labd_v1" fn sleep_ms(ms: i32) i32;
    pub extern "labd_v1" fn checkpoint() i32;
    pub extern "labd_v1" fn result_f64(name: [*]const u8, len: i32, value: f64) i32;
    pub extern "labd_v1" fn arg_f64(name: [*]const u8, len: i32, out: *f64) i32;
    pub extern "labd_v1" fn arg_str(name: [*]const u8, len: i32, buf: [*]u8, cap: i32) i32;
    pub extern "labd_v1" fn cap_get(name: [*]const u8, len: i32, kind: i32) i32;
    pub extern "labd_v1" fn movable_move_abs(h: i32, position: f64) i32;
    pub extern "labd_v1" fn movable_move_rel(h: i32, delta: f64) i32;
    pub extern "labd_v1" fn movable_position(h: i32, out: *Reading, size: i32) i32;
    pub extern "labd_v1" fn movable_wait_settled(h: i32, timeout_s: f64, out: *Reading, size: i32) i32;
    pub extern "labd_v1" fn movable_limits(h: i32, out: *Limits, size: i32) i32;
    pub extern "labd_v1" fn stoppable_stop(h: i32) i32;
    pub extern "labd_v1" fn readable_read(h: i32, out: *Reading, size: i32) i32;
    pub extern "labd_v1" fn frame_snap(h: i32) i32;
    pub extern "labd_v1" fn frame_stats(frame: i32, out: *FrameStats, size: i32) i32;
    pub extern "labd_v1" fn frame_copy(frame: i32, buf: [*]u8, cap: i32) i32;
    pub extern "labd_v1" fn frame_release(frame: i32) i32;
    pub extern "labd_v1" fn exposure_get(h: i32, out: *f64) i32;
    pub extern "labd_v1" fn exposure_set(h: i32, seconds: f64) i32;
    pub extern "labd_v1" fn temperature_read(h: i32, out: *Reading, size: i32) i32;
    pub extern "labd_v1" fn supply_set_voltage(h: i32, volts: f64) i32;
    pub extern "labd_v1" fn supply_set_current_limit(h: i32, amps: f64) i32;
    pub extern "labd_v1" fn supply_readback(h: i32, out: *SupplyReadback, size: i32) i32;
    pub extern "labd_v1" fn switch_set(h: i32, on: i32) i32;
    pub extern "labd_v1" fn switch_get(h: i32) i32;
    pub extern "labd_v1" fn param_get_f64(h: i32, name: [*]const u8, len: i32, out: *f64) i32;
    pub extern "labd_v1" fn param_set_f64(h: i32, name: [*]const u8, len: i32, value: f64) i32;
    pub extern "labd_v1" fn param_get_text(h: i32, name: [*]const u8, len: i32, buf: [*]u8, cap: i32) i32;
    pub extern "labd_v1" fn param_set_text(h: i32, name: [*]const u8, len: i32, value: [*]const u8, value_len: i32) i32;
    pub extern "labd_v1" fn result_row(names: [*]const u8, len: i32, values: [*]const f64, count: i32) i32;
};

fn check(rc: i32) Error!i32 {
    if (rc >= 0) return rc;
    return switch (rc) {
        -1 => Error.Inval,
        -2 => Error.NotFound,
        -3 => Error.Kind,
        -4 => Error.BadHandle,
        -5 => Error.Fault,
        -6 => Error.Device,
        -7 => Error.Timeout,
        -8 => Error.Denied,
        -9 => Error.TooSmall,
        -10 => Error.Cancelled,
        -11 => Error.Busy,
        -12 => Error.Limit,
        else => Error.Unknown,
    };
}

/// What `run` returns: 0, or the ABI code of the error.
pub fn status(outcome: Error!void) i32 {
    outcome catch |err| return switch (err) {
        Error.Inval => -1,
        Error.NotFound => -2,
        Error.Kind => -3,
        Error.BadHandle => -4,
        Error.Fault => -5,
        Error.Device => -6,
        Error.Timeout => -7,
        Error.Denied => -8,
        Error.TooSmall => -9,
        Error.Cancelled => -10,
        Error.Busy => -11,
        Error.Limit => -12,
        Error.Unknown => -1,
    };
    return 0;
}

pub fn log(level: i32, text: []const u8) void {
    _ = raw.log(level, text.ptr, @intCast(text.len));
}
pub fn result(name: []const u8, value: f64) Error!void {
    _ = try check(raw.result_f64(name.ptr, @intCast(name.len), value));
}
/// Emit one row of a table: `names` comma-separated ("x,power"), one value each; the
/// first row fixes the columns. Returns the row's number.
pub fn row(names: []const u8, values: []const f64) Error!i32 {
    return check(raw.result_row(names.ptr, @intCast(names.len), values.ptr, @intCast(values.len)));
}
/// A numeric `--arg name=value`, or null when not given or not a number.
pub fn argF64(name: []const u8) ?f64 {
    var v: f64 = 0;
    if (raw.arg_f64(name.ptr, @intCast(name.len), &v) != 0) return null;
    return v;
}
/// A text `--arg name=value` in `buf`, or null when not given or too long for `buf`.
pub fn argStr(name: []const u8, buf: []u8) ?[]u8 {
    const n = raw.arg_str(name.ptr, @intCast(name.len), buf.ptr, @intCast(buf.len));
    if (n < 0 or n > buf.len) return null;
    return buf[0..@intCast(n)];
}
pub fn checkpoint() Error!void {
    _ = try check(raw.checkpoint());
}
pub fn sleepMs(ms: i32) Error!void {
    _ = try check(raw.sleep_ms(ms));
}

fn open(name: []const u8, kind: Kind) Error!i32 {
    return check(raw.cap_get(name.ptr, @intCast(name.len), @intFromEnum(kind)));
}

pub const Movable = struct {
    h: i32,
    pub fn open_(name: []const u8) Error!Movable {
        return .{ .h = try open(name, .movable) };
    }
    pub fn moveAbs(self: Movable, target: f64) Error!void {
        _ = try check(raw.movable_move_abs(self.h, target));
    }
    pub fn moveRel(self: Movable, delta: f64) Error!void {
        _ = try check(raw.movable_move_rel(self.h, delta));
    }
    pub fn position(self: Movable) Error!Reading {
        var r: Reading = undefined;
        _ = try check(raw.movable_position(self.h, &r, @sizeOf(Reading)));
        return r;
    }
    /// Wait until at rest; `timeout_s <= 0` uses the instrument's default.
    pub fn waitSettled(self: Movable, timeout_s: f64) Error!Reading {
        var r: Reading = undefined;
        _ = try check(raw.movable_wait_settled(self.h, timeout_s, &r, @sizeOf(Reading)));
        return r;
    }
};

pub const Readable = struct {
    h: i32,
    pub fn open_(name: []const u8) Error!Readable {
        return .{ .h = try open(name, .readable) };
    }
    pub fn read(self: Readable) Error!Reading {
        var r: Reading = undefined;
        _ = try check(raw.readable_read(self.h, &r, @sizeOf(Reading)));
        return r;
    }
};

pub const Frame = struct {
    h: i32,
    pub fn stats(self: Frame) Error!FrameStats {
        var s: FrameStats = undefined;
        _ = try check(raw.frame_stats(self.h, &s, @sizeOf(FrameStats)));
        return s;
    }
    pub fn release(self: Frame) void {
        _ = raw.frame_release(self.h);
    }
};

pub const FrameProducer = struct {
    h: i32,
    pub fn open_(name: []const u8) Error!FrameProducer {
        return .{ .h = try open(name, .frame_producer) };
    }
    pub fn snap(self: FrameProducer) Error!Frame {
        return .{ .h = try check(raw.frame_snap(self.h)) };
    }
};

pub const TemperatureSensor = struct {
    h: i32,
    pub fn open_(name: []const u8) Error!TemperatureSensor {
        return .{ .h = try open(name, .temperature_sensor) };
    }
    pub fn temperature(self: TemperatureSensor) Error!Reading {
        var r: Reading = undefined;
        _ = try check(raw.temperature_read(self.h, &r, @sizeOf(Reading)));
        return r;
    }
};

pub const VoltageSource = struct {
    h: i32,
    pub fn open_(name: []const u8) Error!VoltageSource {
        return .{ .h = try open(name, .voltage_source) };
    }
    pub fn setVoltage(self: VoltageSource, volts: f64) Error!void {
        _ = try check(raw.supply_set_voltage(self.h, volts));
    }
    pub fn readback(self: VoltageSource) Error!SupplyReadback {
        var r: SupplyReadback = undefined;
        _ = try check(raw.supply_readback(self.h, &r, @sizeOf(SupplyReadback)));
        return r;
    }
};

pub const Switchable = struct {
    h: i32,
    pub fn open_(name: []const u8) Error!Switchable {
        return .{ .h = try open(name, .switchable) };
    }
    pub fn setOn(self: Switchable, on: bool) Error!void {
        _ = try check(raw.switch_set(self.h, @intFromBool(on)));
    }
    pub fn isOn(self: Switchable) Error!bool {
        return (try check(raw.switch_get(self.h))) != 0;
    }
};

/// An instrument's parameters by name: `try meter.setF64("wavelength", 1064)`.
pub const Configurable = struct {
    h: i32,
    pub fn open_(name: []const u8) Error!Configurable {
        return .{ .h = try open(name, .configurable) };
    }
    /// A number in the parameter's unit (a bool as 1/0); Error.Kind for text and choices.
    pub fn getF64(self: Configurable, name: []const u8) Error!f64 {
        var v: f64 = 0;
        _ = try check(raw.param_get_f64(self.h, name.ptr, @intCast(name.len), &v));
        return v;
    }
    /// Set a number in the parameter's unit (a bool: nonzero is on).
    pub fn setF64(self: Configurable, name: []const u8, value: f64) Error!void {
        _ = try check(raw.param_set_f64(self.h, name.ptr, @intCast(name.len), value));
    }
    /// The value as text ("1064 nm", "true", "auto") in `buf`: the part that fits (the
    /// whole text is longer when the returned slice fills `buf`).
    pub fn getText(self: Configurable, name: []const u8, buf: []u8) Error![]u8 {
        const n = try check(raw.param_get_text(self.h, name.ptr, @intCast(name.len), buf.ptr, @intCast(buf.len)));
        return buf[0..@min(@as(usize, @intCast(n)), buf.len)];
    }
    /// Set any kind from text: a quantity ("1.064 um"), a bool word ("on"), a choice.
    pub fn setText(self: Configurable, name: []const u8, value: []const u8) Error!void {
        _ = try check(raw.param_set_text(self.h, name.ptr, @intCast(name.len), value.ptr, @intCast(value.len)));
    }
};
