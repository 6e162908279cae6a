//! Temperature sweep in Rust: step the supply voltage, let the sample settle, read the
//! thermometer (a table row: voltage, temperature). Arguments: volts_max, steps, settle_ms.
//! However the run ends, its cleanup switches the supply off.
//! Grants: psu:VoltageSource,Switchable thermo:TemperatureSensor
#![no_std]

use labd::{Result, Switchable, TemperatureSensor, VoltageSource};

fn sweep() -> Result<()> {
    let psu = VoltageSource::open("psu")?;
    let output = Switchable::open("psu")?;
    let thermo = TemperatureSensor::open("thermo")?;
    let volts_max = labd::arg_f64("volts_max").unwrap_or(5.0);
    let steps = labd::arg_f64("steps").unwrap_or(6.0) as i32;
    let settle_ms = labd::arg_f64("settle_ms").unwrap_or(200.0) as i32;
    if steps < 2 {
        return Err(labd::E_INVAL);
    }
    let first = thermo.temperature()?.value;
    let mut last = first;
    output.set_on(true)?;
    for i in 0..steps {
        let volts = volts_max * i as f64 / (steps - 1) as f64;
        psu.set_voltage(volts)?;
        labd::sleep_ms(settle_ms)?;
        last = thermo.temperature()?.value;
        labd::row("voltage,temperature", &[volts, last])?;
        labd::checkpoint()?;
    }
    labd::result("temperature_rise", last - first)
}

#[no_mangle]
pub extern "C" fn run() -> i32 {
    labd::status(sweep())
}

/// Called after `run` however it ended (an error, a trap, the deadline, a cancel).
#[no_mangle]
pub extern "C" fn cleanup() {
    if let Ok(psu) = VoltageSource::open("psu") {
        let _ = psu.set_voltage(0.0);
    }
    if let Ok(output) = Switchable::open("psu") {
        let _ = output.set_on(false);
    }
    labd::info("supply off");
}
