"""The supervisor keeps instruments alive: restart on fault, timeouts, restart limit."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Awaitable, Callable

import pytest
import trio

from capabilities import DeviceError, Movable, OutOfRange, Readable
from labd.config import InstrumentSpec, RestartPolicy
from labd.errors import (
    CallTimeout,
    CapabilityMissing,
    InstrumentBusy,
    InstrumentUnavailable,
    UnknownInstrument,
)
from labd.supervisor import State, Supervisor

FAST = RestartPolicy(max_restarts=3, window_s=30, backoff_initial_s=0.01, backoff_max_s=0.05)


def lab(*extra: InstrumentSpec, policy: RestartPolicy = FAST) -> Supervisor:
    specs = [
        InstrumentSpec("stage", "sim.stage", {"velocity": 100.0, "acceleration": 2000.0}),
        InstrumentSpec("meter", "sim.power_meter", {"stage": "stage"}),
        *extra,
    ]
    return Supervisor(specs, policy)


def run_with(supervisor: Supervisor, body: Callable[[Supervisor], Awaitable[None]]) -> None:
    async def main() -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(supervisor.run)
            with trio.fail_after(20):
                await body(supervisor)
            nursery.cancel_scope.cancel()

    trio.run(main)


async def wait_for_state(
    supervisor: Supervisor, name: str, state: State, timeout: float = 5
) -> None:
    with trio.fail_after(timeout):
        while supervisor.get(name).state is not state:
            await trio.sleep(0.005)


def test_calls_go_through_typed_proxies() -> None:
    async def body(sup: Supervisor) -> None:
        stage = sup.get("stage").proxy(Movable)
        await stage.move_abs(1.5)
        settled = await stage.wait_settled()
        assert settled.value == pytest.approx(1.5, abs=0.01)
        assert settled.unit == "mm"
        assert sup.get("stage").state is State.READY

    run_with(lab(), body)


def test_refused_request_does_not_fault_the_instrument() -> None:
    async def body(sup: Supervisor) -> None:
        stage = sup.get("stage").proxy(Movable)
        with pytest.raises(OutOfRange):
            await stage.move_abs(1e6)
        assert sup.get("stage").state is State.READY
        assert sup.get("stage").restarts == 0

    run_with(lab(), body)


def test_unknown_instrument_and_missing_capability_are_clear() -> None:
    async def body(sup: Supervisor) -> None:
        with pytest.raises(UnknownInstrument, match="known: stage, meter"):
            sup.get("laser")
        with pytest.raises(CapabilityMissing, match="meter is not Movable"):
            sup.get("meter").proxy(Movable)
        with pytest.raises(CapabilityMissing, match="no method 'close'"):
            await sup.get("stage").call("close")

    run_with(lab(), body)


def test_faulted_instrument_restarts_while_sibling_streams_without_gap() -> None:
    """Fault the stage over and over; the meter's 100 Hz readings must not pause."""

    async def body(sup: Supervisor) -> None:
        meter = sup.get("meter").proxy(Readable)
        timestamps: list[float] = []

        async def poll_meter() -> None:
            while True:
                await meter.read()
                timestamps.append(trio.current_time())
                await trio.sleep(0.01)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(poll_meter)
            stage = sup.get("stage")
            for _ in range(2):
                await trio.sleep(0.2)
                await stage.call("inject_fault", "raise")
                with pytest.raises(DeviceError, match="simulated device error"):
                    await stage.call("position")
                assert stage.state in (State.FAULTED, State.RESTARTING)
                await wait_for_state(sup, "stage", State.READY)
            assert stage.restarts == 2
            # The restarted stage works again.
            assert (await stage.call("position")).unit == "mm"
            await trio.sleep(0.2)
            nursery.cancel_scope.cancel()

        gaps = [b - a for a, b in itertools.pairwise(timestamps)]
        assert len(timestamps) > 30
        assert max(gaps) < 0.1, f"meter paused for {max(gaps):.3f} s while the stage restarted"
        assert sup.get("meter").restarts == 0

    run_with(lab(), body)


def test_hung_call_times_out_and_the_instrument_is_restarted() -> None:
    async def body(sup: Supervisor) -> None:
        stage = sup.get("stage")
        await stage.call("inject_fault", "hang")
        t0 = trio.current_time()
        with pytest.raises(CallTimeout, match="did not answer"):
            await stage.call("position", timeout=0.2)
        assert 0.2 <= trio.current_time() - t0 < 1.0
        await wait_for_state(sup, "stage", State.READY)
        assert stage.restarts == 1
        await stage.call("position", timeout=1)  # the reopened driver no longer hangs

    run_with(lab(), body)


def test_restart_limit_leaves_the_instrument_faulted_with_the_reason() -> None:
    flaky = InstrumentSpec("flaky", "sim.thermometer", {"fail_after_calls": 0})

    async def body(sup: Supervisor) -> None:
        handle = sup.get("flaky")
        # Every call faults it; after max_restarts restarts it must give up.
        for _ in range(20):
            if "gave up" in (handle.reason or ""):
                break
            with contextlib.suppress(DeviceError, InstrumentUnavailable):
                await handle.call("temperature", timeout=1)
            await trio.sleep(0.02)
        assert handle.state is State.FAULTED
        assert handle.reason is not None and "gave up after 3 restarts" in handle.reason
        assert "simulated device error" in handle.reason
        with pytest.raises(InstrumentUnavailable, match="gave up"):
            await handle.call("temperature")
        # The operator can let it try again.
        sup.reset("flaky")
        await wait_for_state(sup, "flaky", State.READY)

    run_with(lab(flaky), body)


def test_state_changes_are_observable() -> None:
    async def body(sup: Supervisor) -> None:
        changes = sup.subscribe_states()
        await sup.get("stage").call("inject_fault", "disconnect")
        with pytest.raises(DeviceError):
            await sup.get("stage").call("position")
        await wait_for_state(sup, "stage", State.READY)
        seen = []
        while True:
            try:
                seen.append(changes.receive_nowait())
            except trio.WouldBlock:
                break
        states = [c.state for c in seen if c.instrument == "stage"]
        assert states == [State.FAULTED, State.RESTARTING, State.READY]
        assert seen[0].reason is not None and "disconnect" in seen[0].reason

    run_with(lab(), body)


def test_shutdown_closes_every_driver() -> None:
    sup = lab()

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(sup.run)
            nursery.cancel_scope.cancel()

    trio.run(main)
    assert {h.state for h in sup.handles()} == {State.STOPPED}


def test_time_in_the_queue_ends_in_busy_and_never_faults() -> None:
    """A call's timeout bounds its wait for the instrument (busy) and, afresh, its run."""

    async def body(sup: Supervisor) -> None:
        stage = sup.get("stage")
        await stage.call("move_abs", 0.0)
        await stage.call("wait_settled")
        async with trio.open_nursery() as nursery:
            # wait_settled holds the stage for the ~0.15 s of a 10 mm move at 100 mm/s...
            await stage.call("move_abs", 10.0)
            nursery.start_soon(stage.call, "wait_settled", None)
            await trio.sleep(0.01)
            t0 = trio.current_time()
            with pytest.raises(InstrumentBusy, match=r"could not start within 0\.1 s"):
                await stage.call("position", timeout=0.1)
            assert trio.current_time() - t0 < 0.3  # told when its time is up, not later
            # ...and a call that queues behind it, then runs quickly, is fine.
            assert (await stage.call("position", timeout=0.4)).unit == "mm"
        assert stage.state is State.READY and stage.restarts == 0

    run_with(lab(), body)


def test_closed_state_watchers_are_forgotten_without_a_state_change() -> None:
    async def body(sup: Supervisor) -> None:
        for _ in range(50):  # clients come and go in a quiet lab: nothing is broadcast
            with sup.subscribe_states():
                pass
        live = sup.subscribe_states()
        assert len(sup._watchers) == 1  # only the open one is kept
        live.close()

    run_with(lab(), body)
