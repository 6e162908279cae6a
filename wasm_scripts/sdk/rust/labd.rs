//! Guest SDK for labd experiment scripts in Rust, ABI v1 (see wasm_scripts/ABI.md).
//!
//! `no_std`, no allocator. Build the SDK once as an rlib and link your script against it:
//!   rustc --edition 2021 --target wasm32-unknown-unknown --crate-type rlib -O labd.rs
//!   rustc --edition 2021 --target wasm32-unknown-unknown --crate-type cdylib -O \
//!         --extern labd=liblabd.rlib scan.rs
//! Your script exports `#[no_mangle] pub extern "C" fn run() -> i32`; return `status(result)`.
#![no_std]

/// An ABI error code (always < 0); see the `E_*` constants.
pub type Error = i32;
pub type Result<T> = core::result::Result<T, Error>;

pub const E_INVAL: Error = -1;
pub const E_NOTFOUND: Error = -2;
pub const E_KIND: Error = -3;
pub const E_BADHANDLE: Error = -4;
pub const E_FAULT: Error = -5;
pub const E_DEVICE: Error = -6;
pub const E_TIMEOUT: Error = -7;
pub const E_DENIED: Error = -8;
pub const E_TOOSMALL: Error = -9;
pub const E_CANCELLED: Error = -10;
pub const E_BUSY: Error = -11;
pub const E_LIMIT: Error = -12;

const MOVABLE: i32 = 1;
const STOPPABLE: i32 = 2;
const READABLE: i32 = 3;
const FRAME_PRODUCER: i32 = 4;
const EXPOSURE_CONTROL: i32 = 5;
const TEMPERATURE_SENSOR: i32 = 6;
const VOLTAGE_SOURCE: i32 = 7;
const SWITCHABLE: i32 = 8;
const CONFIGURABLE: i32 = 9;

#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct Reading {
    pub value: f64,
    pub timestamp: f64,
}

#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct Limits {
    pub low: f64,
    pub high: f64,
}

#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct FrameStats {
    pub width: u32,
    pub height: u32,
    pub seq: i64,
    pub timestamp: f64,
    pub sum: f64,
    pub min: f64,
    pub max: f64,
    pub centroid_x: f64,
    pub centroid_y: f64,
}

#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct SupplyReadback {
    pub voltage: f64,
    pub current: f64,
    pub timestamp: f64,
    pub in_compliance: i32,
    pub reserved: i32,
}

pub mod raw {
    //! The imports exactly as ABI v1 defines them.
    #[link(wasm_import_module = "labd_v1")]
    extern "C" {
        pub fn abi_version() -> i32;
        pub fn last_error(buf: *mut u8, cap: i32) -> i32;
        pub fn log(level: i32, ptr: *const u8, len: i32) -> i32;
        pub fn time_us() -> i64;
        pub fn sleep_ms(ms: i32) -> i32;
        pub fn checkpoint() -> i32;
        pub fn result_f64(name: *const u8, len: i32, value: f64) -> i32;
        pub fn arg_f64(name: *const u8, len: i32, out: *mut f64) -> i32;
        pub fn arg_str(name: *const u8, len: i32, buf: *mut u8, cap: i32) -> i32;
        pub fn cap_get(name: *const u8, len: i32, kind: i32) -> i32;
        pub fn movable_move_abs(h: i32, position: f64) -> i32;
        pub fn movable_move_rel(h: i32, delta: f64) -> i32;
        pub fn movable_position(h: i32, out: *mut u8, size: i32) -> i32;
        pub fn movable_wait_settled(h: i32, timeout_s: f64, out: *mut u8, size: i32) -> i32;
        pub fn movable_limits(h: i32, out: *mut u8, size: i32) -> i32;
        pub fn stoppable_stop(h: i32) -> i32;
        pub fn readable_read(h: i32, out: *mut u8, size: i32) -> i32;
        pub fn frame_snap(h: i32) -> i32;
        pub fn frame_stats(frame: i32, out: *mut u8, size: i32) -> i32;
        pub fn frame_copy(frame: i32, buf: *mut u8, cap: i32) -> i32;
        pub fn frame_release(frame: i32) -> i32;
        pub fn exposure_get(h: i32, out: *mut f64) -> i32;
        pub fn exposure_set(h: i32, seconds: f64) -> i32;
        pub fn temperature_read(h: i32, out: *mut u8, size: i32) -> i32;
        pub fn supply_set_voltage(h: i32, volts: f64) -> i32;
        pub fn supply_set_current_limit(h: i32, amps: f64) -> i32;
        pub fn supply_readback(h: i32, out: *mut u8, size: i32) -> i32;
        pub fn switch_set(h: i32, on: i32) -> i32;
        pub fn switch_get(h: i32) -> i32;
        pub fn param_get_f64(h: i32, name: *const u8, len: i32, out: *mut f64) -> i32;
        pub fn param_set_f64(h: i32, name: *const u8, len: i32, value: f64) -> i32;
        pub fn param_get_text(h: i32, name: *const u8, len: i32, buf: *mut u8, cap: i32) -> i32;
        pub fn param_set_text(h: i32, name: *const u8, len: i32, value: *const u8, value_len: i32) -> i32;
        pub fn result_row(names: *const u8, len: i32, values: *const f64, count: i32) -> i32;
    }
}

fn check(rc: i32) -> Result<i32> {
    if rc < 0 { Err(rc) } else { Ok(rc) }
}

fn out<T: Default>(f: impl FnOnce(*mut u8, i32) -> i32) -> Result<T> {
    let mut value = T::default();
    check(f(&mut value as *mut T as *mut u8, core::mem::size_of::<T>() as i32))?;
    Ok(value)
}

/// What `run` returns for a result: 0, or the error code.
pub fn status(result: Result<()>) -> i32 {
    match result {
        Ok(()) => 0,
        Err(code) => code,
    }
}

pub fn log(level: i32, text: &str) {
    unsafe { raw::log(level, text.as_ptr(), text.len() as i32) };
}
pub fn info(text: &str) {
    log(1, text)
}
/// Report a named result (published with the run's results).
pub fn result(name: &str, value: f64) -> Result<()> {
    check(unsafe { raw::result_f64(name.as_ptr(), name.len() as i32, value) }).map(|_| ())
}
/// Emit one row of a table: `names` comma-separated (`"x,power"`), one value each; the
/// first row fixes the columns. Returns the row's number.
pub fn row(names: &str, values: &[f64]) -> Result<i32> {
    check(unsafe { raw::result_row(names.as_ptr(), names.len() as i32, values.as_ptr(), values.len() as i32) })
}
/// A numeric `--arg name=value`, or None when it was not given or is not a number.
pub fn arg_f64(name: &str) -> Option<f64> {
    let mut v = 0.0;
    let rc = unsafe { raw::arg_f64(name.as_ptr(), name.len() as i32, &mut v) };
    if rc == 0 { Some(v) } else { None }
}
/// A text `--arg name=value` in `buf`, or None when it was not given or does not fit.
pub fn arg_str<'a>(name: &str, buf: &'a mut [u8]) -> Option<&'a str> {
    let n = unsafe { raw::arg_str(name.as_ptr(), name.len() as i32, buf.as_mut_ptr(), buf.len() as i32) };
    if n < 0 || n as usize > buf.len() {
        return None;
    }
    core::str::from_utf8(&buf[..n as usize]).ok()
}
/// A pause point: returns Err(E_CANCELLED) when the run is being stopped.
pub fn checkpoint() -> Result<()> {
    check(unsafe { raw::checkpoint() }).map(|_| ())
}
pub fn sleep_ms(ms: i32) -> Result<()> {
    check(unsafe { raw::sleep_ms(ms) }).map(|_| ())
}
pub fn time_us() -> i64 {
    unsafe { raw::time_us() }
}

fn open(name: &str, kind: i32) -> Result<i32> {
    check(unsafe { raw::cap_get(name.as_ptr(), name.len() as i32, kind) })
}

pub struct Movable(i32);
impl Movable {
    pub fn open(name: &str) -> Result<Self> {
        open(name, MOVABLE).map(Self)
    }
    pub fn move_abs(&self, position: f64) -> Result<()> {
        check(unsafe { raw::movable_move_abs(self.0, position) }).map(|_| ())
    }
    pub fn move_rel(&self, delta: f64) -> Result<()> {
        check(unsafe { raw::movable_move_rel(self.0, delta) }).map(|_| ())
    }
    pub fn position(&self) -> Result<Reading> {
        out(|p, n| unsafe { raw::movable_position(self.0, p, n) })
    }
    /// Wait until the axis is at rest; `timeout_s <= 0` uses the instrument's default.
    pub fn wait_settled(&self, timeout_s: f64) -> Result<Reading> {
        out(|p, n| unsafe { raw::movable_wait_settled(self.0, timeout_s, p, n) })
    }
    pub fn limits(&self) -> Result<Limits> {
        out(|p, n| unsafe { raw::movable_limits(self.0, p, n) })
    }
}

pub struct Stoppable(i32);
impl Stoppable {
    pub fn open(name: &str) -> Result<Self> {
        open(name, STOPPABLE).map(Self)
    }
    pub fn stop(&self) -> Result<()> {
        check(unsafe { raw::stoppable_stop(self.0) }).map(|_| ())
    }
}

pub struct Readable(i32);
impl Readable {
    pub fn open(name: &str) -> Result<Self> {
        open(name, READABLE).map(Self)
    }
    pub fn read(&self) -> Result<Reading> {
        out(|p, n| unsafe { raw::readable_read(self.0, p, n) })
    }
}

pub struct FrameProducer(i32);
impl FrameProducer {
    pub fn open(name: &str) -> Result<Self> {
        open(name, FRAME_PRODUCER).map(Self)
    }
    pub fn snap(&self) -> Result<Frame> {
        check(unsafe { raw::frame_snap(self.0) }).map(Frame)
    }
}

/// A frame held by the host; released when dropped.
pub struct Frame(i32);
impl Frame {
    pub fn stats(&self) -> Result<FrameStats> {
        out(|p, n| unsafe { raw::frame_stats(self.0, p, n) })
    }
    /// Copy the raw pixels into `buf`; returns the frame's total size in bytes.
    pub fn copy_into(&self, buf: &mut [u8]) -> Result<usize> {
        check(unsafe { raw::frame_copy(self.0, buf.as_mut_ptr(), buf.len() as i32) }).map(|n| n as usize)
    }
}
impl Drop for Frame {
    fn drop(&mut self) {
        unsafe { raw::frame_release(self.0) };
    }
}

pub struct ExposureControl(i32);
impl ExposureControl {
    pub fn open(name: &str) -> Result<Self> {
        open(name, EXPOSURE_CONTROL).map(Self)
    }
    pub fn exposure(&self) -> Result<f64> {
        let mut v = 0.0;
        check(unsafe { raw::exposure_get(self.0, &mut v) })?;
        Ok(v)
    }
    pub fn set_exposure(&self, seconds: f64) -> Result<()> {
        check(unsafe { raw::exposure_set(self.0, seconds) }).map(|_| ())
    }
}

pub struct TemperatureSensor(i32);
impl TemperatureSensor {
    pub fn open(name: &str) -> Result<Self> {
        open(name, TEMPERATURE_SENSOR).map(Self)
    }
    pub fn temperature(&self) -> Result<Reading> {
        out(|p, n| unsafe { raw::temperature_read(self.0, p, n) })
    }
}

pub struct VoltageSource(i32);
impl VoltageSource {
    pub fn open(name: &str) -> Result<Self> {
        open(name, VOLTAGE_SOURCE).map(Self)
    }
    pub fn set_voltage(&self, volts: f64) -> Result<()> {
        check(unsafe { raw::supply_set_voltage(self.0, volts) }).map(|_| ())
    }
    pub fn set_current_limit(&self, amps: f64) -> Result<()> {
        check(unsafe { raw::supply_set_current_limit(self.0, amps) }).map(|_| ())
    }
    pub fn readback(&self) -> Result<SupplyReadback> {
        out(|p, n| unsafe { raw::supply_readback(self.0, p, n) })
    }
}

pub struct Switchable(i32);
impl Switchable {
    pub fn open(name: &str) -> Result<Self> {
        open(name, SWITCHABLE).map(Self)
    }
    pub fn set_on(&self, on: bool) -> Result<()> {
        check(unsafe { raw::switch_set(self.0, on as i32) }).map(|_| ())
    }
    pub fn is_on(&self) -> Result<bool> {
        check(unsafe { raw::switch_get(self.0) }).map(|v| v != 0)
    }
}

/// An instrument's parameters by name: `meter.set_f64("wavelength", 1064.0)?`.
pub struct Configurable(i32);
impl Configurable {
    pub fn open(name: &str) -> Result<Self> {
        open(name, CONFIGURABLE).map(Self)
    }
    /// A number in the parameter's unit (a bool as 1.0/0.0); E_KIND for text and choices.
    pub fn get_f64(&self, name: &str) -> Result<f64> {
        let mut v = 0.0;
        check(unsafe { raw::param_get_f64(self.0, name.as_ptr(), name.len() as i32, &mut v) })?;
        Ok(v)
    }
    /// Set a number in the parameter's unit (a bool: nonzero is on).
    pub fn set_f64(&self, name: &str, value: f64) -> Result<()> {
        check(unsafe { raw::param_set_f64(self.0, name.as_ptr(), name.len() as i32, value) }).map(|_| ())
    }
    pub fn set_bool(&self, name: &str, on: bool) -> Result<()> {
        self.set_f64(name, if on { 1.0 } else { 0.0 })
    }
    /// The value as text ("1064 nm", "true", "auto") into `buf`; returns the text's total
    /// length, which is more than `buf.len()` when `buf` was too small.
    pub fn get_text(&self, name: &str, buf: &mut [u8]) -> Result<usize> {
        check(unsafe {
            raw::param_get_text(self.0, name.as_ptr(), name.len() as i32, buf.as_mut_ptr(), buf.len() as i32)
        })
        .map(|n| n as usize)
    }
    /// Set any kind from text: a quantity in any unit of its dimension ("1.064 um"), a
    /// bool word ("on"), a choice.
    pub fn set_text(&self, name: &str, value: &str) -> Result<()> {
        check(unsafe {
            raw::param_set_text(self.0, name.as_ptr(), name.len() as i32, value.as_ptr(), value.len() as i32)
        })
        .map(|_| ())
    }
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    log(3, "panic in the script");
    core::arch::wasm32::unreachable()
}
