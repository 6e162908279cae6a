"""Calls into instruments that cannot answer now, over a real connection to a real daemon."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import trio

from capabilities import DeviceError, FaultInjectable, Movable, Readable, Stoppable, WaitTimeout
from labd import aio
from labd.client import StateChange, connect
from labd.errors import InstrumentBusy, InstrumentUnavailable
from labd.supervisor import QUEUE_LIMIT
from tests.labd.rpc.conftest import LabdProcess, start_labd

BUSY_LAB_TOML = """
[instruments.stage]
driver = "sim.stage"
velocity = 2.0          # mm/s: a 20 mm move takes 10 s, so a wait on it holds the stage
call_timeout_s = 3.0    # a call may wait for, and run on, the instrument this long

[instruments.meter]
driver = "sim.power_meter"
poll_hz = 20
"""


@pytest.fixture(scope="module")
def busy_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabdProcess]:
    daemon = start_labd(tmp_path_factory.mktemp("labd"), config=BUSY_LAB_TOML)
    yield daemon
    daemon.stop()
    assert daemon.proc.returncode == 0, daemon.log.read_text()


def test_calls_into_a_busy_instrument_fail_fast_not_hang(busy_daemon: LabdProcess) -> None:
    """One client holds the stage with a 1.2 s wait. Another client's call queued behind it
    ends at its own deadline; calls beyond the supervisor's queue are refused at once
    with InstrumentBusy; the holder is never disturbed."""

    async def hold(stage: Movable, results: list[str]) -> None:
        try:
            await stage.wait_settled(1.2)  # the stage is still moving: WaitTimeout
        except WaitTimeout:
            results.append("wait-timeout")

    async def position(stage: Movable, outcomes: list[tuple[str, float]], start: float) -> None:
        try:
            await stage.position()
            outcomes.append(("ok", trio.current_time() - start))
        except InstrumentBusy as exc:
            outcomes.append((str(exc), trio.current_time() - start))

    async def main() -> tuple[list[str], float, list[tuple[str, float]]]:
        async with connect(busy_daemon.address) as a, connect(busy_daemon.address) as c:
            stage_a = await a.instrument("stage").get(Movable)
            stage_c = await c.instrument("stage").get(Movable)
            await stage_a.move_abs(20.0)
            holds: list[str] = []
            outcomes: list[tuple[str, float]] = []
            with trio.fail_after(10):  # the test's own guard against a hang
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(hold, stage_a, holds)
                    await trio.sleep(0.1)
                    start = trio.current_time()
                    with trio.move_on_after(0.3):
                        await stage_c.position()
                    gave_up_after = trio.current_time() - start
                    start = trio.current_time()
                    for _ in range(QUEUE_LIMIT + 20):
                        nursery.start_soon(position, stage_c, outcomes, start)
            await (await a.instrument("stage").get(Stoppable)).stop()
            return holds, gave_up_after, outcomes

    holds, gave_up_after, outcomes = aio.run(main)
    assert holds == ["wait-timeout"], "the holder was not disturbed"
    assert gave_up_after < 1.0
    refused = [(text, t) for text, t in outcomes if text != "ok"]
    assert len(refused) >= 10, outcomes[-5:]
    text, refused_after = refused[0]
    assert "calls waiting; try later" in text and "Traceback" not in text
    assert refused_after < 0.9, "refused at once, not after the hold ended"
    assert len(outcomes) - len(refused) >= QUEUE_LIMIT - 5  # the queued ones ran afterwards


def test_faulted_instrument_says_why_and_comes_back(busy_daemon: LabdProcess) -> None:
    async def main() -> tuple[Exception, list[StateChange], float]:
        async with connect(busy_daemon.address) as lab:
            meter = await lab.instrument("meter").get(Readable)
            faults = await lab.instrument("meter").get(FaultInjectable)
            await meter.read()
            seen: list[StateChange] = []
            async with lab.watch_states() as changes:
                await faults.inject_fault("raise")
                with pytest.raises((DeviceError, InstrumentUnavailable)) as failed:
                    await meter.read()
                with trio.fail_after(10):
                    async for change in changes:
                        if change.instrument == "meter":
                            seen.append(change)
                            if change.state == "ready":
                                break
            reading = await meter.read()  # the restarted driver answers again
            return failed.value, seen, reading.value

    error, seen, value = aio.run(main)
    assert "simulated device error" in str(error), str(error)
    assert "Traceback" not in str(error)
    states = [c.state for c in seen]
    assert states[0] == "faulted" and states[-1] == "ready", states
    assert "restarting" in states
    assert seen[0].reason, "a fault carries its reason to watchers"
    assert value == value  # a real number came back (not NaN)
