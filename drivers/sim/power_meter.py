"""A simulated optical power meter behind a beam that a stage moves across."""

from __future__ import annotations

import math

import numpy as np
import trio

from capabilities import Reading
from drivers.sim.base import SimInstrument, check_non_negative, check_positive
from drivers.sim.world import POSITION


class SimPowerMeter(SimInstrument):
    """Reads the power of a Gaussian beam profile sampled at a linked stage's position.

    ``P(x) = peak_power · exp(-2 (x - centre)² / width²) + background`` in watts, where
    ``x`` is the position of the stage named by ``stage`` (looked up in the sim world at
    each read), ``width`` is the 1/e² radius. Noise is Gaussian with a ``noise`` fraction
    of the signal plus a ``noise_floor`` in watts, so a scan of the stage finds the peak at
    ``centre``. A read integrates for ``integration_time`` seconds, sampled at its middle.
    """

    def __init__(
        self,
        *,
        name: str = "meter",
        stage: str = "stage",
        centre: float = 3.0,
        width: float = 0.5,
        peak_power: float = 1e-3,
        background: float = 1e-7,
        noise: float = 0.005,
        noise_floor: float = 1e-8,
        integration_time: float = 0.005,
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
        owner = f"sim.power_meter {name!r}"
        check_positive(owner, width=width, peak_power=peak_power)
        check_non_negative(
            owner,
            background=background,
            noise=noise,
            noise_floor=noise_floor,
            integration_time=integration_time,
        )
        self._stage = stage
        self._centre = float(centre)
        self._width = float(width)
        self._peak = float(peak_power)
        self._background = float(background)
        self._noise = float(noise)
        self._noise_floor = float(noise_floor)
        self._integration = float(integration_time)
        self._rng = np.random.default_rng(seed)

    async def read(self) -> Reading:
        await self._call("read")
        stage_at = self.world.lookup(self._stage, POSITION, wanted_by=f"power meter {self.name!r}")
        start = trio.current_time()
        await trio.sleep(self._integration)
        x = stage_at(start + self._integration / 2)
        signal = (
            self._peak * math.exp(-2 * ((x - self._centre) / self._width) ** 2) + self._background
        )
        sigma = math.hypot(self._noise * signal, self._noise_floor)
        return Reading(signal + sigma * float(self._rng.standard_normal()), "W")
