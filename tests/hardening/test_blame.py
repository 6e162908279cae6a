"""Timeouts and faults blame the party that caused them, and faults leave a trace.

A caller's own bounded wait that runs out is a WaitTimeout for that caller, never a fault
of the instrument; a daemon that was itself stopped (SIGSTOP, a VM pause) does not charge
the lost time to the driver whose call was in flight; and a fault that does happen is in
the daemon's log and in ``info()`` after the instrument recovered.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from capabilities import (
    DeviceError,
    FaultInjectable,
    InvalidRequest,
    Movable,
    Readable,
    WaitTimeout,
)
from drivers.devices.newport_smc100 import SMC100Device
from labd import aio
from labd.client import connect, connect_blocking
from labd.errors import InstrumentUnavailable
from tests.hardening.conftest import LabdProcess, start_labd

SHORT_TIMEOUT_TOML = """
[restart]
backoff_initial_s = 0.05
backoff_max_s = 0.1

[instruments.stage]
driver = "sim.stage"
poll_hz = 20
velocity = 2.0          # mm/s
call_timeout_s = 1.0    # shorter than the waits below

[instruments.meter]
driver = "sim.power_meter"
stage = "stage"
poll_hz = 20
"""


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabdProcess]:
    process = start_labd(tmp_path_factory.mktemp("blame"), config=SHORT_TIMEOUT_TOML)
    yield process
    process.stop()
    assert process.proc.returncode == 0, process.log.read_text()


def wait_ready(daemon: LabdProcess, name: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    with connect_blocking(daemon.address) as lab:
        while lab.instrument(name).info().state not in ("ready", "busy"):
            assert time.monotonic() < deadline, f"{name} did not become ready"
            time.sleep(0.05)


def test_a_wait_longer_than_the_call_timeout_is_the_callers_to_spend(
    daemon: LabdProcess,
) -> None:
    """call_timeout_s = 1: wait_settled(3) on a 5 s move ends in WaitTimeout after its 3 s,
    wait_settled(3) on a 1.5 s move returns the settled position, and an unbounded wait
    is bounded by the call timeout, again as WaitTimeout. The stage never faults."""

    async def main() -> tuple[float, str, int]:
        async with connect(daemon.address) as lab:
            stage = await lab.instrument("stage").get(Movable)
            await stage.move_abs(0.0)
            await stage.wait_settled(30)
            await stage.move_abs(10.0)
            with pytest.raises(WaitTimeout, match="did not settle within 3 s"):
                await stage.wait_settled(3)
            with pytest.raises(WaitTimeout, match="did not settle within 1 s"):
                await stage.wait_settled()
            await stage.move_abs(4.0)  # turns back from ~8 mm: about 2 s
            settled = (await stage.wait_settled(4)).value
            info = await lab.instrument("stage").info()
            return settled, info.state, info.restarts

    settled, state, restarts = aio.run(main)
    assert settled == pytest.approx(4.0, abs=0.01)
    assert state in ("ready", "busy") and restarts == 0  # busy: serving a poll


def test_an_endless_wait_is_the_callers_mistake(daemon: LabdProcess) -> None:
    """The wire turns a timeout <= 0 into "none"; an infinite one is refused, not run."""

    async def main() -> tuple[str, int]:
        async with connect(daemon.address) as lab:
            stage = await lab.instrument("stage").get(Movable)
            with pytest.raises(InvalidRequest, match="finite number of seconds"):
                await stage.wait_settled(float("inf"))
            info = await lab.instrument("stage").info()
            return info.state, info.restarts

    state, restarts = aio.run(main)
    assert state in ("ready", "busy") and restarts == 0


def test_a_real_drivers_bounded_wait_is_a_wait_timeout(tmp_path: Path) -> None:
    """The SMC100 driver over a pty bounds wait_settled with trio.fail_after: running out of
    the caller's bound reaches the caller as WaitTimeout, and the controller stays ready."""
    with SMC100Device(link=tmp_path / "smc100", mm_per_s=1.0) as controller:
        config = f"""
[instruments.linear]
driver = "newport.smc100"
port = "{controller.port}"
timeout_s = 0.5
call_timeout_s = 1.0
"""
        daemon = start_labd(tmp_path / "labd", config=config)
        try:
            with connect_blocking(daemon.address) as lab:
                linear = lab.instrument("linear").get(Movable)
                linear.move_abs(10.0)  # 10 s at 1 mm/s
                with pytest.raises(WaitTimeout, match=r"did not settle within 0\.5 s"):
                    linear.wait_settled(0.5)
                with pytest.raises(WaitTimeout, match="did not settle within 1 s"):
                    linear.wait_settled()  # bounded by the call timeout
                linear.move_abs(linear.position().value)  # stop where it is
                info = lab.instrument("linear").info()
                assert info.state in ("ready", "busy") and info.restarts == 0, info
        finally:
            daemon.stop()
        assert "TooSlowError" not in daemon.log.read_text()


def test_a_stopped_daemon_does_not_blame_the_call_in_flight(daemon: LabdProcess) -> None:
    """SIGSTOP the daemon for 5 s (five call timeouts) while a wait_settled is in flight on
    a ~0.6 s move, then SIGCONT: the wait returns the settled position, nothing faults,
    and the log says the daemon stalled."""

    async def main() -> float:
        async with connect(daemon.address) as lab:
            stage = await lab.instrument("stage").get(Movable)
            await stage.move_abs(0.0)
            await stage.wait_settled(30)
            await stage.move_abs(1.0)
            results: list[float] = []

            async def wait() -> None:
                results.append((await stage.wait_settled()).value)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(wait)
                await trio.sleep(0.2)
                os.kill(daemon.proc.pid, signal.SIGSTOP)
                try:
                    await trio.sleep(5.0)
                finally:
                    os.kill(daemon.proc.pid, signal.SIGCONT)
            return results[0]

    assert aio.run(main) == pytest.approx(1.0, abs=0.01)
    with connect_blocking(daemon.address) as lab:
        for info in lab.instruments():  # busy: serving a poll of its stream
            assert info.state in ("ready", "busy") and info.restarts == 0, info
            assert info.reason == "", info
    log = daemon.log.read_text()
    assert "daemon stalled" in log
    assert "faulted" not in log, log


def test_a_fault_is_logged_and_remembered_after_recovery(daemon: LabdProcess) -> None:
    async def main() -> None:
        async with connect(daemon.address) as lab:
            meter = lab.instrument("meter")
            await (await meter.get(FaultInjectable)).inject_fault("raise")
            # The 50 Hz poller may meet the fault first; then this read finds the meter
            # restarting, and says why.
            with pytest.raises(
                (DeviceError, InstrumentUnavailable), match="simulated device error"
            ):
                await (await meter.get(Readable)).read()

    aio.run(main)
    wait_ready(daemon, "meter")
    with connect_blocking(daemon.address) as lab:
        info = lab.instrument("meter").info()
    assert info.state in ("ready", "busy") and info.restarts >= 1
    assert "simulated device error" in info.reason  # the last fault, kept after recovery
    log = daemon.log.read_text()
    assert "meter: faulted (fault 1 of at most" in log and "simulated device error" in log
    assert "meter: restart 1 after" in log
    assert "meter: ready again after restart 1" in log


def test_giving_up_is_logged(tmp_path: Path) -> None:
    config = """
[restart]
max_restarts = 2
backoff_initial_s = 0.01
backoff_max_s = 0.02

[instruments.flaky]
driver = "sim.thermometer"
poll_hz = 20
fail_after_calls = 0    # every call faults it
"""
    daemon = start_labd(tmp_path, config=config)
    try:
        deadline = time.monotonic() + 15
        while "gave up" not in daemon.log.read_text():
            assert time.monotonic() < deadline, daemon.log.read_text()
            time.sleep(0.05)
        with connect_blocking(daemon.address) as lab:
            info = lab.instrument("flaky").info()
        assert info.state == "faulted" and "gave up after 2 restarts" in info.reason
    finally:
        daemon.stop()
    log = daemon.log.read_text()
    assert "flaky: gave up after 2 restarts within" in log
    assert "stays faulted until reset" in log
