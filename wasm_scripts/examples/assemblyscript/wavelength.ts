// Parameters in AssemblyScript: tune the power meter's wavelength correction, read the
// power there, and leave the meter as it was found. Arguments: wavelength (a quantity,
// "1064 nm" or "1.064 um"; default 1064 nm). Grants: meter:Configurable,Readable
import * as labd from "labd";
import { Configurable, Readable, Reading } from "labd";

export function run(): i32 {
  const meter = Configurable.open("meter");
  if (meter.handle < 0) return meter.handle;
  const sensor = Readable.open("meter");
  if (sensor.handle < 0) return sensor.handle;
  const arg = labd.argStr("wavelength");
  const wanted = arg !== null ? arg : "1064 nm";

  const before = meter.getF64("wavelength");
  if (isNaN(before)) return labd.E_INVAL;
  // text takes a quantity in any length unit; the meter's unit is nm
  let rc = meter.setText("wavelength", wanted);
  if (rc < 0) return rc;
  const now = meter.getF64("wavelength");
  const text = meter.getText("wavelength");
  if (isNaN(now) || text === null) return labd.E_INVAL;
  labd.info(text);

  const power = new Reading();
  rc = sensor.read(power);
  if (rc < 0) return rc;
  rc = labd.result("wavelength", now);
  if (rc < 0) return rc;
  rc = labd.result("power", power.value);
  if (rc < 0) return rc;
  rc = meter.setF64("wavelength", before);
  if (rc < 0) return rc;
  rc = labd.result("restored", before);
  return rc < 0 ? rc : 0;
}
