// Temperature sweep in AssemblyScript: step the supply voltage, let the sample settle,
// read the thermometer. Arguments: volts_max, steps, settle_ms.
// Grants: psu:VoltageSource,Switchable thermo:TemperatureSensor
import * as labd from "labd";
import { Reading, Switchable, TemperatureSensor, VoltageSource } from "labd";

export function run(): i32 {
  const psu = VoltageSource.open("psu");
  if (psu.handle < 0) return psu.handle;
  const output = Switchable.open("psu");
  if (output.handle < 0) return output.handle;
  const thermo = TemperatureSensor.open("thermo");
  if (thermo.handle < 0) return thermo.handle;
  const voltsMax = labd.argF64("volts_max", 5);
  const steps = <i32>labd.argF64("steps", 6);
  const settleMs = <i32>labd.argF64("settle_ms", 200);
  if (steps < 2) return labd.E_INVAL;

  const reading = new Reading();
  let rc = thermo.temperature(reading);
  if (rc < 0) return rc;
  const first = reading.value;
  rc = output.setOn(true);
  if (rc < 0) return rc;
  rc = stepVoltage(psu, thermo, voltsMax, steps, settleMs, reading);
  // However the sweep ended, leave the sample unpowered.
  const off = min(psu.setVoltage(0), output.setOn(false));
  if (rc < 0) return rc;
  if (off < 0) return off;
  rc = labd.result("temperature_rise", reading.value - first);
  return rc < 0 ? rc : 0;
}

function stepVoltage(
  psu: VoltageSource, thermo: TemperatureSensor, voltsMax: f64, steps: i32, settleMs: i32,
  reading: Reading,
): i32 {
  for (let i = 0; i < steps; i++) {
    let rc = psu.setVoltage((voltsMax * i) / (steps - 1));
    if (rc < 0) return rc;
    rc = labd.sleepMs(settleMs);
    if (rc < 0) return rc;
    rc = thermo.temperature(reading);
    if (rc < 0) return rc;
    rc = labd.result("temperature", reading.value);
    if (rc < 0) return rc;
    rc = labd.checkpoint();
    if (rc < 0) return rc;
  }
  return 0;
}
