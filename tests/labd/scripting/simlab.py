"""A small, fast simulated lab for script tests: the real sim drivers, opened directly."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import trio

from drivers.sim.camera import SimCamera
from drivers.sim.power_meter import SimPowerMeter
from drivers.sim.power_supply import SimPowerSupply
from drivers.sim.stage import SimStage
from drivers.sim.thermometer import SimThermometer
from labd.scripting import Grants, ScriptEngine, ScriptStore, objects_resolver

EXAMPLES = Path(__file__).resolve().parents[3] / "wasm_scripts" / "examples"
PEAK_MM = 3.0
"""Where the simulated meter's beam is centred (``SimPowerMeter`` default)."""

SCAN_GRANTS = Grants.parse(["stage:Movable", "meter:Readable", "camera:FrameProducer"])
SWEEP_GRANTS = Grants.parse(["psu:VoltageSource,Switchable", "thermo:TemperatureSensor"])
RASTER_GRANTS = Grants.parse(["psu:VoltageSource,Switchable", "stage:Movable", "meter:Readable"])


@asynccontextmanager
async def sim_lab(**stage_params: Any) -> AsyncIterator[dict[str, Any]]:
    """The five sim instruments, fast enough for tests, keyed by their usual names."""
    stage = SimStage(
        **{"velocity": 500.0, "acceleration": 5e4, "settle_time": 0.001, **stage_params},
    )
    meter = SimPowerMeter(integration_time=0.0005, seed=1)
    camera = SimCamera(
        sensor_width=64,
        sensor_height=48,
        spot_x=32,
        spot_y=24,
        spot_sigma=3,
        pixels_per_mm=8,
        stage="stage",
        drift_amplitude=0,
        exposure=0.0005,
        seed=2,
    )
    psu = SimPowerSupply()
    thermo = SimThermometer(supply="psu", thermal_time_constant=0.05, seed=3)
    lab: dict[str, Any] = {
        "stage": stage,
        "meter": meter,
        "camera": camera,
        "psu": psu,
        "thermo": thermo,
    }
    for instrument in lab.values():
        await instrument.open()
    try:
        yield lab
    finally:
        with trio.CancelScope(shield=True):
            for instrument in lab.values():
                await instrument.close()


@asynccontextmanager
async def script_engine(
    lab: dict[str, Any], store: ScriptStore | None = None, **options: Any
) -> AsyncIterator[ScriptEngine]:
    """A running :class:`ScriptEngine` over ``lab``'s instruments."""
    engine = ScriptEngine(store or ScriptStore(), objects_resolver(lab), **options)
    async with trio.open_nursery() as nursery:
        await nursery.start(engine.run)
        yield engine
        nursery.cancel_scope.cancel()
