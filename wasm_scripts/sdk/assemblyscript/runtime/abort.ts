// Linked into every AssemblyScript script (`asc --lib runtime --use abort=labdAbort`),
// whether or not it imports the SDK: a failed assert, a throw or an out-of-bounds index
// says where in the run's log, then traps, instead of importing `env.abort` (which labd
// refuses, as it refuses any import outside labd_v1).

@external("labd_v1", "log")
declare function labd_log(level: i32, ptr: usize, len: i32): i32;

export function labdAbort(message: string | null, file: string | null, line: u32, column: u32): void {
  const text = `abort: ${message || ""} at ${file || "?"}:${line}:${column}`;
  const buf = String.UTF8.encode(text);
  labd_log(3, changetype<usize>(buf), buf.byteLength);
  unreachable();
}
