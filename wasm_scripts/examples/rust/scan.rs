//! Stage scan in Rust: move across the beam, read the meter and snap the camera at each
//! point (a table row: position, power, spot_x), report where the power peaked. Arguments: start, stop (mm), steps.
//! Grants: stage:Movable meter:Readable camera:FrameProducer
#![no_std]

use labd::{FrameProducer, Movable, Readable, Result};

fn scan() -> Result<()> {
    let stage = Movable::open("stage")?;
    let meter = Readable::open("meter")?;
    let camera = FrameProducer::open("camera")?;
    let start = labd::arg_f64("start").unwrap_or(2.0);
    let stop = labd::arg_f64("stop").unwrap_or(4.0);
    let steps = labd::arg_f64("steps").unwrap_or(21.0) as i32;
    if steps < 2 {
        return Err(labd::E_INVAL);
    }
    let (mut best, mut best_x, mut best_spot) = (f64::MIN, 0.0, 0.0);
    for i in 0..steps {
        stage.move_abs(start + (stop - start) * i as f64 / (steps - 1) as f64)?;
        let position = stage.wait_settled(0.0)?;
        let power = meter.read()?;
        let stats = camera.snap()?.stats()?;
        labd::row("position,power,spot_x", &[position.value, power.value, stats.centroid_x])?;
        if power.value > best {
            best = power.value;
            best_x = position.value;
            best_spot = stats.centroid_x;
        }
        labd::checkpoint()?;
    }
    labd::result("peak_position", best_x)?;
    labd::result("peak_power", best)?;
    labd::result("spot_x_at_peak", best_spot)
}

#[no_mangle]
pub extern "C" fn run() -> i32 {
    labd::status(scan())
}
