"""The event loop's health: pycapnp objects die on the loop thread, nothing blocks the loop,
and a stall is seen and logged (labd/aio.py, labd/loopwatch.py)."""

from __future__ import annotations

import itertools
import math
import os
import re
import signal
import time
from pathlib import Path
from typing import Any

import pytest
import trio

from labd import aio
from labd.client import connect, connect_blocking
from labd.client.session import open_session
from labd.contract import schema
from labd.contract.errors import WireError
from tests.hardening.conftest import LabdProcess, start_labd
from tests.labd.scripting.wat import module

_s: Any = schema.load()

STAGE_AND_METER_TOML = """
[instruments.stage]
driver = "sim.stage"
poll_hz = 20

[instruments.meter]
driver = "sim.power_meter"
stage = "stage"
poll_hz = 100
"""

# A scan that reports a result per point as fast as it can, `n` points: the script's
# worker thread allocates (and keeps) Python objects all the time, so CPython's automatic
# collection would often run on that thread.
SCAN_RESULTS = module(
    "result_f64", "arg_f64",
    extra='(data (i32.const 0) "point") (data (i32.const 16) "n")',
    body="""
    (local $i i32) (local $n i32)
    (local.set $n (i32.const 200000))
    (if (i32.eqz (call $arg_f64 (i32.const 16) (i32.const 1) (i32.const 64)))
      (then (local.set $n (i32.trunc_f64_s (f64.load (i32.const 64))))))
    (block $done (loop $point
      (br_if $done (i32.ge_s (local.get $i) (local.get $n)))
      (drop (call $result_f64 (i32.const 0) (i32.const 5) (f64.convert_i32_s (local.get $i))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $point)))
    (i32.const 0)""",
)  # fmt: skip

FAILING_SUBSCRIPTIONS = 2000


class FailingSink(_s.BatchSink.Server):  # type: ignore[misc]
    """A subscriber whose every push fails: the daemon's failed-push path each time."""

    async def push(self, **_: Any) -> None:
        raise WireError("refused", "this subscriber refuses every batch")


def abort_lines(daemon: LabdProcess) -> list[str]:
    return [
        line
        for line in daemon.log.read_text(errors="replace").splitlines()
        if "No event loop is running" in line or "Fatal Python error" in line
    ]


def test_thousands_of_failing_subscribers_during_a_scan_leave_the_daemon_serving(
    tmp_path: Path,
) -> None:
    # Each failed push left reference cycles holding pycapnp objects; when the collector
    # freed one on a script's worker thread the daemon aborted ("No event loop is running
    # on this thread"), after 1000 to 3000 of these subscriptions when it did.
    daemon = start_labd(tmp_path, config=STAGE_AND_METER_TOML)
    try:

        async def main() -> int:
            async with connect(daemon.address) as lab:
                scripts = await lab.scripts()
                await scripts.upload("scan-results", SCAN_RESULTS)
                await scripts.run("scan-results")
                async with open_session(daemon.address) as link:
                    bootstrap = link.bootstrap
                    raw_lab = (await link.call(lambda: bootstrap.unlock(daemon.token))).lab
                    opened = 0

                    async def subscribe(stream: str) -> None:
                        nonlocal opened
                        sink = FailingSink()
                        await link.call(lambda: raw_lab.subscribe(stream, sink, 0, 2, False, False))
                        opened += 1

                    with trio.fail_after(60):
                        async with trio.open_nursery() as nursery:
                            for _ in range(FAILING_SUBSCRIPTIONS // 10):
                                if daemon.proc.poll() is not None:
                                    break
                                for stream in ["meter/reading", "stage/position"] * 5:
                                    nursery.start_soon(subscribe, stream)
                                await trio.sleep(0.02)
                    return opened

        opened = aio.run(main)
        assert daemon.proc.poll() is None, f"the daemon died: {abort_lines(daemon)}"
        assert opened == FAILING_SUBSCRIPTIONS
        with connect_blocking(daemon.address) as lab:
            assert {i.name for i in lab.instruments()} == {"stage", "meter"}
        assert abort_lines(daemon) == []
    finally:
        daemon.stop()


def test_streams_have_no_hole_at_start_with_pandas_installed(tmp_path: Path) -> None:
    # pyarrow imports pandas on its first conversion of numpy data; on the loop that held
    # every stream up for the 0.5-8 s the import takes.
    pytest.importorskip("pandas")
    started = time.time()
    daemon = start_labd(tmp_path, config=STAGE_AND_METER_TOML)
    try:
        with connect_blocking(daemon.address) as lab:
            meter = next(s for s in lab.streams() if s.name == "meter/reading")
            while lab.replay(meter.name, started, time.time()).num_rows < 300:
                time.sleep(0.2)  # 3 s of a 100 Hz meter
            stamps = lab.replay(meter.name, started, time.time()).column("timestamp").to_pylist()
    finally:
        daemon.stop()
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    worst = max(gaps)
    at = stamps[gaps.index(worst)] - stamps[0]
    assert worst < 0.5, f"the meter's readings stop for {worst:.2f} s, {at:.2f} s after its first"


def test_a_stopped_daemon_logs_its_stall_once_it_runs_again(tmp_path: Path) -> None:
    # SIGSTOP stands for a VM pause or a laptop suspend: every thread stops, the clock goes on.
    daemon = start_labd(tmp_path, config=STAGE_AND_METER_TOML)
    try:
        time.sleep(0.5)
        os.kill(daemon.proc.pid, signal.SIGSTOP)
        time.sleep(1.0)
        os.kill(daemon.proc.pid, signal.SIGCONT)
        with connect_blocking(daemon.address) as lab:
            assert {i.name: i.state for i in lab.instruments()}["meter"] in {"ready", "busy"}
        deadline = time.monotonic() + 5
        while not (stalls := stall_lines(daemon)) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        daemon.stop()
    assert stalls, f"no stall logged:\n{daemon.log.read_text()[-2000:]}"
    seconds = [float(m.group(1)) for m in map(STALL.search, stalls) if m]
    assert max(seconds) >= 0.9, f"the 1 s stop was not measured as such: {stalls}"


STALL = re.compile(r"labd\.loop WARNING: daemon stalled ([0-9.]+) s")


def stall_lines(daemon: LabdProcess) -> list[str]:
    return [line for line in daemon.log.read_text().splitlines() if STALL.search(line)]


def test_stalled_seconds_holds_a_stall_as_soon_as_the_loop_runs_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # What the supervisor asks when a call's deadline passes: how much of that time the
    # daemon itself stood still. Right after the stall, before the heartbeat's next beat.
    from labd import loopwatch

    def block_the_loop() -> None:
        time.sleep(0.5)  # a blocking call on the loop, as a careless driver would make

    async def main() -> tuple[float, float, float]:
        async with trio.open_nursery() as nursery:
            await nursery.start(loopwatch.LoopWatch().run)
            await trio.sleep(0.2)
            t0 = trio.current_time()
            block_the_loop()
            t1 = trio.current_time()
            just_after = loopwatch.stalled_seconds(t0, t1)
            await trio.sleep(0.2)
            later = loopwatch.stalled_seconds(t0, t1)
            nursery.cancel_scope.cancel()
        return t1 - t0, just_after, later

    with caplog.at_level("WARNING", logger="labd.loop"):
        blocked, just_after, later = aio.run(main)
    # Up to one heartbeat period of the stall can go unseen (labd.loopwatch.HEARTBEAT_S).
    assert blocked - loopwatch.HEARTBEAT_S - 0.01 < just_after <= blocked, (blocked, just_after)
    assert later == pytest.approx(just_after, abs=0.01), "the beat after records the same stall"
    assert loopwatch.stalled_seconds(0, math.inf) == 0.0, "no watch runs any more"
    (line,) = [r.getMessage() for r in caplog.records if r.name == "labd.loop"]
    assert line.startswith("loop stalled") and "block_the_loop" in line, line
