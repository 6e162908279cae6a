// Stage scan in AssemblyScript: move across the beam, read the meter and snap the camera
// at each point (a table row: position, power, spot_x), report where the power peaked. Arguments: start, stop (mm), steps.
// Grants: stage:Movable meter:Readable camera:FrameProducer
import * as labd from "labd";
import { FrameProducer, FrameStats, Movable, Readable, Reading } from "labd";

export function run(): i32 {
  const stage = Movable.open("stage");
  if (stage.handle < 0) return stage.handle;
  const meter = Readable.open("meter");
  if (meter.handle < 0) return meter.handle;
  const camera = FrameProducer.open("camera");
  if (camera.handle < 0) return camera.handle;
  const start = labd.argF64("start", 2);
  const stop = labd.argF64("stop", 4);
  const steps = <i32>labd.argF64("steps", 21);
  if (steps < 2) return labd.E_INVAL;

  const position = new Reading();
  const power = new Reading();
  const stats = new FrameStats();
  const row = new StaticArray<f64>(3);
  let best = -Infinity, bestX = 0.0, bestSpot = 0.0;
  for (let i = 0; i < steps; i++) {
    let rc = stage.moveAbs(start + ((stop - start) * i) / (steps - 1));
    if (rc < 0) return rc;
    rc = stage.waitSettled(0, position);
    if (rc < 0) return rc;
    rc = meter.read(power);
    if (rc < 0) return rc;
    const frame = camera.snap();
    if (frame < 0) return frame;
    rc = labd.frameStats(frame, stats);
    labd.frameRelease(frame);
    if (rc < 0) return rc;
    row[0] = position.value;
    row[1] = power.value;
    row[2] = stats.centroid_x;
    rc = labd.row("position,power,spot_x", row);
    if (rc < 0) return rc;
    if (power.value > best) {
      best = power.value;
      bestX = position.value;
      bestSpot = stats.centroid_x;
    }
    rc = labd.checkpoint();
    if (rc < 0) return rc;
  }
  labd.info(`peak ${best} W at ${bestX} mm`);
  let rc = labd.result("peak_position", bestX);
  if (rc < 0) return rc;
  rc = labd.result("peak_power", best);
  if (rc < 0) return rc;
  rc = labd.result("spot_x_at_peak", bestSpot);
  return rc < 0 ? rc : 0;
}
