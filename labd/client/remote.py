"""Client-side capability objects: each implements its :mod:`capabilities` Protocol.

``await instrument.get(Movable)`` returns a :class:`RemoteMovable`, which mypy accepts
wherever a ``Movable`` is expected — the same experiment code runs in the daemon (on a
supervisor proxy) and in a client (over the wire).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from capabilities import CoolerState, Frame, FrameFormat, Limits, Reading, Roi, SupplyReadback
from labd import records
from labd.client.link import Link
from labd.client.parameters import RemoteConfigurable
from labd.contract import convert


class _Remote:
    def __init__(self, link: Link, cap: Any) -> None:
        self._link = link
        self._cap = cap

    async def _call(self, send: Callable[[], Any]) -> Any:
        return await self._link.call(send)


class RemoteMovable(_Remote):
    async def move_abs(self, position: float) -> None:
        await self._call(lambda: self._cap.moveAbs(position))

    async def move_rel(self, delta: float) -> None:
        await self._call(lambda: self._cap.moveRel(delta))

    async def position(self) -> Reading:
        return convert.reading_from((await self._call(self._cap.position)).reading)

    async def wait_settled(self, timeout: float | None = None) -> Reading:
        result = await self._call(lambda: self._cap.waitSettled(timeout or 0.0))
        return convert.reading_from(result.reading)

    async def limits(self) -> Limits:
        return convert.limits_from((await self._call(self._cap.limits)).limits)


class RemoteStoppable(_Remote):
    async def stop(self) -> None:
        await self._call(self._cap.stop)


class RemoteReadable(_Remote):
    async def read(self) -> Reading:
        return convert.reading_from((await self._call(self._cap.read)).reading)


class RemoteTriggerable(_Remote):
    async def arm(self) -> None:
        await self._call(self._cap.arm)

    async def trigger(self) -> None:
        await self._call(self._cap.trigger)


class RemoteFrameProducer(_Remote):
    async def snap(self) -> Frame:
        result = await self._call(self._cap.snap)
        return records.frame_from_batch(records.batch_from_ipc(result.frame))

    async def frame_format(self) -> FrameFormat:
        return convert.frame_format_from((await self._call(self._cap.frameFormat)).format)


class RemoteExposureControl(_Remote):
    async def exposure(self) -> float:
        seconds: float = (await self._call(self._cap.exposure)).seconds
        return seconds

    async def set_exposure(self, seconds: float) -> None:
        await self._call(lambda: self._cap.setExposure(seconds))


class RemoteRoiSelectable(_Remote):
    async def roi(self) -> Roi:
        return convert.roi_from((await self._call(self._cap.roi)).roi)

    async def set_roi(self, roi: Roi) -> None:
        wire_roi = {"x": roi.x, "y": roi.y, "width": roi.width, "height": roi.height}
        await self._call(lambda: self._cap.setRoi(wire_roi))

    async def sensor_size(self) -> tuple[int, int]:
        result = await self._call(self._cap.sensorSize)
        return int(result.width), int(result.height)


class RemoteCooled(_Remote):
    async def cooling_target(self) -> float:
        celsius: float = (await self._call(self._cap.coolingTarget)).celsius
        return celsius

    async def set_cooling_target(self, celsius: float) -> None:
        await self._call(lambda: self._cap.setCoolingTarget(celsius))

    async def sensor_temperature(self) -> Reading:
        return convert.reading_from((await self._call(self._cap.sensorTemperature)).reading)

    async def cooler_state(self) -> CoolerState:
        return convert.cooler_state_from((await self._call(self._cap.coolerState)).state)


class RemoteTemperatureSensor(_Remote):
    async def temperature(self) -> Reading:
        return convert.reading_from((await self._call(self._cap.temperature)).reading)


class RemoteVoltageSource(_Remote):
    async def set_voltage(self, volts: float) -> None:
        await self._call(lambda: self._cap.setVoltage(volts))

    async def voltage_setpoint(self) -> float:
        volts: float = (await self._call(self._cap.voltageSetpoint)).volts
        return volts

    async def set_current_limit(self, amps: float) -> None:
        await self._call(lambda: self._cap.setCurrentLimit(amps))

    async def current_limit(self) -> float:
        amps: float = (await self._call(self._cap.currentLimit)).amps
        return amps

    async def readback(self) -> SupplyReadback:
        return convert.readback_from((await self._call(self._cap.readback)).readback)


class RemoteSwitchable(_Remote):
    async def set_on(self, on: bool) -> None:
        await self._call(lambda: self._cap.setOn(on))

    async def is_on(self) -> bool:
        on: bool = (await self._call(self._cap.isOn)).on
        return on


class RemoteFaultInjectable(_Remote):
    async def inject_fault(self, kind: str) -> None:
        await self._call(lambda: self._cap.injectFault(kind))


class RemoteWavelengthTunable(_Remote):
    async def wavelength(self) -> float:
        nm: float = (await self._call(self._cap.wavelength)).nm
        return nm

    async def set_wavelength(self, nm: float) -> None:
        await self._call(lambda: self._cap.setWavelength(nm))


class RemoteTemperatureController(_Remote):
    async def temperature_setpoint(self) -> float:
        kelvin: float = (await self._call(self._cap.temperatureSetpoint)).kelvin
        return kelvin

    async def set_temperature_setpoint(self, kelvin: float) -> None:
        await self._call(lambda: self._cap.setTemperatureSetpoint(kelvin))

    async def ramp_rate(self) -> float:
        rate: float = (await self._call(self._cap.rampRate)).kelvinPerMin
        return rate

    async def set_ramp_rate(self, kelvin_per_min: float) -> None:
        await self._call(lambda: self._cap.setRampRate(kelvin_per_min))

    async def heater_output(self) -> Reading:
        return convert.reading_from((await self._call(self._cap.heaterOutput)).reading)


#: capability name -> (field of the wire ``Capabilities`` struct, client class)
REMOTES: dict[str, tuple[str, type[_Remote | RemoteConfigurable]]] = {
    "Movable": ("movable", RemoteMovable),
    "Stoppable": ("stoppable", RemoteStoppable),
    "Readable": ("readable", RemoteReadable),
    "Triggerable": ("triggerable", RemoteTriggerable),
    "FrameProducer": ("frameProducer", RemoteFrameProducer),
    "ExposureControl": ("exposureControl", RemoteExposureControl),
    "RoiSelectable": ("roiSelectable", RemoteRoiSelectable),
    "Cooled": ("cooled", RemoteCooled),
    "TemperatureSensor": ("temperatureSensor", RemoteTemperatureSensor),
    "VoltageSource": ("voltageSource", RemoteVoltageSource),
    "Switchable": ("switchable", RemoteSwitchable),
    "FaultInjectable": ("faultInjectable", RemoteFaultInjectable),
    "Configurable": ("configurable", RemoteConfigurable),
    "WavelengthTunable": ("wavelengthTunable", RemoteWavelengthTunable),
    "TemperatureController": ("temperatureController", RemoteTemperatureController),
}
