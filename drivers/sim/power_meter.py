"""A simulated optical power meter behind a beam that a stage moves across."""

from __future__ import annotations

import math

import numpy as np
import trio

from capabilities import Limits, MeasurementInvalid, Reading
from drivers.sim.base import SimInstrument, check_non_negative, check_positive
from drivers.sim.world import POSITION
from drivers.toolkit.parameters import value

_WAVELENGTH = Limits(400.0, 1800.0, "nm")

#: The ``range`` choices and their full scale in W (``auto``: the meter picks one).
RANGES: dict[str, float] = {
    "auto": math.inf,
    "10 uW": 1e-5,
    "100 uW": 1e-4,
    "1 mW": 1e-3,
    "10 mW": 1e-2,
    "100 mW": 1e-1,
    "1 W": 1.0,
}


def responsivity(nm: float) -> float:
    """A/W of the simulated detector head at ``nm``: photon energy times a broad
    quantum-efficiency curve (smooth and positive over the whole span; its shape is made
    up, its role is real: a meter set to the wrong wavelength reads wrong)."""
    efficiency = 0.3 + 0.6 * math.exp(-(((nm - 950.0) / 350.0) ** 2))
    return nm / 1239.84 * efficiency


class SimPowerMeter(SimInstrument):
    """Reads the power of a Gaussian beam profile sampled at a linked stage's position;
    WavelengthTunable.

    ``P(x) = peak_power · exp(-2 (x - centre)² / width²) + background`` in watts, where
    ``x`` is the position of the stage named by ``stage`` (looked up in the sim world at
    each read), ``width`` is the 1/e² radius. Noise is Gaussian with a ``noise`` fraction
    of the signal plus a ``noise_floor`` in watts, so a scan of the stage finds the peak at
    ``centre``. A read integrates for ``integration_time`` seconds, sampled at its middle.

    The beam has the wavelength ``beam_wavelength`` (nm). The meter corrects for the
    detector's responsivity at the ``wavelength`` it is set to (a parameter, and
    WavelengthTunable), so set to the beam's wavelength it reads the true power, and set
    to another it reads ``P · R(beam) / R(set)`` (:func:`responsivity`), as a real meter
    does. ``range`` is ``auto`` or a full scale; a reading above a fixed full scale raises
    :class:`~capabilities.MeasurementInvalid` (no number is recorded, the meter stays
    ready): choose a higher range or ``auto``.
    """

    _wavelength = value(
        1064.0,
        name="wavelength",
        unit="nm",
        low=_WAVELENGTH.low,
        high=_WAVELENGTH.high,
        doc="wavelength the detector's responsivity is corrected for",
    )
    range = value(
        "auto",
        choices=tuple(RANGES),
        doc="full scale of a reading; above it a read fails as over range",
    )

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
        beam_wavelength: float = 1064.0,
        wavelength: float | None = None,
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
        _WAVELENGTH.check(beam_wavelength, f"{owner}: beam_wavelength")
        self._beam_wavelength = float(beam_wavelength)
        self._wavelength = float(beam_wavelength if wavelength is None else wavelength)
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
        true_power = (
            self._peak * math.exp(-2 * ((x - self._centre) / self._width) ** 2) + self._background
        )
        signal = true_power * responsivity(self._beam_wavelength) / responsivity(self._wavelength)
        sigma = math.hypot(self._noise * signal, self._noise_floor)
        watts = signal + sigma * float(self._rng.standard_normal())
        full_scale = RANGES[self.range]
        if watts > full_scale:
            raise MeasurementInvalid(
                f"{self.name}: over range: {watts:.3g} W is above the {self.range} full scale;"
                " set the range parameter higher or to auto"
            )
        return Reading(watts, "W")

    # WavelengthTunable

    async def wavelength(self) -> float:
        await self._call("wavelength")
        return self._wavelength

    async def set_wavelength(self, nm: float) -> None:
        await self._call("set_wavelength")
        self._wavelength = _WAVELENGTH.check(float(nm), f"{self.name} wavelength")
