"""The mixed-lab example, served by a real ``labd serve`` and driven through the client.

Everything is a separate process, as in a lab: the three serial simulators
(``python -m drivers.devices ...``) publish ptys at paths under ``tmp_path``, the daemon
reads a copy of docs/examples/mixed-lab.toml pointing at them, and the test talks to it
only through :func:`labd.client.connect_blocking` over a private unix socket. Then one
serial device is unplugged (SIGUSR1 to its simulator) and plugged back (SIGUSR2).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from capabilities import DeviceDisconnected, Movable, Readable, TemperatureSensor, VoltageSource
from drivers.devices import YAML_DIR
from labd.client import BlockingLab, connect_blocking
from labd.errors import InstrumentUnavailable

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "docs" / "examples" / "mixed-lab.toml"
SIMULATORS = {"ell14": "rotator", "smc100": "linear", "1830c": "power"}


def spawn(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=dict(os.environ, PYTHONPATH=str(REPO)),
            cwd=REPO,
        )


def wait_until(what: str, done: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.02)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def lab_config(tmp: Path) -> str:
    """The example with its serial ports under ``tmp`` and absolute pyvisa-sim paths."""
    text = EXAMPLE.read_text()
    replacements = {f"/tmp/labd-{device}": str(tmp / device) for device in SIMULATORS}
    replacements["../../drivers/devices/"] = f"{YAML_DIR}/"
    # Restart quickly, so reconnecting after the replug takes well under a second.
    replacements["[restart]\n"] = "[restart]\nbackoff_max_s = 0.3\n"
    for old, new in replacements.items():
        assert old in text, f"{EXAMPLE} no longer contains {old!r}; update this test"
        text = text.replace(old, new)
    return text


class ServedLab:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.simulators: dict[str, subprocess.Popen[bytes]] = {}
        self.daemon: subprocess.Popen[bytes] | None = None
        self.socket = tmp / "run" / "labd.sock"

    def start(self) -> None:
        for device in SIMULATORS:
            self.simulators[device] = spawn(
                ["-m", "drivers.devices", device, "--link", str(self.tmp / device)],
                self.tmp / f"{device}.log",
            )
        logs = [self.tmp / f"{device}.log" for device in SIMULATORS]
        wait_until("the simulators", lambda: all(b"listening" in log.read_bytes() for log in logs))
        config = self.tmp / "mixed-lab.toml"
        config.write_text(lab_config(self.tmp))
        log = self.tmp / "labd.log"
        self.daemon = spawn(
            ["-m", "labd", "serve", "--config", str(config), "--socket", str(self.socket)], log
        )
        daemon = self.daemon

        def ready() -> bool:
            if daemon.poll() is not None:
                raise AssertionError(f"labd serve exited:\n{log.read_text()}")
            return b"labd: ready" in log.read_bytes()

        wait_until("labd serve", ready, timeout=30)

    def stop(self) -> None:
        if self.daemon is not None:
            stop(self.daemon)
        for proc in self.simulators.values():
            stop(proc)

    def unplug(self, device: str) -> None:
        self.simulators[device].send_signal(signal.SIGUSR1)
        wait_until(f"{device} to vanish", lambda: not (self.tmp / device).exists())

    def replug(self, device: str) -> None:
        self.simulators[device].send_signal(signal.SIGUSR2)
        wait_until(f"{device} to come back", lambda: (self.tmp / device).exists())


@pytest.fixture
def served(tmp_path: Path) -> Iterator[ServedLab]:
    lab = ServedLab(tmp_path)
    try:
        lab.start()
        yield lab
    finally:
        lab.stop()
    assert lab.daemon is not None and lab.daemon.returncode == 0, (
        tmp_path / "labd.log"
    ).read_text()


def state_of(lab: BlockingLab, name: str) -> tuple[str, str]:
    info = lab.instrument(name).info()
    return info.state, info.reason


def test_every_instrument_family_answers_over_rpc_and_a_replugged_device_recovers(
    served: ServedLab,
) -> None:
    with connect_blocking(str(served.socket)) as lab:
        infos = {info.name: info for info in lab.instruments()}
        for name in ("dmm", "psu", "cryo", "attenuator", "rotator", "linear", "power"):
            assert infos[name].state in ("ready", "busy"), infos[name]

        dmm = lab.instrument("dmm").get(Readable)
        assert dmm.read().value == pytest.approx(1.23456789)

        psu = lab.instrument("psu/ch1").get(VoltageSource)
        psu.set_voltage(3.3)
        assert psu.voltage_setpoint() == pytest.approx(3.3)

        cryo = lab.instrument("cryo/A").get(TemperatureSensor)
        kelvin = cryo.temperature()
        assert kelvin.value == pytest.approx(293.15) and kelvin.unit == "K"

        linear = lab.instrument("linear").get(Movable)
        linear.move_abs(2.5)
        assert linear.wait_settled(5.0).value == pytest.approx(2.5, abs=1e-6)
        assert linear.position().unit == "mm"

        rotator = lab.instrument("rotator").get(Movable)
        rotator.move_abs(90.0)
        assert rotator.wait_settled(5.0).value == pytest.approx(90.0, abs=0.01)
        assert rotator.position().unit == "deg"

        power = lab.instrument("power").get(Readable)
        watts = power.read()
        assert watts.value == pytest.approx(1.5e-3) and watts.unit == "W"

        attenuator = lab.instrument("attenuator")
        assert attenuator.get(Readable).read().value == pytest.approx(1.5)
        slider = attenuator.get(Movable)
        slider.move_abs(-12.5)
        assert slider.position().value == pytest.approx(-12.5)

        # Unplug the SMC100: the daemon sees it on the next call and faults it alone.
        states = lab.watch_states()
        served.unplug("smc100")
        with pytest.raises(DeviceDisconnected, match=r"Newport SMC100 .* unreachable"):
            linear.position()
        wait_until("linear to fault", lambda: state_of(lab, "linear")[0] != "ready")
        state, reason = state_of(lab, "linear")
        assert state in ("faulted", "restarting")
        assert "SMC100" in reason and ("unreachable" in reason or "cannot open" in reason)
        with pytest.raises(InstrumentUnavailable, match=r"linear is (faulted|restarting)"):
            linear.position()
        # Its siblings, serial and VISA, never notice.
        assert power.read().unit == "W"
        assert rotator.position().value == pytest.approx(90.0, abs=0.01)
        assert dmm.read().value == pytest.approx(1.23456789)
        assert cryo.temperature().unit == "K"
        assert state_of(lab, "power")[0] in ("ready", "busy")

        # Plug it back: the supervisor's next restart reconnects, at the same path.
        served.replug("smc100")
        wait_until("linear to be ready again", lambda: state_of(lab, "linear")[0] == "ready")
        info = lab.instrument("linear").info()
        # Ready again, it still says what went wrong last.
        assert info.restarts >= 1 and "unreachable" in info.reason
        # Watchers were told each step as it happened.
        seen: list[str] = []
        while seen[-1:] != ["ready"]:
            change = states.next(timeout=5.0)
            assert change.instrument == "linear", change  # and no sibling changed state
            seen.append(change.state)
        states.close()
        assert seen[0] == "faulted" and "restarting" in seen, seen
        # Only the cable was pulled: the controller kept its position.
        assert linear.position().value == pytest.approx(2.5, abs=1e-6)
        linear.move_abs(1.0)
        assert linear.wait_settled(5.0).value == pytest.approx(1.0, abs=1e-6)
