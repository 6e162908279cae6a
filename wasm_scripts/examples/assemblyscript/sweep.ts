// Temperature sweep in AssemblyScript: step the supply voltage, let the sample settle,
// read the thermometer (a table row: voltage, temperature). Arguments: volts_max, steps,
// settle_ms. However the run ends, its cleanup switches the supply off.
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
  if (rc < 0) return rc;
  rc = labd.result("temperature_rise", reading.value - first);
  return rc < 0 ? rc : 0;
}

function stepVoltage(
  psu: VoltageSource, thermo: TemperatureSensor, voltsMax: f64, steps: i32, settleMs: i32,
  reading: Reading,
): i32 {
  const row = new StaticArray<f64>(2);
  for (let i = 0; i < steps; i++) {
    const volts = (voltsMax * i) / (steps - 1);
    let rc = psu.setVoltage(volts);
    if (rc < 0) return rc;
    rc = labd.sleepMs(settleMs);
    if (rc < 0) return rc;
    rc = thermo.temperature(reading);
    if (rc < 0) return rc;
    row[0] = volts;
    row[1] = reading.value;
    rc = labd.row("voltage,temperature", row);
    if (rc < 0) return rc;
    rc = labd.checkpoint();
    if (rc < 0) return rc;
  }
  return 0;
}

/** Called after run() however it ended (an error, a trap, the deadline, a cancel). */
export function cleanup(): void {
  VoltageSource.open("psu").setVoltage(0);
  Switchable.open("psu").setOn(false);
  labd.info("supply off");
}
