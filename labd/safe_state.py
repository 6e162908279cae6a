"""An instrument's safe state: what it is set to when a script that drove it ends badly.

``[instruments.psu.safe_state]`` in the lab config (docs/config.md, docs/scripting.md)
lists values the way ``[instruments.X.settings]`` does: the instrument's parameters by
name, and the capability set-points below, which are no parameters (a share's range on a
capability cannot be bypassed through one, docs/parameters.md). A run that opened the
instrument with a capability that changes it, and then failed, was cancelled or ran out
of fuel or time, leaves it in this state after the script's own ``cleanup``
(:mod:`labd.scripting.run`). Values are set in the order written, each through the same
code as any client's: parameters through :func:`labd.parameters.set_value` (converted,
checked, read back and recorded), set-points through the instrument's owner task.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from capabilities import Configurable, Movable, Parameter, Switchable, VoltageSource
from capabilities.parameters import text_of


@dataclass(frozen=True)
class Setpoint:
    """A safe-state key that is a capability call, not a parameter."""

    capability: type[Any]
    method: str
    parameter: Parameter
    """How its value is written and checked (kind and unit), as a parameter's would be."""


SETPOINTS: dict[str, Setpoint] = {
    "output": Setpoint(Switchable, "set_on", Parameter("output", "bool")),
    "voltage": Setpoint(VoltageSource, "set_voltage", Parameter("voltage", "float", "V")),
    "current": Setpoint(VoltageSource, "set_current_limit", Parameter("current", "float", "A")),
    "position": Setpoint(Movable, "move_abs", Parameter("position", "float")),
}
"""``output = false`` (a supply's output, a shutter), ``voltage = "0 V"``, ``current =
"0.1 A"`` (a supply's limit), ``position = 0`` (an axis, in its own unit)."""


def check(target: object, name: str, value: object, parameters: list[Parameter] | None) -> None:
    """Refuse ``name = value`` for the driver object ``target`` (CapabilityError, saying
    what to write); ``parameters``: its declared parameters, None if it needs I/O to
    list them (they are then checked when the safe state is applied)."""
    from capabilities import InvalidRequest
    from capabilities.parameters import find
    from labd.values import parameter_value

    setpoint = SETPOINTS.get(name)
    if setpoint is not None:
        if not isinstance(target, setpoint.capability):
            raise InvalidRequest(
                f"{name} needs an instrument that is {setpoint.capability.__name__}, and this"
                " one is not; remove it"
            )
        parameter_value(setpoint.parameter, value)
        return
    if not isinstance(target, Configurable):
        raise InvalidRequest(
            f"this instrument has no parameters; a safe state sets parameters or the"
            f" set-points {', '.join(SETPOINTS)}"
        )
    if parameters is None:
        return
    try:
        parameter = find(parameters, name, "this instrument")
    except InvalidRequest as e:
        raise InvalidRequest(
            f"{e}; a safe state sets parameters or the set-points {', '.join(SETPOINTS)}:"
            " fix the name or remove it"
        ) from None
    if not parameter.writable:
        raise InvalidRequest(f"{name} is read-only, so no safe state can set it; remove it")
    parameter_value(parameter, value)


Resolver = Callable[[str, type[Any]], object]
"""``(instrument name, capability) -> object`` (:data:`labd.scripting.host.Resolver`)."""

SetParameter = Callable[[Any, str, object], Awaitable[object]]
"""``(instrument handle, name, value)``: :func:`labd.parameters.set_value` with who sets it
and where it is recorded (this module stays below the supervisor)."""


@dataclass(frozen=True)
class SafeState:
    """The safe state of one instrument (or channel, ``tc/A``), as the config wrote it."""

    instrument: str
    values: Mapping[str, object]

    def describe(self) -> str:
        return ", ".join(f"{k} = {_show(v)}" for k, v in self.values.items())

    async def apply(self, resolve: Resolver, set_parameter: SetParameter) -> None:
        """Set every value, in order; raises on the first that fails."""
        from labd.values import parameter_value

        for name, value in self.values.items():
            setpoint = SETPOINTS.get(name)
            if setpoint is None:
                await set_parameter(resolve(self.instrument, Configurable), name, value)
                continue
            target = resolve(self.instrument, setpoint.capability)
            await getattr(target, setpoint.method)(parameter_value(setpoint.parameter, value))


def safe_states(specs: Mapping[str, Mapping[str, Mapping[str, object]]]) -> dict[str, SafeState]:
    """Instrument (or ``name/channel``) -> its safe state, from each instrument's config
    (``{channel: {key: value}}``, ``""`` for the instrument itself)."""
    out: dict[str, SafeState] = {}
    for instrument, channels in specs.items():
        for channel, values in channels.items():
            name = f"{instrument}/{channel}" if channel else instrument
            out[name] = SafeState(name, dict(values))
    return out


def _show(value: object) -> str:
    return text_of(value) if isinstance(value, bool | int | float) else str(value)
