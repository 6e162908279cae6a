"""A simulated cooled scientific camera: a noisy Gaussian spot on a 2048² uint16 sensor."""

from __future__ import annotations

import math

import numpy as np
import trio

from capabilities import (
    CoolerState,
    Frame,
    FrameFormat,
    InvalidRequest,
    Limits,
    Reading,
    Roi,
    now,
)
from drivers.sim.base import SimInstrument, check_non_negative, check_positive
from drivers.sim.sensor import Sensor, SensorParams
from drivers.sim.world import POSITION, SENSOR_TEMPERATURE
from drivers.toolkit.parameters import value

#: ``trigger_mode`` choices: free-running snaps, or every frame armed and triggered.
TRIGGER_MODES = ("internal", "software")

_EXPOSURE = Limits(1e-5, 60.0, "s")
_COOLING_TARGET = Limits(-50.0, 30.0, "°C")


class SimCamera(SimInstrument):
    """A camera whose frames look like a laser spot seen by a cooled sCMOS sensor.

    Image: a Gaussian spot (``spot_sigma`` px, ``spot_peak_rate`` electrons/s at its
    centre) on a background of ``bias`` + ``background_rate``·exposure with shot noise and
    ``read_noise``; one count per electron, saturating at 65535. The spot sits at
    (``spot_x``, ``spot_y``); if ``stage`` names a simulated stage it moves along x by
    ``pixels_per_mm`` per mm the stage is away from ``stage_zero``; and it wanders by
    ``drift_amplitude`` px over ``drift_period`` s. Frame generation: see
    :mod:`drivers.sim.sensor` (~1 ms for a full frame, in a worker thread, overlapping the
    exposure), so ``snap()`` takes the exposure time.

    Cooling: the sensor starts at ``ambient`` and approaches the cooling target
    exponentially with ``cooling_time_constant``; it is STABLE within ``stable_band``
    of the target, COOLING otherwise, OFF when built with ``cooler=False``. The sensor's
    temperature is published in the sim world, so a restarted driver finds it still cold.

    Triggering: ``arm()`` then ``trigger()`` starts one exposure at the trigger; the
    next ``snap()`` returns that frame. A snap while armed but not triggered is refused.

    Parameters: ``gain`` (counts per photo-electron above the bias), ``binning`` (1, 2
    or 4: b×b pixels summed into one, so frames and ``frame_format`` shrink by b and a
    binned pixel holds the electrons of b² pixels), ``trigger_mode`` (``internal``: a
    snap exposes at once; ``software``: a snap is refused unless ``arm()`` and
    ``trigger()`` started its exposure).
    """

    gain = value(1.0, unit="", low=0.1, high=16.0, doc="counts per photo-electron above the bias")
    binning = value(
        "1",
        choices=("1", "2", "4"),
        doc="b×b sensor pixels summed into one frame pixel (frames shrink by b)",
        on_change="_check_binning",
    )
    trigger_mode = value(
        "internal",
        choices=TRIGGER_MODES,
        doc="internal: snap() exposes at once; software: each frame needs arm() and trigger()",
    )

    def __init__(
        self,
        *,
        name: str = "camera",
        sensor_width: int = 2048,
        sensor_height: int = 2048,
        exposure: float = 0.02,
        bias: float = 100.0,
        read_noise: float = 2.0,
        dark_current: float = 0.5,
        background_rate: float = 200.0,
        spot_peak_rate: float = 2e6,
        spot_sigma: float = 12.0,
        spot_x: float = 1024.0,
        spot_y: float = 1024.0,
        stage: str | None = None,
        pixels_per_mm: float = 100.0,
        stage_zero: float = 3.0,
        drift_amplitude: float = 2.0,
        drift_period: float = 60.0,
        ambient: float = 20.0,
        cooling_target: float = -10.0,
        cooling_time_constant: float = 3.0,
        stable_band: float = 0.5,
        cooler: bool = True,
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
        owner = f"sim.camera {name!r}"
        check_positive(
            owner,
            sensor_width=sensor_width,
            sensor_height=sensor_height,
            spot_sigma=spot_sigma,
            drift_period=drift_period,
            cooling_time_constant=cooling_time_constant,
            stable_band=stable_band,
        )
        check_non_negative(
            owner,
            bias=bias,
            read_noise=read_noise,
            dark_current=dark_current,
            background_rate=background_rate,
            spot_peak_rate=spot_peak_rate,
            drift_amplitude=drift_amplitude,
        )
        _EXPOSURE.check(exposure, f"{owner}: exposure")
        _COOLING_TARGET.check(cooling_target, f"{owner}: cooling_target")
        self._params = SensorParams(
            int(sensor_width),
            int(sensor_height),
            float(bias),
            float(read_noise),
            float(dark_current),
            float(background_rate),
            float(spot_peak_rate),
            float(spot_sigma),
        )
        self._seed = seed
        self._exposure = float(exposure)
        self._roi = Roi(0, 0, int(sensor_width), int(sensor_height))
        self._spot = (float(spot_x), float(spot_y))
        self._stage = stage
        self._pixels_per_mm = float(pixels_per_mm)
        self._stage_zero = float(stage_zero)
        self._drift = (float(drift_amplitude), float(drift_period))
        self._cooler = bool(cooler)
        self._target = float(cooling_target)
        self._tau = float(cooling_time_constant)
        self._stable_band = float(stable_band)
        self._ambient = float(ambient)
        self._sensor: Sensor | None = None
        self._temperature_since = (0.0, self._ambient)  # (time, °C) the cooling curve starts
        self._seq = 0
        self._armed = False
        self._triggered: tuple[float, float] | None = None  # (trigger time, exposure)

    async def open(self) -> None:
        await super().open()
        if self._sensor is None:
            # ~50 ms of random numbers for a full sensor: keep them off the event loop.
            self._sensor = await trio.to_thread.run_sync(Sensor, self._params, self._seed)
        # A restarted driver finds the sensor as cold as the previous one left it.
        t = trio.current_time()
        previous = self.world.get(self.name, SENSOR_TEMPERATURE)
        self._temperature_since = (t, self._ambient if previous is None else previous(t))
        self.world.publish(self.name, SENSOR_TEMPERATURE, self._temperature_at)
        self._armed = False
        self._triggered = None

    async def close(self) -> None:
        if self._world is not None:
            celsius = self._temperature_at(trio.current_time())
            self.world.publish(self.name, SENSOR_TEMPERATURE, lambda t: celsius)
        await super().close()

    # FrameProducer

    async def snap(self) -> Frame:
        await self._call("snap")
        if self._armed:
            raise InvalidRequest(
                f"{self.name} is armed and waits for trigger(); trigger it before snap()"
            )
        if self._triggered is not None:
            start, exposure = self._triggered
            self._triggered = None
        elif self.trigger_mode == "software":
            raise InvalidRequest(
                f"{self.name} is in software trigger mode: arm() and trigger() before each"
                " snap(), or set trigger_mode to internal"
            )
        else:
            start, exposure = trio.current_time(), self._exposure
        timestamp = now() - (trio.current_time() - start)
        spot_x, spot_y = self._spot_at(start + exposure / 2)
        sensor, roi = self._sensor, self._roi
        gain, binning = self.gain, int(self.binning)
        assert sensor is not None
        async with trio.open_nursery() as nursery:
            # Render while the "exposure" runs; the frame is ready when the exposure ends.
            nursery.start_soon(trio.sleep_until, start + exposure)
            data = await trio.to_thread.run_sync(
                sensor.render, roi, exposure, spot_x, spot_y, gain, binning, abandon_on_cancel=True
            )
        self._seq += 1
        return Frame(data=data, timestamp=timestamp, exposure_s=exposure, roi=roi, seq=self._seq)

    async def frame_format(self) -> FrameFormat:
        await self._call("frame_format")
        binning = int(self.binning)
        return FrameFormat(
            height=self._roi.height // binning,
            width=self._roi.width // binning,
            dtype=np.dtype(np.uint16).name,
        )

    # ExposureControl

    async def exposure(self) -> float:
        await self._call("exposure")
        return self._exposure

    async def set_exposure(self, seconds: float) -> None:
        await self._call("set_exposure")
        self._exposure = _EXPOSURE.check(float(seconds), f"{self.name} exposure")

    # RoiSelectable

    async def roi(self) -> Roi:
        await self._call("roi")
        return self._roi

    async def set_roi(self, roi: Roi) -> None:
        await self._call("set_roi")
        width, height = self._params.width, self._params.height
        if not isinstance(roi, Roi) or not roi.fits(width, height):
            raise InvalidRequest(
                f"ROI {roi} does not fit the {width}×{height} sensor: x and y must be >= 0,"
                f" width and height > 0, x+width <= {width} and y+height <= {height}"
            )
        self._check_binning(roi)
        self._roi = roi

    async def sensor_size(self) -> tuple[int, int]:
        await self._call("sensor_size")
        return self._params.width, self._params.height

    # Cooled

    async def cooling_target(self) -> float:
        await self._call("cooling_target")
        return self._target

    async def set_cooling_target(self, celsius: float) -> None:
        await self._call("set_cooling_target")
        target = _COOLING_TARGET.check(float(celsius), f"{self.name} cooling target")
        t = trio.current_time()
        self._temperature_since = (t, self._temperature_at(t))
        self._target = target

    async def sensor_temperature(self) -> Reading:
        await self._call("sensor_temperature")
        return Reading(self._temperature_at(trio.current_time()), "°C")

    async def cooler_state(self) -> CoolerState:
        await self._call("cooler_state")
        if not self._cooler:
            return CoolerState.OFF
        if abs(self._temperature_at(trio.current_time()) - self._target) <= self._stable_band:
            return CoolerState.STABLE
        return CoolerState.COOLING

    # Triggerable

    async def arm(self) -> None:
        await self._call("arm")
        self._armed = True
        self._triggered = None

    async def trigger(self) -> None:
        await self._call("trigger")
        if not self._armed:
            raise InvalidRequest(f"{self.name} is not armed: call arm() before trigger()")
        self._armed = False
        self._triggered = (trio.current_time(), self._exposure)

    # internals

    def _check_binning(self, roi: Roi | None = None) -> None:
        roi, binning = roi or self._roi, int(self.binning)
        if roi.width < binning or roi.height < binning:
            raise InvalidRequest(
                f"{self.name}: a {roi.width}×{roi.height} ROI is smaller than one {binning}×"
                f"{binning} bin; choose a larger ROI or a smaller binning"
            )

    def _temperature_at(self, t: float) -> float:
        since, celsius = self._temperature_since
        if not self._cooler:
            return celsius
        return self._target + (celsius - self._target) * math.exp(-max(t - since, 0.0) / self._tau)

    def _spot_at(self, t: float) -> tuple[float, float]:
        x, y = self._spot
        if self._stage is not None:
            stage_at = self.world.lookup(self._stage, POSITION, wanted_by=f"camera {self.name!r}")
            x += self._pixels_per_mm * (stage_at(t) - self._stage_zero)
        amplitude, period = self._drift
        if amplitude:
            # Two incommensurate periods: the spot wanders, it does not circle.
            x += amplitude * math.sin(2 * math.pi * t / period)
            y += amplitude * math.sin(2 * math.pi * t / (1.37 * period))
        return x, y
