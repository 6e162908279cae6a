"""One Cap'n Proto server class per capability, each a thin adapter onto the supervisor.

Every call goes through :meth:`Target.call`: check the holder's :class:`Policy` (revoked?
expired? read-only?), run the driver method as a Trio task in the connection's nursery via
:func:`labd.aio.to_trio` (so a cancelled RPC cancels the driver call), and turn any
exception into its short wire form. A restricted holder's call carries the policy as its
guard, which the instrument's owner task runs atomically with the call against the
set-points the call would leave (ranges: docs/security.md). The classes only translate
arguments and results between wire structs and :mod:`capabilities.values`.

Fault injection is the lab owner's alone: a restricted or shared capability never
carries ``FaultInjectable`` (:func:`granted`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from capabilities import Frame
from labd import records
from labd.aio import to_trio
from labd.contract import convert, schema
from labd.contract.errors import to_wire_error
from labd.rpc.ipc import ipc_buffer
from labd.rpc.policy import Policy
from labd.supervisor import InstrumentHandle

_s: Any = schema.load()


class Target:
    """One instrument as seen through one capability holder's policy."""

    def __init__(self, handle: InstrumentHandle, policy: Policy, nursery: trio.Nursery) -> None:
        self.handle = handle
        self.policy = policy
        self.nursery = nursery

    async def run(self, afn: Callable[[], Awaitable[Any]]) -> Any:
        """Run the Trio function ``afn`` for an RPC; errors leave as :class:`WireError`."""
        try:
            return await to_trio(self.nursery, afn)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            raise to_wire_error(exc) from None

    async def call(self, method: str, *args: Any, mutates: bool = False) -> Any:
        """``handle.call(method, *args)`` if the policy allows it, now and as it runs."""

        async def checked() -> Any:
            self.policy.check_call(method, mutates=mutates)
            guard = (
                self.policy.guard(method, mutates=mutates) if self.policy.is_restricted else None
            )
            return await self.handle.call(method, *args, guard=guard)

        return await self.run(checked)


class MovableServer(_s.Movable.Server):  # type: ignore[misc]
    def __init__(self, target: Target) -> None:
        self._t = target

    async def moveAbs(self, position: float, **_: Any) -> None:
        await self._t.call("move_abs", position, mutates=True)

    async def moveRel(self, delta: float, **_: Any) -> None:
        await self._t.call("move_rel", delta, mutates=True)

    async def position(self, _context: Any, **_: Any) -> None:
        convert.reading_to(_context.results.reading, await self._t.call("position"))

    async def waitSettled(self, timeout: float, _context: Any, **_: Any) -> None:
        reading = await self._t.call("wait_settled", timeout if timeout > 0 else None)
        convert.reading_to(_context.results.reading, reading)

    async def limits(self, _context: Any, **_: Any) -> None:
        limits = await self._t.call("limits")
        bounds = self._t.policy.effective_range("position")
        if bounds is not None:  # a restricted holder sees the range it may use
            limits = type(limits)(
                max(limits.low, bounds[0]), min(limits.high, bounds[1]), limits.unit
            )
        convert.limits_to(_context.results.limits, limits)


class StoppableServer(_s.Stoppable.Server):  # type: ignore[misc]
    def __init__(self, target: Target) -> None:
        self._t = target

    async def stop(self, **_: Any) -> None:
        await self._t.call("stop", mutates=True)


class ReadableServer(_s.Readable.Server):  # type: ignore[misc]
    def __init__(self, target: Target) -> None:
        self._t = target

    async def read(self, _context: Any, **_: Any) -> None:
        convert.reading_to(_context.results.reading, await self._t.call("read"))


class TriggerableServer(_s.Triggerable.Server):  # type: ignore[misc]
    def __init__(self, target: Target) -> None:
        self._t = target

    async def arm(self, **_: Any) -> None:
        await self._t.call("arm", mutates=True)

    async def trigger(self, **_: Any) -> None:
        await self._t.call("trigger", mutates=True)


class FrameProducerServer(_s.FrameProducer.Server):  # type: ignore[misc]
    def __init__(self, target: Target) -> None:
        self._t = target

    async def snap(self, _context: Any, **_: Any) -> None:
        frame: Frame = await self._t.call("snap")
        _context.results.frame = memoryview(ipc_buffer(records.frame_to_batch(frame)))

    async def frameFormat(self, _context: Any, **_: Any) -> None:
        convert.frame_format_to(_context.results.format, await self._t.call("frame_format"))


class ExposureControlServer(_s.ExposureControl.Server):  # type: ignore[misc]
    def __init__(self, target: Target) -> None:
        self._t = target

    async def exposure(self, **_: Any) -> float:
        seconds: float = await self._t.call("exposure")
        return seconds

    async def setExposure(self, seconds: float, **_: Any) -> None:
        await self._t.call("set_exposure", seconds, mutates=True)


class RoiSelectableServer(_s.RoiSelectable.Server):  # type: ignore[misc]
    def __init__(self, target: Target) -> None:
        self._t = target

    async def roi(self, _context: Any, **_: Any) -> None:
        convert.roi_to(_context.results.roi, await self._t.call("roi"))

    async def setRoi(self, roi: Any, **_: Any) -> None:
        await self._t.call("set_roi", convert.roi_from(roi), mutates=True)

    async def sensorSize(self, **_: Any) -> tuple[int, int]:
        width, height = await self._t.call("sensor_size")
        return width, height


class CooledServer(_s.Cooled.Server):  # type: ignore[misc]
    def __init__(self, target: Target) -> None:
        self._t = target

    async def coolingTarget(self, **_: Any) -> float:
        celsius: float = await self._t.call("cooling_target")
        return celsius

    async def setCoolingTarget(self, celsius: float, **_: Any) -> None:
        await self._t.call("set_cooling_target", celsius, mutates=True)

    async def sensorTemperature(self, _context: Any, **_: Any) -> None:
        convert.reading_to(_context.results.reading, await self._t.call("sensor_temperature"))

    async def coolerState(self, **_: Any) -> str:
        return convert.cooler_state_to(await self._t.call("cooler_state"))


class TemperatureSensorServer(_s.TemperatureSensor.Server):  # type: ignore[misc]
    def __init__(self, target: Target) -> None:
        self._t = target

    async def temperature(self, _context: Any, **_: Any) -> None:
        convert.reading_to(_context.results.reading, await self._t.call("temperature"))


class VoltageSourceServer(_s.VoltageSource.Server):  # type: ignore[misc]
    def __init__(self, target: Target) -> None:
        self._t = target

    async def setVoltage(self, volts: float, **_: Any) -> None:
        await self._t.call("set_voltage", volts, mutates=True)

    async def voltageSetpoint(self, **_: Any) -> float:
        volts: float = await self._t.call("voltage_setpoint")
        return volts

    async def setCurrentLimit(self, amps: float, **_: Any) -> None:
        await self._t.call("set_current_limit", amps, mutates=True)

    async def currentLimit(self, **_: Any) -> float:
        amps: float = await self._t.call("current_limit")
        return amps

    async def readback(self, _context: Any, **_: Any) -> None:
        convert.readback_to(_context.results.readback, await self._t.call("readback"))


class SwitchableServer(_s.Switchable.Server):  # type: ignore[misc]
    def __init__(self, target: Target) -> None:
        self._t = target

    async def setOn(self, on: bool, **_: Any) -> None:
        await self._t.call("set_on", on, mutates=True)

    async def isOn(self, **_: Any) -> bool:
        on: bool = await self._t.call("is_on")
        return on


class FaultInjectableServer(_s.FaultInjectable.Server):  # type: ignore[misc]
    def __init__(self, target: Target) -> None:
        self._t = target

    async def injectFault(self, kind: str, **_: Any) -> None:
        await self._t.call("inject_fault", kind, mutates=True)


#: capability name -> (field of the ``Capabilities`` struct, server class)
SERVERS: dict[str, tuple[str, type[Any]]] = {
    "Movable": ("movable", MovableServer),
    "Stoppable": ("stoppable", StoppableServer),
    "Readable": ("readable", ReadableServer),
    "Triggerable": ("triggerable", TriggerableServer),
    "FrameProducer": ("frameProducer", FrameProducerServer),
    "ExposureControl": ("exposureControl", ExposureControlServer),
    "RoiSelectable": ("roiSelectable", RoiSelectableServer),
    "Cooled": ("cooled", CooledServer),
    "TemperatureSensor": ("temperatureSensor", TemperatureSensorServer),
    "VoltageSource": ("voltageSource", VoltageSourceServer),
    "Switchable": ("switchable", SwitchableServer),
    "FaultInjectable": ("faultInjectable", FaultInjectableServer),
}


OWNER_ONLY = frozenset({"FaultInjectable"})
"""Capabilities only the unrestricted capability (the lab owner's) carries."""


def granted(handle: InstrumentHandle, policy: Policy) -> list[str]:
    """The capabilities of ``handle`` a holder of ``policy`` gets."""
    if not policy.is_restricted:
        return list(handle.capabilities)
    return [name for name in handle.capabilities if name not in OWNER_ONLY]


def fill_capabilities(struct: Any, target: Target) -> None:
    """Set one server per capability granted to the target's holder on a ``Capabilities`` struct."""
    for name in granted(target.handle, target.policy):
        field, server = SERVERS[name]
        setattr(struct, field, server(target))
