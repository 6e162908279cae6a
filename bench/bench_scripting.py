"""Scripting benchmark: what running experiment logic as WebAssembly costs.

Run: ``.venv/bin/python bench/bench_scripting.py``. Figures, each against a floor measured
in the same run:

- host-call cost from WASM: a guest calling ``time_us`` (answered in the guest thread)
  and ``readable_read`` (crosses into Trio with ``trio.from_thread.run``), against the
  same work called directly from Python;
- per-step cost of a move + wait_settled + read scan written in WASM against the same
  loop written in Python, both on in-process instruments (a sim stage that moves in no
  time, so the figure is overhead, not physics).

- the same scan against a real ``labd serve`` subprocess: the WASM script started over
  RPC (it runs in the daemon, reaching instruments through the supervisor) against the
  Python loop written with the RPC client API (three round trips per step).

Each way of running the scan in-process is one function ``async def scan_…(lab, engine,
steps)`` in ``SCANS``; each way against the daemon is one ``async def client_scan_…(lab,
steps)`` in ``CLIENT_SCANS``.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import trio  # noqa: E402

from capabilities import Movable, Readable  # noqa: E402
from drivers.sim.power_meter import SimPowerMeter  # noqa: E402
from drivers.sim.stage import SimStage  # noqa: E402
from labd import aio  # noqa: E402
from labd.client import Lab, connect  # noqa: E402
from labd.launcher import spawn_daemon  # noqa: E402
from labd.scripting import (  # noqa: E402
    Grants,
    RunLimits,
    ScriptEngine,
    ScriptStore,
    objects_resolver,
)

CALLS = 20_000
TRIO_CALLS = 3_000
STEPS = 2_000
REPEATS = 3
LIMITS = RunLimits(fuel=10**12, log_burst=10**6)
GRANTS = Grants.parse(["stage:Movable", "meter:Readable"])

CALL_LOOP = """(module
  (import "labd_v1" "{name}" (func $f {signature}))
  (import "labd_v1" "cap_get" (func $cap_get (param i32 i32 i32) (result i32)))
  (import "labd_v1" "arg_f64" (func $arg (param i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "meter") (data (i32.const 8) "n")
  (func (export "run") (result i32) (local $h i32) (local $i i32) (local $n i32)
    (drop (call $arg (i32.const 8) (i32.const 1) (i32.const 16)))
    (local.set $n (i32.trunc_f64_s (f64.load (i32.const 16))))
    (local.set $h (call $cap_get (i32.const 0) (i32.const 5) (i32.const 3)))
    (loop $l
      {call}
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_s (local.get $i) (local.get $n))))
    (i32.const 0)))"""

TIME_LOOP = CALL_LOOP.format(name="time_us", signature="(result i64)", call="(drop (call $f))")
READ_LOOP = CALL_LOOP.format(
    name="readable_read",
    signature="(param i32 i32 i32) (result i32)",
    call="(drop (call $f (local.get $h) (i32.const 64) (i32.const 16)))",
)

SCAN = """(module
  (import "labd_v1" "cap_get" (func $cap_get (param i32 i32 i32) (result i32)))
  (import "labd_v1" "arg_f64" (func $arg (param i32 i32 i32) (result i32)))
  (import "labd_v1" "movable_move_abs" (func $move (param i32 f64) (result i32)))
  (import "labd_v1" "movable_wait_settled" (func $settle (param i32 f64 i32 i32) (result i32)))
  (import "labd_v1" "readable_read" (func $read (param i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "stage") (data (i32.const 8) "meter") (data (i32.const 16) "n")
  (func (export "run") (result i32) (local $s i32) (local $m i32) (local $i i32) (local $n i32)
    (drop (call $arg (i32.const 16) (i32.const 1) (i32.const 32)))
    (local.set $n (i32.trunc_f64_s (f64.load (i32.const 32))))
    (local.set $s (call $cap_get (i32.const 0) (i32.const 5) (i32.const 1)))
    (local.set $m (call $cap_get (i32.const 8) (i32.const 5) (i32.const 3)))
    (loop $l
      (drop (call $move (local.get $s) (f64.mul (f64.convert_i32_s (local.get $i)) (f64.const 0.001))))
      (drop (call $settle (local.get $s) (f64.const 0) (i32.const 64) (i32.const 16)))
      (drop (call $read (local.get $m) (i32.const 64) (i32.const 16)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_s (local.get $i) (local.get $n))))
    (i32.const 0)))"""


async def best_of(fn: Callable[[], Awaitable[float]]) -> float:
    return min([await fn() for _ in range(REPEATS)])


async def wasm_seconds(engine: ScriptEngine, name: str, n: int, grants: Grants) -> float:
    """Wall time of one run's ``run()``, minus an empty run's (instantiate etc.)."""
    run = engine.start(name, args={"n": str(n)}, grants=grants, limits=LIMITS)
    started = time.perf_counter()
    await run.wait()
    return time.perf_counter() - started


async def scan_python(lab: dict[str, Any], engine: ScriptEngine, steps: int) -> float:
    stage, meter = lab["stage"], lab["meter"]
    started = time.perf_counter()
    for i in range(steps):
        await stage.move_abs(i * 0.001)
        await stage.wait_settled()
        await meter.read()
    return time.perf_counter() - started


async def scan_wasm(lab: dict[str, Any], engine: ScriptEngine, steps: int) -> float:
    return await wasm_seconds(engine, "scan", steps, GRANTS)


SCANS: dict[str, Callable[[dict[str, Any], ScriptEngine, int], Awaitable[float]]] = {
    "Python loop, in-process instruments": scan_python,
    "WASM script, in-process instruments": scan_wasm,
}

# The same instruments as in-process, in a daemon: no pollers, so only the scan uses them.
DAEMON_LAB = """
[instruments.stage]
driver = "sim.stage"
velocity = 1e6
acceleration = 1e12
settle_time = 0
overshoot = 0

[instruments.meter]
driver = "sim.power_meter"
integration_time = 1e-9
"""


async def client_scan_python(lab: Lab, steps: int) -> float:
    stage = await lab.instrument("stage").get(Movable)
    meter = await lab.instrument("meter").get(Readable)
    started = time.perf_counter()
    for i in range(steps):
        await stage.move_abs(i * 0.001)
        await stage.wait_settled()
        await meter.read()
    return time.perf_counter() - started


async def client_scan_wasm(lab: Lab, steps: int) -> float:
    scripts = await lab.scripts()
    started = time.perf_counter()
    run = await scripts.run(
        "scan", args={"n": steps}, grants=["stage:Movable", "meter:Readable"], fuel=10**12
    )
    await run.wait()
    return time.perf_counter() - started


CLIENT_SCANS: dict[str, Callable[[Lab, int], Awaitable[float]]] = {
    "Python loop through the RPC client API, labd serve": client_scan_python,
    "WASM script started over RPC, runs in labd serve": client_scan_wasm,
}


def daemon_scans() -> dict[str, float]:
    """Per-step seconds of each of ``CLIENT_SCANS`` against a real ``labd serve``."""

    async def measure(address: str) -> dict[str, float]:
        async with connect(address) as lab:
            await (await lab.scripts()).upload("scan", SCAN)
            out = {}
            for label, scan in CLIENT_SCANS.items():
                total = min([await scan(lab, STEPS) for _ in range(REPEATS)])
                out[label] = total / STEPS
            return out

    with tempfile.TemporaryDirectory(prefix="bench-scripting-") as tmp:
        config = Path(tmp) / "lab.toml"
        config.write_text(DAEMON_LAB)
        with spawn_daemon(config, workdir=tmp) as daemon:
            result: dict[str, float] = aio.run(measure, daemon.address)
            return result


async def main() -> tuple[str, float]:
    """Everything in-process; returns the scan floor (its label, seconds per step)."""
    stage = SimStage(velocity=1e6, acceleration=1e12, settle_time=0, overshoot=0)
    meter = SimPowerMeter(integration_time=1e-9)
    lab: dict[str, Any] = {"stage": stage, "meter": meter}
    await stage.open()
    await meter.open()
    store = ScriptStore()
    for name, source in (("time", TIME_LOOP), ("read", READ_LOOP), ("scan", SCAN)):
        await store.upload(name, source)
    engine = ScriptEngine(store, objects_resolver(lab))
    async with trio.open_nursery() as nursery:
        await nursery.start(engine.run)
        empty = await best_of(lambda: wasm_seconds(engine, "time", 0, GRANTS))

        # host calls answered in the guest thread
        wasm_time = (
            await best_of(lambda: wasm_seconds(engine, "time", CALLS, GRANTS)) - empty
        ) / CALLS

        def time_us() -> int:  # what the host import does, as a plain Python call
            return time.time_ns() // 1000

        async def python_time() -> float:
            started = time.perf_counter()
            for _ in range(CALLS):
                time_us()
            return (time.perf_counter() - started) / CALLS

        floor_time = await best_of(python_time)

        # host calls that reach an instrument in Trio
        wasm_read = (
            await best_of(lambda: wasm_seconds(engine, "read", TRIO_CALLS, GRANTS)) - empty
        ) / TRIO_CALLS

        async def python_read() -> float:
            started = time.perf_counter()
            for _ in range(TRIO_CALLS):
                await meter.read()
            return (time.perf_counter() - started) / TRIO_CALLS

        floor_read = await best_of(python_read)

        scans = {}
        for label, scan in SCANS.items():
            scans[label] = await best_of(lambda scan=scan: scan(lab, engine, STEPS)) / STEPS  # type: ignore[misc]
        nursery.cancel_scope.cancel()

    print(
        f"labd scripting benchmark (best of {REPEATS}; empty run {empty * 1e3:.2f} ms subtracted)"
    )
    print(
        f"host call time_us from WASM:       {wasm_time * 1e6:7.2f} µs/call  "
        f"= {wasm_time / floor_time:5.1f}× direct Python ({floor_time * 1e6:.2f} µs)"
    )
    print(
        f"host call readable_read from WASM: {wasm_read * 1e6:7.2f} µs/call  "
        f"= {wasm_read / floor_read:5.1f}× direct await in Trio ({floor_read * 1e6:.2f} µs)"
    )
    floor_label = next(iter(SCANS))
    floor = scans[floor_label]
    for label, per_step in scans.items():
        print(
            f"scan step (move+settle+read), {label}: {per_step * 1e6:7.1f} µs/step  "
            f"= {per_step / floor:4.2f}× {floor_label}"
        )
    return floor_label, floor


def print_daemon_scans(floor_label: str, floor: float, per_step: dict[str, float]) -> None:
    for label, seconds in per_step.items():
        print(
            f"scan step (move+settle+read), {label}: {seconds * 1e6:7.1f} µs/step  "
            f"= {seconds / floor:4.2f}× {floor_label}"
        )
    python, wasm = (per_step[label] for label in CLIENT_SCANS)
    print(
        f"against the daemon, the WASM scan step costs {wasm / python:4.2f}× the Python client"
        f" loop's ({wasm * 1e6:.0f} vs {python * 1e6:.0f} µs/step)"
    )


if __name__ == "__main__":
    print_daemon_scans(*trio.run(main), daemon_scans())
