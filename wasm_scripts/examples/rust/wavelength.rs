//! Parameters in Rust: tune the power meter's wavelength correction, read the power
//! there, and leave the meter as it was found. Arguments: wavelength (a quantity, "1064 nm"
//! or "1.064 um"; default 1064 nm). Grants: meter:Configurable,Readable
#![no_std]

use labd::{Configurable, Readable, Result};

fn tune() -> Result<()> {
    let meter = Configurable::open("meter")?;
    let sensor = Readable::open("meter")?;
    let mut arg = [0u8; 64];
    let wanted = labd::arg_str("wavelength", &mut arg).unwrap_or("1064 nm");

    let before = meter.get_f64("wavelength")?;
    // text takes a quantity in any length unit; the meter's unit is nm
    meter.set_text("wavelength", wanted)?;
    let now = meter.get_f64("wavelength")?;
    let mut text = [0u8; 64];
    let n = meter.get_text("wavelength", &mut text)?.min(text.len());
    labd::info(core::str::from_utf8(&text[..n]).unwrap_or("?"));

    let power = sensor.read()?;
    labd::result("wavelength", now)?;
    labd::result("power", power.value)?;
    meter.set_f64("wavelength", before)?;
    labd::result("restored", before)
}

#[no_mangle]
pub extern "C" fn run() -> i32 {
    labd::status(tune())
}
