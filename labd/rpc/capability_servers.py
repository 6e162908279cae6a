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
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from capabilities import Frame, InvalidRequest
from labd import parameters, records
from labd.aio import aio, to_trio
from labd.contract import convert, schema
from labd.contract.errors import to_wire_error
from labd.parameters import Change, ParameterLog
from labd.rpc.ipc import ipc_buffer
from labd.rpc.policy import Policy
from labd.rpc.subscriptions import SubscriptionServer, failure_text
from labd.supervisor import InstrumentHandle

log = logging.getLogger("labd.rpc")

_s: Any = schema.load()


class Target:
    """One instrument as seen through one capability holder's policy."""

    def __init__(
        self,
        handle: InstrumentHandle,
        policy: Policy,
        nursery: trio.Nursery,
        parameter_log: ParameterLog | None = None,
    ) -> None:
        self.handle = handle
        self.policy = policy
        self.nursery = nursery
        self.parameter_log = parameter_log
        """Where parameter sets are recorded and watched; None: a server without streams."""

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

    def guard_for(self, method: str, *, mutates: bool) -> Any:
        self.policy.check_call(method, mutates=mutates)
        return self.policy.guard(method, mutates=mutates) if self.policy.is_restricted else None


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


class ConfigurableServer(_s.Configurable.Server):  # type: ignore[misc]
    """Parameters by name, through :mod:`labd.parameters` (units, read-back, recording)."""

    def __init__(self, target: Target) -> None:
        self._t = target

    async def parameters(self, _context: Any, **_: Any) -> None:
        async def listed() -> list[Any]:
            self._t.policy.check_alive()
            return [self._t.policy.narrow(p) for p in await parameters.describe(self._t.handle)]

        found = await self._t.run(listed)
        for struct, parameter in zip(
            _context.results.init("parameters", len(found)), found, strict=True
        ):
            convert.parameter_to(struct, parameter)

    async def get(self, name: str, _context: Any, **_: Any) -> None:
        async def got() -> Any:
            self._t.policy.check_alive()
            return await parameters.get_value(self._t.handle, name)

        convert.parameter_value_to(_context.results.value, await self._t.run(got))

    async def set(self, name: str, value: Any, unit: str, _context: Any, **_: Any) -> None:
        given = convert.parameter_value_from(value)

        async def done() -> Any:
            guard = self._t.guard_for("set_parameter", mutates=True)
            return await parameters.set_value(
                self._t.handle,
                name,
                given,
                unit=unit,
                guard=guard,
                by="rpc",
                log_to=self._t.parameter_log,
            )

        convert.parameter_value_to(_context.results.value, await self._t.run(done))

    async def watch(self, watcher: Any, **_: Any) -> Any:
        self._t.policy.check_alive()
        log_ = self._t.parameter_log
        if log_ is None:
            raise to_wire_error(InvalidRequest("this labd server records no parameter sets"))
        subscription = SubscriptionServer()
        self._t.nursery.start_soon(_push_changes, log_, self._t, watcher, subscription)
        return subscription


async def _push_changes(
    log_: ParameterLog, target: Target, watcher: Any, subscription: SubscriptionServer
) -> None:
    """Send every recorded set on the target's instrument to ``watcher``, one at a time,
    while the holder's capability lives (revoking it ends the watch)."""
    with subscription.scope, log_.watch(target.handle.name) as changes:
        async for change in changes:
            try:
                target.policy.check_alive()
                await aio(watcher.changed(_change_to_wire(change)))
            except Exception as exc:
                log.debug("parameter watcher gone: %s", failure_text(exc))
                return
            subscription.sent += 1


def _change_to_wire(change: Change) -> Any:
    message = _s.ParameterChange.new_message(
        instrument=change.instrument,
        parameter=change.parameter,
        unit=change.unit,
        by=change.by,
        timestamp=change.timestamp,
    )
    convert.parameter_value_to(message.value, change.value)
    return message


class WavelengthTunableServer(_s.WavelengthTunable.Server):  # type: ignore[misc]
    def __init__(self, target: Target) -> None:
        self._t = target

    async def wavelength(self, **_: Any) -> float:
        nm: float = await self._t.call("wavelength")
        return nm

    async def setWavelength(self, nm: float, **_: Any) -> None:
        await self._t.call("set_wavelength", nm, mutates=True)


class TemperatureControllerServer(_s.TemperatureController.Server):  # type: ignore[misc]
    def __init__(self, target: Target) -> None:
        self._t = target

    async def temperatureSetpoint(self, **_: Any) -> float:
        kelvin: float = await self._t.call("temperature_setpoint")
        return kelvin

    async def setTemperatureSetpoint(self, kelvin: float, **_: Any) -> None:
        await self._t.call("set_temperature_setpoint", kelvin, mutates=True)

    async def rampRate(self, **_: Any) -> float:
        rate: float = await self._t.call("ramp_rate")
        return rate

    async def setRampRate(self, kelvinPerMin: float, **_: Any) -> None:
        await self._t.call("set_ramp_rate", kelvinPerMin, mutates=True)

    async def heaterOutput(self, _context: Any, **_: Any) -> None:
        convert.reading_to(_context.results.reading, await self._t.call("heater_output"))


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
    "Configurable": ("configurable", ConfigurableServer),
    "WavelengthTunable": ("wavelengthTunable", WavelengthTunableServer),
    "TemperatureController": ("temperatureController", TemperatureControllerServer),
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
