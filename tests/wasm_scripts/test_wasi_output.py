"""WASI fd_write as labd gives it: stdout/stderr to the run's log, nothing else, no faults."""

import trio

from labd.scripting.abi import LogLevel
from tests.labd.scripting.simlab import script_engine, sim_lab

# Each call's errno is published as a result: fd 1 and 2 are the log, fd 3 does not exist,
# and pointers outside memory are refused, not followed.
WRITER = """(module
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (import "labd_v1" "result_f64" (func $result (param i32 i32 f64) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 100) "hello\\nwor")
  (data (i32.const 109) "ld\\nno newline")
  (data (i32.const 200) "out\\00err\\00bad_fd\\00bad_iovs\\00bad_buf\\00written")
  ;; iovecs at 0: "hello\\nwor" + "ld\\nno newline"; at 16: one iovec reaching past memory
  (data (i32.const 0) "\\64\\00\\00\\00\\09\\00\\00\\00\\6d\\00\\00\\00\\0d\\00\\00\\00")
  (data (i32.const 16) "\\00\\00\\01\\00\\10\\00\\00\\00")
  (func $report (param $name i32) (param $len i32) (param $errno i32)
    (drop (call $result (local.get $name) (local.get $len) (f64.convert_i32_s (local.get $errno)))))
  (func (export "run") (result i32)
    (call $report (i32.const 200) (i32.const 3) (call $write (i32.const 1) (i32.const 0) (i32.const 2) (i32.const 64)))
    (drop (call $result (i32.const 232) (i32.const 7) (f64.convert_i32_u (i32.load (i32.const 64)))))
    (call $report (i32.const 204) (i32.const 3) (call $write (i32.const 2) (i32.const 0) (i32.const 1) (i32.const 64)))
    (call $report (i32.const 208) (i32.const 6) (call $write (i32.const 3) (i32.const 0) (i32.const 1) (i32.const 64)))
    (call $report (i32.const 215) (i32.const 8) (call $write (i32.const 1) (i32.const 65530) (i32.const 1) (i32.const 64)))
    (call $report (i32.const 224) (i32.const 7) (call $write (i32.const 1) (i32.const 16) (i32.const 1) (i32.const 64)))
    (i32.const 0)))
"""


def test_fd_write_goes_to_the_log_and_refuses_the_rest() -> None:
    async def main() -> None:
        async with sim_lab() as lab, script_engine(lab) as engine:
            await engine.store.upload("writer", WRITER)
            run = engine.start("writer")
            results = await run.wait()
            assert results == {
                "out": 0,
                "written": 22,  # both iovecs
                "err": 0,
                "bad_fd": 8,  # EBADF: there are no files
                "bad_iovs": 21,  # EFAULT
                "bad_buf": 21,
            }
            lines = [(line.level, line.text) for line in run.log]
            # Lines are split across iovecs and calls; the unfinished line ends the run.
            assert lines == [
                (LogLevel.INFO, "hello"),
                (LogLevel.INFO, "world"),
                (LogLevel.WARN, "hello"),
                (LogLevel.INFO, "no newline"),
                (LogLevel.WARN, "wor"),
            ]

    trio.run(main)
