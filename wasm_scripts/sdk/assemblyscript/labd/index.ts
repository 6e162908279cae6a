// Guest SDK for labd experiment scripts in AssemblyScript, ABI v1 (see wasm_scripts/ABI.md).
//
// Build a script against it (`labd run scan.ts` does this for you):
//   npx asc scan.ts --path wasm_scripts/sdk/assemblyscript --exportStart _initialize \
//       --lib wasm_scripts/sdk/assemblyscript/runtime --use abort=labdAbort -O3 -o scan.wasm
// The script exports `export function run(): i32`.
//
// AssemblyScript has no exceptions (a `throw` aborts the whole module), so calls return
// the ABI's i32: >= 0 success, < 0 the error code, which `run` returns to fail with it:
//   let rc = stage.moveAbs(3.0); if (rc < 0) return rc;
// Struct outputs are filled in place: the classes below have the C layout of their
// labd_*_v1 struct, and one instance can be reused across a loop without allocating.

export const E_INVAL: i32 = -1;
export const E_NOTFOUND: i32 = -2;
export const E_KIND: i32 = -3;
export const E_BADHANDLE: i32 = -4;
export const E_FAULT: i32 = -5;
export const E_DEVICE: i32 = -6;
export const E_TIMEOUT: i32 = -7;
export const E_DENIED: i32 = -8;
export const E_TOOSMALL: i32 = -9;
export const E_CANCELLED: i32 = -10;
export const E_BUSY: i32 = -11;
export const E_LIMIT: i32 = -12;

const MOVABLE: i32 = 1;
const STOPPABLE: i32 = 2;
const READABLE: i32 = 3;
const FRAME_PRODUCER: i32 = 4;
const EXPOSURE_CONTROL: i32 = 5;
const TEMPERATURE_SENSOR: i32 = 6;
const VOLTAGE_SOURCE: i32 = 7;
const SWITCHABLE: i32 = 8;
const CONFIGURABLE: i32 = 9;

export const DEBUG: i32 = 0;
export const INFO: i32 = 1;
export const WARN: i32 = 2;
export const ERROR: i32 = 3;

/** labd_reading_v1: a value and when it was taken (s since the Unix epoch). */
export class Reading {
  value: f64 = 0;
  timestamp: f64 = 0;
}

/** labd_limits_v1. */
export class Limits {
  low: f64 = 0;
  high: f64 = 0;
}

/** labd_frame_stats_v1; the centroid is in pixels, background-subtracted. */
export class FrameStats {
  width: u32 = 0;
  height: u32 = 0;
  seq: i64 = 0;
  timestamp: f64 = 0;
  sum: f64 = 0;
  min: f64 = 0;
  max: f64 = 0;
  centroid_x: f64 = 0;
  centroid_y: f64 = 0;
}

/** labd_supply_readback_v1. */
export class SupplyReadback {
  voltage: f64 = 0;
  current: f64 = 0;
  timestamp: f64 = 0;
  in_compliance: i32 = 0;
  reserved: i32 = 0;
}

/** The imports exactly as ABI v1 defines them; pointers are offsets into this module's memory. */
export namespace raw {
  @external("labd_v1", "abi_version") export declare function abi_version(): i32;
  @external("labd_v1", "last_error") export declare function last_error(buf: usize, cap: i32): i32;
  @external("labd_v1", "log") export declare function log(level: i32, ptr: usize, len: i32): i32;
  @external("labd_v1", "time_us") export declare function time_us(): i64;
  @external("labd_v1", "sleep_ms") export declare function sleep_ms(ms: i32): i32;
  @external("labd_v1", "checkpoint") export declare function checkpoint(): i32;
  @external("labd_v1", "result_f64") export declare function result_f64(name: usize, len: i32, value: f64): i32;
  @external("labd_v1", "arg_f64") export declare function arg_f64(name: usize, len: i32, out: usize): i32;
  @external("labd_v1", "arg_str") export declare function arg_str(name: usize, len: i32, buf: usize, cap: i32): i32;
  @external("labd_v1", "cap_get") export declare function cap_get(name: usize, len: i32, kind: i32): i32;
  @external("labd_v1", "movable_move_abs") export declare function movable_move_abs(h: i32, position: f64): i32;
  @external("labd_v1", "movable_move_rel") export declare function movable_move_rel(h: i32, delta: f64): i32;
  @external("labd_v1", "movable_position") export declare function movable_position(h: i32, out: usize, size: i32): i32;
  @external("labd_v1", "movable_wait_settled") export declare function movable_wait_settled(h: i32, timeout_s: f64, out: usize, size: i32): i32;
  @external("labd_v1", "movable_limits") export declare function movable_limits(h: i32, out: usize, size: i32): i32;
  @external("labd_v1", "stoppable_stop") export declare function stoppable_stop(h: i32): i32;
  @external("labd_v1", "readable_read") export declare function readable_read(h: i32, out: usize, size: i32): i32;
  @external("labd_v1", "frame_snap") export declare function frame_snap(h: i32): i32;
  @external("labd_v1", "frame_stats") export declare function frame_stats(frame: i32, out: usize, size: i32): i32;
  @external("labd_v1", "frame_copy") export declare function frame_copy(frame: i32, buf: usize, cap: i32): i32;
  @external("labd_v1", "frame_release") export declare function frame_release(frame: i32): i32;
  @external("labd_v1", "exposure_get") export declare function exposure_get(h: i32, out: usize): i32;
  @external("labd_v1", "exposure_set") export declare function exposure_set(h: i32, seconds: f64): i32;
  @external("labd_v1", "temperature_read") export declare function temperature_read(h: i32, out: usize, size: i32): i32;
  @external("labd_v1", "supply_set_voltage") export declare function supply_set_voltage(h: i32, volts: f64): i32;
  @external("labd_v1", "supply_set_current_limit") export declare function supply_set_current_limit(h: i32, amps: f64): i32;
  @external("labd_v1", "supply_readback") export declare function supply_readback(h: i32, out: usize, size: i32): i32;
  @external("labd_v1", "switch_set") export declare function switch_set(h: i32, on: i32): i32;
  @external("labd_v1", "switch_get") export declare function switch_get(h: i32): i32;
  @external("labd_v1", "param_get_f64") export declare function param_get_f64(h: i32, name: usize, len: i32, out: usize): i32;
  @external("labd_v1", "param_set_f64") export declare function param_set_f64(h: i32, name: usize, len: i32, value: f64): i32;
  @external("labd_v1", "param_get_text") export declare function param_get_text(h: i32, name: usize, len: i32, buf: usize, cap: i32): i32;
  @external("labd_v1", "param_set_text") export declare function param_set_text(h: i32, name: usize, len: i32, value: usize, value_len: i32): i32;
  @external("labd_v1", "result_row") export declare function result_row(names: usize, len: i32, values: usize, count: i32): i32;
}

// Strings are UTF-16 inside AssemblyScript and UTF-8 on the ABI.
function utf8(text: string): ArrayBuffer {
  return String.UTF8.encode(text);
}

// The pointer and size of a struct output: the fields of an instance, in declaration order.
@inline function at<T>(out: T): usize {
  return changetype<usize>(out);
}

/** The message of the most recent failed call. */
export function lastError(): string {
  const n = raw.last_error(0, 0);
  if (n <= 0) return "";
  const buf = new ArrayBuffer(n);
  raw.last_error(changetype<usize>(buf), n);
  return String.UTF8.decode(buf);
}

/** A line to the run's log at `level` (DEBUG … ERROR). */
export function log(level: i32, text: string): i32 {
  const buf = utf8(text);
  return raw.log(level, changetype<usize>(buf), buf.byteLength);
}

export function info(text: string): i32 {
  return log(INFO, text);
}

/** A named result, published with the run's results. */
export function result(name: string, value: f64): i32 {
  const buf = utf8(name);
  return raw.result_f64(changetype<usize>(buf), buf.byteLength, value);
}

let rowNames: string | null = null;
let rowNamesUtf8 = new ArrayBuffer(0);

/** Emit one row of a table: `names` comma-separated (`"x,power"`), one value each; the
 * first row fixes the columns. Returns the row's number, or the ABI's error code. */
export function row(names: string, values: StaticArray<f64>): i32 {
  if (names !== rowNames) {  // a scan passes the same names every row: encode them once
    rowNames = names;
    rowNamesUtf8 = utf8(names);
  }
  return raw.result_row(changetype<usize>(rowNamesUtf8), rowNamesUtf8.byteLength, changetype<usize>(values), values.length);
}

/** The numeric `--arg name=value`, or `fallback` when it was not given or is not a number. */
export function argF64(name: string, fallback: f64): f64 {
  const buf = utf8(name);
  const out = memory.data(8);
  return raw.arg_f64(changetype<usize>(buf), buf.byteLength, out) == 0 ? load<f64>(out) : fallback;
}

/** `--arg name=value` as text, or null when it was not given. */
export function argStr(name: string): string | null {
  const key = utf8(name);
  const n = raw.arg_str(changetype<usize>(key), key.byteLength, 0, 0);
  if (n < 0) return null;
  const buf = new ArrayBuffer(n);
  raw.arg_str(changetype<usize>(key), key.byteLength, changetype<usize>(buf), n);
  return String.UTF8.decode(buf);
}

/** A pause point; E_CANCELLED when the run is being stopped. */
export function checkpoint(): i32 {
  return raw.checkpoint();
}

/** Sleep in the host, cancellably. */
export function sleepMs(ms: i32): i32 {
  return raw.sleep_ms(ms);
}

/** The wall clock in µs since the Unix epoch. */
export function timeUs(): i64 {
  return raw.time_us();
}

export function abiVersion(): i32 {
  return raw.abi_version();
}

function open(name: string, kind: i32): i32 {
  const buf = utf8(name);
  return raw.cap_get(changetype<usize>(buf), buf.byteLength, kind);
}

/** An instrument's capability. `handle` < 0 is the error `open` failed with. */
class Capability {
  constructor(public readonly handle: i32) {}
}

export class Movable extends Capability {
  static open(name: string): Movable {
    return new Movable(open(name, MOVABLE));
  }
  /** Returns once the move is commanded; see waitSettled. */
  moveAbs(position: f64): i32 {
    return raw.movable_move_abs(this.handle, position);
  }
  moveRel(delta: f64): i32 {
    return raw.movable_move_rel(this.handle, delta);
  }
  position(out: Reading): i32 {
    return raw.movable_position(this.handle, at(out), offsetof<Reading>());
  }
  /** Wait until the axis is at rest; `timeoutS` <= 0 uses the instrument's default. */
  waitSettled(timeoutS: f64, out: Reading): i32 {
    return raw.movable_wait_settled(this.handle, timeoutS, at(out), offsetof<Reading>());
  }
  limits(out: Limits): i32 {
    return raw.movable_limits(this.handle, at(out), offsetof<Limits>());
  }
}

export class Stoppable extends Capability {
  static open(name: string): Stoppable {
    return new Stoppable(open(name, STOPPABLE));
  }
  stop(): i32 {
    return raw.stoppable_stop(this.handle);
  }
}

export class Readable extends Capability {
  static open(name: string): Readable {
    return new Readable(open(name, READABLE));
  }
  read(out: Reading): i32 {
    return raw.readable_read(this.handle, at(out), offsetof<Reading>());
  }
}

export class FrameProducer extends Capability {
  static open(name: string): FrameProducer {
    return new FrameProducer(open(name, FRAME_PRODUCER));
  }
  /** A frame handle (< 0: the error); the pixels stay in the host, at most 8 held. */
  snap(): i32 {
    return raw.frame_snap(this.handle);
  }
}

/** Frames are plain handles from FrameProducer.snap; release each when done. */
export function frameStats(frame: i32, out: FrameStats): i32 {
  return raw.frame_stats(frame, at(out), offsetof<FrameStats>());
}

/** Copies the raw pixels into `buf`; returns the frame's total size in bytes. */
export function frameCopy(frame: i32, buf: Uint8Array): i32 {
  return raw.frame_copy(frame, buf.dataStart, buf.byteLength);
}

export function frameRelease(frame: i32): i32 {
  return raw.frame_release(frame);
}

export class ExposureControl extends Capability {
  static open(name: string): ExposureControl {
    return new ExposureControl(open(name, EXPOSURE_CONTROL));
  }
  /** The exposure in seconds, or NaN when it could not be read (see lastError). */
  exposure(): f64 {
    const out = memory.data(8);
    return raw.exposure_get(this.handle, out) < 0 ? NaN : load<f64>(out);
  }
  setExposure(seconds: f64): i32 {
    return raw.exposure_set(this.handle, seconds);
  }
}

export class TemperatureSensor extends Capability {
  static open(name: string): TemperatureSensor {
    return new TemperatureSensor(open(name, TEMPERATURE_SENSOR));
  }
  /** Kelvin unless the instrument says otherwise. */
  temperature(out: Reading): i32 {
    return raw.temperature_read(this.handle, at(out), offsetof<Reading>());
  }
}

export class VoltageSource extends Capability {
  static open(name: string): VoltageSource {
    return new VoltageSource(open(name, VOLTAGE_SOURCE));
  }
  setVoltage(volts: f64): i32 {
    return raw.supply_set_voltage(this.handle, volts);
  }
  setCurrentLimit(amps: f64): i32 {
    return raw.supply_set_current_limit(this.handle, amps);
  }
  readback(out: SupplyReadback): i32 {
    return raw.supply_readback(this.handle, at(out), offsetof<SupplyReadback>());
  }
}

export class Switchable extends Capability {
  static open(name: string): Switchable {
    return new Switchable(open(name, SWITCHABLE));
  }
  setOn(on: bool): i32 {
    return raw.switch_set(this.handle, on ? 1 : 0);
  }
  /** 1 on, 0 off, < 0 the error. */
  isOn(): i32 {
    return raw.switch_get(this.handle);
  }
}

/** An instrument's parameters by name. */
export class Configurable extends Capability {
  static open(name: string): Configurable {
    return new Configurable(open(name, CONFIGURABLE));
  }
  /** A number in the parameter's unit (a bool as 1/0), or NaN when it could not be read
   * (see lastError; E_KIND for text and choices). */
  getF64(name: string): f64 {
    const key = utf8(name);
    const out = memory.data(8);
    return raw.param_get_f64(this.handle, changetype<usize>(key), key.byteLength, out) < 0 ? NaN : load<f64>(out);
  }
  /** Set a number in the parameter's unit (a bool: nonzero is on). */
  setF64(name: string, value: f64): i32 {
    const key = utf8(name);
    return raw.param_set_f64(this.handle, changetype<usize>(key), key.byteLength, value);
  }
  /** The value as text ("1064 nm", "true", "auto"), or null when it could not be read. */
  getText(name: string): string | null {
    const key = utf8(name);
    const n = raw.param_get_text(this.handle, changetype<usize>(key), key.byteLength, 0, 0);
    if (n < 0) return null;
    const buf = new ArrayBuffer(n);
    const m = raw.param_get_text(this.handle, changetype<usize>(key), key.byteLength, changetype<usize>(buf), n);
    if (m < 0) return null;
    return String.UTF8.decode(m < n ? buf.slice(0, m) : buf);
  }
  /** Set any kind from text: a quantity ("1.064 um"), a bool word ("on"), a choice. */
  setText(name: string, value: string): i32 {
    const key = utf8(name);
    const text = utf8(value);
    return raw.param_set_text(this.handle, changetype<usize>(key), key.byteLength, changetype<usize>(text), text.byteLength);
  }
}
