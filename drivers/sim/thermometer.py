"""A simulated thermometer on a sample that a power supply can heat."""

from __future__ import annotations

import math

import numpy as np
import trio

from capabilities import Reading
from drivers.sim.base import SimInstrument, check_non_negative, check_positive
from drivers.sim.world import HEATING_POWER, SAMPLE_HEAT


class SimThermometer(SimInstrument):
    """Kelvin readings: a base temperature with slow drift, heating, and noise.

    ``T = temperature + drift_amplitude · sin(2π t / drift_period) + ΔT_heat + noise``.
    If ``supply`` names a simulated power supply, its output power heats the sample
    through a first-order thermal model: ``ΔT_heat`` relaxes towards
    ``thermal_resistance · P`` with ``thermal_time_constant``. The model is integrated
    exactly over the supply's history of steps, so the answer does not depend on how
    often the thermometer is read. The heat in the sample is published in the sim world,
    so a restarted thermometer driver carries on from it.
    """

    def __init__(
        self,
        *,
        name: str = "thermo",
        temperature: float = 295.0,
        drift_amplitude: float = 0.05,
        drift_period: float = 600.0,
        noise: float = 0.002,
        supply: str | None = None,
        thermal_resistance: float = 2.0,
        thermal_time_constant: float = 5.0,
        seed: int | None = None,
        fail_after_calls: int | None = None,
        hang_after_calls: int | None = None,
        disconnect_after_calls: int | None = None,
    ) -> None:
        super().__init__(
            name,
            fail_after_calls=fail_after_calls,
            hang_after_calls=hang_after_calls,
            disconnect_after_calls=disconnect_after_calls,
        )
        owner = f"sim.thermometer {name!r}"
        check_positive(
            owner,
            temperature=temperature,
            drift_period=drift_period,
            thermal_time_constant=thermal_time_constant,
        )
        check_non_negative(
            owner,
            drift_amplitude=drift_amplitude,
            noise=noise,
            thermal_resistance=thermal_resistance,
        )
        self._base = float(temperature)
        self._drift = (float(drift_amplitude), float(drift_period))
        self._noise = float(noise)
        self._supply = supply
        self._r_th = float(thermal_resistance)
        self._tau = float(thermal_time_constant)
        self._rng = np.random.default_rng(seed)
        self._heat = 0.0  # ΔT above the base, in kelvin, as of self._heat_time
        self._heat_time = 0.0

    async def open(self) -> None:
        await super().open()
        # The sample keeps its heat while a thermometer driver is restarted.
        resumed = self.world.get(self.name, SAMPLE_HEAT)
        self._heat_time, self._heat = resumed or (trio.current_time(), 0.0)

    async def temperature(self) -> Reading:
        await self._call("temperature")
        t = trio.current_time()
        if self._supply is not None:
            power = self.world.lookup(
                self._supply, HEATING_POWER, wanted_by=f"thermometer {self.name!r}"
            )
            for start, end, watts in power.segments(self._heat_time, t):
                steady = self._r_th * watts
                self._heat = steady + (self._heat - steady) * math.exp(-(end - start) / self._tau)
        self._heat_time = t
        self.world.publish(self.name, SAMPLE_HEAT, (t, self._heat))
        amplitude, period = self._drift
        kelvin = (
            self._base
            + amplitude * math.sin(2 * math.pi * t / period)
            + self._heat
            + self._noise * float(self._rng.standard_normal())
        )
        return Reading(kelvin, "K")
