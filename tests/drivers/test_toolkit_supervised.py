"""A real serial driver under the real supervisor: the device vanishes, the instrument
faults with a clear reason, and the supervisor's restart reconnects once it is back."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from capabilities import DeviceDisconnected, Movable
from drivers.devices.thorlabs_ell14 import ELL14Device
from labd.config import InstrumentSpec, RestartPolicy
from labd.supervisor import State, Supervisor


async def wait_for_state(supervisor: Supervisor, name: str, *states: State) -> None:
    with trio.fail_after(10):
        while supervisor.get(name).state not in states:
            await trio.sleep(0.01)


def test_vanished_device_faults_and_reconnects_when_back(tmp_path: Path) -> None:
    async def main() -> None:
        with ELL14Device(link=tmp_path / "ell14", degrees_per_s=3600.0) as mount:
            spec = InstrumentSpec(
                name="rotator",
                driver="thorlabs.ell14",
                params={"port": mount.port, "timeout_s": 0.3},
                call_timeout_s=2.0,
            )
            policy = RestartPolicy(max_restarts=100, backoff_initial_s=0.05, backoff_max_s=0.2)
            supervisor = Supervisor([spec], policy)
            async with trio.open_nursery() as nursery:
                await nursery.start(supervisor.run)
                rotator = supervisor.get("rotator")
                assert rotator.state == State.READY
                assert rotator.capabilities == ["Movable", "Stoppable", "Configurable"]
                stage = rotator.proxy(Movable)
                await stage.move_abs(30.0)
                assert (await stage.wait_settled()).value == pytest.approx(30.0, abs=0.01)

                mount.disappear()
                with pytest.raises(DeviceDisconnected, match=r"Thorlabs ELL14 .* unreachable"):
                    await stage.position()
                await wait_for_state(supervisor, "rotator", State.FAULTED, State.RESTARTING)
                assert rotator.reason is not None and "unreachable" in rotator.reason
                await trio.sleep(0.3)  # restarts keep failing while it is gone
                assert rotator.state != State.READY
                assert "cannot open" in (rotator.reason or "")

                mount.reappear()
                await wait_for_state(supervisor, "rotator", State.READY)
                assert rotator.restarts >= 1
                assert (await stage.position()).value == pytest.approx(30.0, abs=0.01)
                nursery.cancel_scope.cancel()

    trio.run(main)
