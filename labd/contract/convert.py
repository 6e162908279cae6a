"""The value structs of ``labd.capnp`` to and from :mod:`capabilities.values`."""

from __future__ import annotations

import math
from typing import Any

from capabilities import (
    CoolerState,
    FrameFormat,
    Limits,
    Parameter,
    ParameterValue,
    Reading,
    Roi,
    SupplyReadback,
)


def reading_to(struct: Any, reading: Reading) -> None:
    struct.value = reading.value
    struct.unit = reading.unit
    struct.timestamp = reading.timestamp


def reading_from(struct: Any) -> Reading:
    return Reading(value=struct.value, unit=struct.unit, timestamp=struct.timestamp)


def limits_to(struct: Any, limits: Limits) -> None:
    struct.low = limits.low
    struct.high = limits.high
    struct.unit = limits.unit


def limits_from(struct: Any) -> Limits:
    return Limits(low=struct.low, high=struct.high, unit=struct.unit)


def roi_to(struct: Any, roi: Roi) -> None:
    struct.x, struct.y, struct.width, struct.height = roi.x, roi.y, roi.width, roi.height


def roi_from(struct: Any) -> Roi:
    return Roi(x=struct.x, y=struct.y, width=struct.width, height=struct.height)


def frame_format_to(struct: Any, fmt: FrameFormat) -> None:
    struct.height, struct.width, struct.dtype = fmt.height, fmt.width, fmt.dtype


def frame_format_from(struct: Any) -> FrameFormat:
    return FrameFormat(height=struct.height, width=struct.width, dtype=struct.dtype)


def cooler_state_to(state: CoolerState) -> str:
    return state.value


def cooler_state_from(wire: Any) -> CoolerState:
    return CoolerState(str(wire))


def readback_to(struct: Any, readback: SupplyReadback) -> None:
    reading_to(struct.voltage, readback.voltage)
    reading_to(struct.current, readback.current)
    struct.inCompliance = readback.in_compliance


def readback_from(struct: Any) -> SupplyReadback:
    return SupplyReadback(
        voltage=reading_from(struct.voltage),
        current=reading_from(struct.current),
        in_compliance=struct.inCompliance,
    )


def parameter_to(struct: Any, parameter: Parameter) -> None:
    struct.name = parameter.name
    struct.kind = parameter.kind
    struct.unit = parameter.unit
    struct.low = -math.inf if parameter.low is None else parameter.low
    struct.high = math.inf if parameter.high is None else parameter.high
    choices = struct.init("choices", len(parameter.choices))
    for i, choice in enumerate(parameter.choices):
        choices[i] = choice
    struct.writable = parameter.writable
    struct.readable = parameter.readable
    struct.description = parameter.description
    struct.channel = parameter.channel


def parameter_from(struct: Any) -> Parameter:
    return Parameter(
        name=struct.name,
        kind=str(struct.kind),
        unit=struct.unit,
        low=None if struct.low == -math.inf else struct.low,
        high=None if struct.high == math.inf else struct.high,
        choices=tuple(struct.choices),
        writable=struct.writable,
        readable=struct.readable,
        description=struct.description,
        channel=struct.channel,
    )


def parameter_value_to(struct: Any, value: ParameterValue) -> None:
    """A value into a ``ParameterValue`` union: numbers, flags and text each their own way."""
    if isinstance(value, bool):
        struct.flag = value
    elif isinstance(value, int | float):
        struct.number = float(value)
    else:
        struct.text = str(value)


def parameter_value_from(struct: Any) -> float | bool | str:
    """The union's value (a number comes back as a float; :func:`parameter_value_as`
    gives it the parameter's type)."""
    which = struct.which()
    if which == "number":
        return float(struct.number)
    if which == "flag":
        return bool(struct.flag)
    return str(struct.text)


def parameter_value_as(parameter: Parameter, value: ParameterValue) -> ParameterValue:
    """``value`` as ``parameter``'s Python type (an int parameter's number as an int)."""
    if parameter.kind == "int" and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# -- capability methods on the wire, by the Python types their Protocol declares ---------
#
# The RPC servers and the client remotes are derived from the capability declarations
# (capabilities/declarations.py); these tables say how each declared type crosses.

STRUCTS: dict[Any, tuple[Any, Any]] = {
    Reading: (reading_to, reading_from),
    Limits: (limits_to, limits_from),
    Roi: (roi_to, roi_from),
    FrameFormat: (frame_format_to, frame_format_from),
    SupplyReadback: (readback_to, readback_from),
}
"""A value type -> (fill its wire struct, read it from one)."""


def arg_from_wire(hint: Any, value: Any) -> Any:
    """A capability method's argument as it arrived -> the Python value its Protocol takes."""
    if hint is Roi:
        return roi_from(value)
    if _optional_float(hint):
        return value if value > 0 else None  # the wire's "0: none" (e.g. no timeout)
    return value


def arg_to_wire(hint: Any, value: Any) -> Any:
    if hint is Roi:
        return {"x": value.x, "y": value.y, "width": value.width, "height": value.height}
    if _optional_float(hint):
        return value or 0.0
    return value


def result_to_wire(hint: Any, results: Any, fields: list[str], value: Any) -> None:
    """Put what a capability method returned into its wire results (``fields``)."""
    if value is None or not fields:
        return
    if hint in STRUCTS:
        STRUCTS[hint][0](getattr(results, fields[0]), value)
    elif hint is CoolerState:
        setattr(results, fields[0], cooler_state_to(value))
    elif isinstance(value, tuple):
        for field, part in zip(fields, value, strict=True):
            setattr(results, field, part)
    else:
        setattr(results, fields[0], value)


def result_from_wire(hint: Any, response: Any, fields: list[str]) -> Any:
    """A capability method's wire response -> the value its Protocol returns."""
    if not fields:
        return None
    first = getattr(response, fields[0])
    if hint in STRUCTS:
        return STRUCTS[hint][1](first)
    if hint is CoolerState:
        return cooler_state_from(first)
    if len(fields) > 1:
        return tuple(getattr(response, f) for f in fields)
    if hint is float:
        return float(first)
    if hint is int:
        return int(first)
    if hint is bool:
        return bool(first)
    return first


def _optional_float(hint: Any) -> bool:
    return set(getattr(hint, "__args__", ())) == {float, type(None)}
