"""The capability Protocols: one narrow ability each.

An instrument implements the set it has; code asks for exactly what it needs
(``async def sweep(t: TemperatureSensor, v: VoltageSource)``) and mypy rejects a call
with an instrument that lacks one. Every Protocol is ``runtime_checkable`` so the daemon
can also ask at run time which capabilities an object has (see :mod:`capabilities.introspect`).

Method names are unique across all Protocols, so one object can implement any
combination without ambiguity. Every method is async: a call may wait on hardware.
Extend this set, never rename in it: the wire schema mirrors it one to one.

Each capability is declared here once (:mod:`capabilities.declarations`): ``@capability``
with its WebAssembly ABI number, ``@mutates`` on every method that changes the instrument
(with the set-point it sets or moves), and the RPC servers, client remotes, policy, ABI
tables and GUI sections are derived from that. Declare new capabilities last.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol, runtime_checkable

from capabilities.declarations import bounded_by, capability, mutates
from capabilities.parameters import Parameter, ParameterValue
from capabilities.values import (
    CoolerState,
    Frame,
    FrameFormat,
    Limits,
    Reading,
    Roi,
    SupplyReadback,
)


@runtime_checkable
class Instrument(Protocol):
    """The lifecycle every driver has: the supervisor opens it, and closes it on fault or exit."""

    async def open(self) -> None: ...

    async def close(self) -> None: ...


@capability(abi_kind=1)
@runtime_checkable
class Movable(Protocol):
    """An axis that moves to a position (linear in mm, rotary in degrees)."""

    @mutates(sets="position")
    async def move_abs(self, position: float) -> None:
        """Start a move to ``position``; returns once the move is commanded."""

    @mutates(moves="position")
    async def move_rel(self, delta: float) -> None:
        """Start a move by ``delta`` from the current target."""

    async def position(self) -> Reading:
        """The current (possibly still moving) position."""

    async def wait_settled(self, timeout: float | None = None) -> Reading:
        """Wait until the axis is at rest within tolerance; returns the final position."""

    @bounded_by("position")
    async def limits(self) -> Limits:
        """The travel range the axis accepts."""


@capability(abi_kind=2)
@runtime_checkable
class Stoppable(Protocol):
    """Something in motion that can be stopped now."""

    @mutates(forgets="position")
    async def stop(self) -> None: ...


@capability(abi_kind=3)
@runtime_checkable
class Readable(Protocol):
    """A scalar measurement on demand (power meter, multimeter)."""

    async def read(self) -> Reading: ...


@capability()
@runtime_checkable
class Triggerable(Protocol):
    """An acquisition that is armed once and then fired."""

    @mutates()
    async def arm(self) -> None: ...

    @mutates()
    async def trigger(self) -> None: ...


@capability(abi_kind=4)
@runtime_checkable
class FrameProducer(Protocol):
    """A camera: one 2-D image per snap. Streams are repeated snaps driven by the daemon."""

    async def snap(self) -> Frame: ...

    async def frame_format(self) -> FrameFormat: ...


@capability(abi_kind=5)
@runtime_checkable
class ExposureControl(Protocol):
    """Integration time of a detector, in seconds."""

    async def exposure(self) -> float: ...

    @mutates()
    async def set_exposure(self, seconds: float) -> None: ...


@capability()
@runtime_checkable
class RoiSelectable(Protocol):
    """A sensor that can read out a rectangular sub-region."""

    async def roi(self) -> Roi: ...

    @mutates()
    async def set_roi(self, roi: Roi) -> None: ...

    async def sensor_size(self) -> tuple[int, int]:
        """(width, height) of the full sensor in pixels."""


@capability()
@runtime_checkable
class Cooled(Protocol):
    """A sensor with a cooler driven towards a target temperature (°C)."""

    async def cooling_target(self) -> float: ...

    @mutates()
    async def set_cooling_target(self, celsius: float) -> None: ...

    async def sensor_temperature(self) -> Reading: ...

    async def cooler_state(self) -> CoolerState: ...


@capability(abi_kind=6)
@runtime_checkable
class TemperatureSensor(Protocol):
    """A thermometer (kelvin unless the unit says otherwise)."""

    async def temperature(self) -> Reading: ...


@capability(abi_kind=7)
@runtime_checkable
class VoltageSource(Protocol):
    """A DC source with a voltage set point and a current limit (compliance)."""

    @mutates(sets="voltage")
    async def set_voltage(self, volts: float) -> None: ...

    async def voltage_setpoint(self) -> float: ...

    @mutates(sets="current")
    async def set_current_limit(self, amps: float) -> None: ...

    async def current_limit(self) -> float: ...

    async def readback(self) -> SupplyReadback: ...


@capability(abi_kind=8)
@runtime_checkable
class Switchable(Protocol):
    """An output, shutter or relay that is on or off."""

    @mutates()
    async def set_on(self, on: bool) -> None: ...

    async def is_on(self) -> bool: ...


@capability(owner_only=True)
@runtime_checkable
class FaultInjectable(Protocol):
    """Simulated instruments only: make the device misbehave on purpose, for tests and demos.

    ``kind`` is one of ``"raise"`` (next call raises), ``"hang"`` (calls never return),
    ``"disconnect"`` (the link drops until reopened) or ``"clear"``.
    """

    @mutates()
    async def inject_fault(self, kind: str) -> None: ...


@capability(abi_kind=9)
@runtime_checkable
class Configurable(Protocol):
    """Settings by name: gain, range, ramp rate, whatever the model has (docs/parameters.md).

    ``set_parameter`` gets a value already checked against its :class:`Parameter`
    (type, range, choices) and in its unit; a driver checks again only what the
    instrument adds (a range that depends on another setting).
    """

    async def parameters(self) -> Sequence[Parameter]: ...

    async def get_parameter(self, name: str) -> ParameterValue: ...

    @mutates()
    async def set_parameter(self, name: str, value: ParameterValue) -> None: ...


@capability()
@runtime_checkable
class WavelengthTunable(Protocol):
    """Something whose behaviour depends on a wavelength it is set to: a power meter that
    corrects its responsivity for it, a tunable laser (nanometres)."""

    async def wavelength(self) -> float: ...

    @mutates()
    async def set_wavelength(self, nm: float) -> None: ...


@capability()
@runtime_checkable
class TemperatureController(Protocol):
    """A closed loop that drives a temperature to a set point (kelvin): a cryostat's heater
    loop, a sample stage. The loop's sensor is its :class:`TemperatureSensor`."""

    async def temperature_setpoint(self) -> float: ...

    @mutates()
    async def set_temperature_setpoint(self, kelvin: float) -> None: ...

    async def ramp_rate(self) -> float:
        """Kelvin per minute the set point moves at towards a new value; 0: it jumps."""

    @mutates()
    async def set_ramp_rate(self, kelvin_per_min: float) -> None: ...

    async def heater_output(self) -> Reading:
        """How hard the loop heats now, in percent of the heater range."""


@runtime_checkable
class HasMoveTarget(Protocol):
    """A Movable that can say where it is going: the target of the last move, which a
    ``move_rel`` adds to. Not a capability of its own (nothing to call remotely): the
    daemon uses it to check a range restriction against the pending target instead of
    the position (docs/security.md). A Movable without it is tracked by the daemon."""

    async def move_target(self) -> Reading: ...


@runtime_checkable
class HasChannels(Protocol):
    """An instrument with independent channels (a multi-output supply, a multi-input
    controller). Each channel is itself an object with capabilities; the daemon exposes it
    as ``<instrument>/<channel>`` and serialises its calls through the parent's task."""

    def channels(self) -> Mapping[str, object]: ...
