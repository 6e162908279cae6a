"""Scripts reaching instruments through the real Supervisor, as they do in the daemon."""

import pytest
import trio

from capabilities import FaultInjectable
from labd.config import InstrumentSpec
from labd.scripting import ScriptEngine, ScriptFailed, ScriptStore, supervisor_resolver
from labd.supervisor import State, Supervisor
from tests.labd.scripting.simlab import EXAMPLES, PEAK_MM, SCAN_GRANTS

SPECS = [
    InstrumentSpec(
        "stage", "sim.stage", {"velocity": 500.0, "acceleration": 5e4, "settle_time": 0.001}
    ),
    InstrumentSpec("meter", "sim.power_meter", {"stage": "stage", "integration_time": 0.0005}),
    InstrumentSpec(
        "camera",
        "sim.camera",
        {
            "sensor_width": 64,
            "sensor_height": 48,
            "spot_x": 32,
            "spot_y": 24,
            "spot_sigma": 3,
            "pixels_per_mm": 8,
            "stage": "stage",
            "drift_amplitude": 0,
            "exposure": 0.0005,
        },
    ),
    InstrumentSpec("thermo", "sim.thermometer", {}),
]


def test_scan_through_the_supervisor_and_a_driver_fault_mid_run() -> None:
    async def main() -> None:
        supervisor = Supervisor(SPECS)
        engine = ScriptEngine(ScriptStore(), supervisor_resolver(supervisor))
        async with trio.open_nursery() as nursery:
            await nursery.start(supervisor.run)
            await nursery.start(engine.run)
            await engine.store.upload("scan", (EXAMPLES / "wat" / "scan.wat").read_text())
            results = await engine.start("scan", grants=SCAN_GRANTS).wait()
            assert results["peak_position"] == pytest.approx(PEAK_MM, abs=0.01)

            # The meter breaks mid-scan: the script sees E_DEVICE, the run fails with
            # code "device", the supervisor restarts the meter, the siblings stay ready.
            run = engine.start("scan", grants=SCAN_GRANTS, args={"steps": "200"})
            await trio.sleep(0.05)
            await supervisor.get("meter").proxy(FaultInjectable).inject_fault("raise")
            with pytest.raises(ScriptFailed, match="simulated device error") as failed:
                await run.wait()
            assert failed.value.code == "device"
            assert supervisor.get("stage").state in (State.READY, State.BUSY)
            assert supervisor.get("thermo").state is State.READY
            with trio.fail_after(5):
                while supervisor.get("meter").state is not State.READY:
                    await trio.sleep(0.01)
            results = await engine.start("scan", grants=SCAN_GRANTS).wait()
            assert results["peak_position"] == pytest.approx(PEAK_MM, abs=0.01)
            nursery.cancel_scope.cancel()

    trio.run(main)


def test_unknown_instrument_and_missing_capability_through_the_supervisor() -> None:
    from labd.scripting import Grants
    from labd.scripting.abi import Kind
    from tests.labd.scripting.test_run import open_as

    async def main() -> None:
        supervisor = Supervisor(SPECS)
        engine = ScriptEngine(ScriptStore(), supervisor_resolver(supervisor))
        async with trio.open_nursery() as nursery:
            await nursery.start(supervisor.run)
            await nursery.start(engine.run)
            for instrument, kind, code, message in [
                ("cryostat", Kind.READABLE, "notfound", "no instrument named 'cryostat'"),
                ("thermo", Kind.MOVABLE, "kind", "thermo is not Movable"),
            ]:
                await engine.store.upload("open", open_as(instrument, kind))
                with pytest.raises(ScriptFailed, match=message) as failed:
                    await engine.start("open", grants=Grants.everything()).wait()
                assert failed.value.code == code
            nursery.cancel_scope.cancel()

    trio.run(main)
