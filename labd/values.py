"""Numbers and files a person types, in a lab config or on the command line, checked in one place.

Every numeric option is described once by a :class:`Number`: finite, within its range, in
its unit. The lab config (:mod:`labd.config`) and the command line (:mod:`labd.cli.arguments`)
check values with the same descriptions, so ``poll_hz = inf`` in a file and ``--seconds nan``
on a command line are refused the same way, with a message that says what is accepted.

A value with a unit may also be written as a quantity string in any unit of the same
dimension, ``"20 ms"`` for a time in seconds (docs/config.md, "Units"); :mod:`pint`
converts it. Pint takes about a second to import, so it is imported only when such a
string is met: a config of plain numbers never pays for it.
"""

from __future__ import annotations

import functools
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pint

    from capabilities import Parameter, ParameterValue

MINUTE_S = 60.0
HOUR_S = 3600.0
DAY_S = 86400.0


class BadValue(ValueError):
    """A value is not acceptable. The message says what is, without naming the option: the
    caller knows where the value came from (a file, line and key; a command-line flag)."""


@dataclass(frozen=True)
class Number:
    """A finite number in ``[low, high]`` (``(low, high]`` if ``low_open``), in ``unit``."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    unit: str | None = None
    """A unit pint knows ("s", "Hz", "MiB", "degC"); None: a plain number."""
    whole: bool = False
    why: str = ""
    """Said after the range when a value is refused: why the range is what it is."""

    def check(self, value: object) -> float:
        """``value`` (a number, or a string: a number or a quantity) as a float in ``unit``."""
        number = self._number(value)
        if (
            not math.isfinite(number)
            or (self.whole and not number.is_integer())
            or (
                self.low is not None
                and (number <= self.low if self.low_open else number < self.low)
            )
            or (self.high is not None and number > self.high)
        ):
            got = f"{value!r}" if isinstance(value, str) else f"{number:g}"
            why = f" ({self.why})" if self.why else ""
            raise BadValue(f"must be {self.describe()}, got {got}{why}")
        return number

    def describe(self) -> str:
        """What is accepted, as in "a number in s > 0 and <= 3600"."""
        text = "whole number" if self.whole else "number"
        if self.low is None and self.high is None:
            text = f"finite {text}"
        if self.unit:
            text += f" in {self.unit}"
        if self.low is not None and self.high is not None and not self.low_open:
            return f"a {text} from {self._show(self.low)} to {self._show(self.high)}"
        bounds = []
        if self.low is not None:
            bounds.append(f"{'>' if self.low_open else '>='} {self._show(self.low)}")
        if self.high is not None:
            bounds.append(f"<= {self._show(self.high)}")
        if bounds:
            text += " " + " and ".join(bounds)
        return f"a {text}"

    def _show(self, limit: float) -> str:
        """A limit as a person reads it: 31622400 s is "31622400 (366 days)"."""
        text = str(int(limit)) if float(limit).is_integer() else f"{limit:g}"
        if self.unit == "s" and limit >= 2 * HOUR_S:
            days = limit / DAY_S
            text += (
                f" ({days:g} {'day' if days == 1 else 'days'})"
                if days >= 1
                else f" ({limit / HOUR_S:g} h)"
            )
        return text

    def _number(self, value: object) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise BadValue(f"must be {self.describe()}, got {value!r}")
        if not isinstance(value, str):
            return float(value)
        try:
            return float(value)
        except ValueError:
            pass
        if self.unit is None:
            raise BadValue(f"must be {self.describe()}, got {value!r}")
        if _QUANTITY.match(value) is None:
            raise BadValue(
                f"must be {self.describe()} or a quantity such as '{_example(self.unit)}',"
                f" got {value!r}"
            )
        return _to_unit(value, self.unit)


def duration(*, high: float | None = None, zero: bool = False, why: str = "") -> Number:
    """A time in seconds, > 0 (or >= 0 with ``zero``: zero means "off" or "no wait")."""
    return Number(low=0.0, low_open=not zero, high=high, unit="s", why=why)


def rate(*, high: float, why: str) -> Number:
    """A rate in Hz from 0 ("off") to ``high``: every rate has a maximum, because a loop
    told to run a billion times a second spins a core and starves every other instrument."""
    return Number(low=0.0, high=high, unit="Hz", why=why)


def count(*, low: int = 0, high: int | None = None) -> Number:
    return Number(low=low, high=high, whole=True)


#: Quantity strings are "<number> <unit>"; the unit part is parsed by pint, the number by
#: float(). Pint alone would evaluate arithmetic, and "9**9**9**9 s" never returns.
_QUANTITY = re.compile(
    r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*([A-Za-zµΩ°][A-Za-z0-9µΩ°_ /*^.]{0,40})\s*$"
)


def to_unit(text: str, unit: str) -> float:
    """The quantity ``text`` ("1064 nm", "20 ms") in ``unit``; BadValue if it is none, in an
    unknown unit, or of another dimension."""
    if _QUANTITY.match(text) is None:
        raise BadValue(f"expected a number or a quantity such as '{_example(unit)}', got {text!r}")
    return _to_unit(text, unit)


def _to_unit(text: str, unit: str) -> float:
    """The magnitude of the quantity ``text`` ("20 ms", matching :data:`_QUANTITY`) in
    ``unit`` ("s")."""
    import pint

    match = _QUANTITY.match(text)
    assert match is not None
    number, unit_text = match.groups()
    registry = _registry()
    try:
        quantity = registry.Quantity(float(number), registry.parse_units(unit_text))
    except Exception:  # pint raises several kinds for a unit it cannot parse
        raise BadValue(f"{text!r}: {unit_text.strip()!r} is not a unit pint knows") from None
    try:
        # 12 significant digits: "1.55 um" is 1550 nm, not pint's 1549.9999999999998.
        return float(f"{quantity.to(unit).magnitude:.12g}")
    except pint.DimensionalityError:
        given = _kind(registry, quantity.dimensionality)
        wanted = _kind(registry, registry.get_dimensionality(unit))
        if given and wanted:
            raise BadValue(f"{text!r} is {given}, not {wanted} (in {unit})") from None
        raise BadValue(f"{text!r} cannot be converted to {unit}") from None


@functools.cache
def _registry() -> pint.UnitRegistry[Any]:
    import pint

    return pint.UnitRegistry()


#: What a unit measures, for saying why "20 V" is no exposure time.
_KINDS = {
    "s": "a time",
    "Hz": "a frequency",
    "m": "a length",
    "V": "a voltage",
    "A": "a current",
    "W": "a power",
    "ohm": "a resistance",
    "K": "a temperature",
}


def _kind(registry: pint.UnitRegistry[Any], dimensionality: Any) -> str | None:
    if not dimensionality:
        return "a plain number"
    return next(
        (
            kind
            for unit, kind in _KINDS.items()
            if registry.get_dimensionality(unit) == dimensionality
        ),
        None,
    )


def _example(unit: str) -> str:
    return {"s": "20 ms", "Hz": "10 Hz", "MiB": "2 GiB"}.get(unit, f"1 {unit}")


def readable_file(text: str) -> Path:
    """A path to an existing file this process can read."""
    path = Path(text).expanduser()
    if not path.exists():
        raise BadValue(f"{text}: no such file")
    if not path.is_file():
        raise BadValue(f"{text}: not a file")
    if not os.access(path, os.R_OK):
        raise BadValue(f"{text}: not readable by this user")
    return path


def creatable_directory(path: Path) -> Path:
    """``path``, if it is a directory or one this process could create (it is not created
    here: a config check has no side effects)."""
    if path.exists():
        if not path.is_dir():
            raise BadValue(f"{path} exists and is not a directory")
        if not os.access(path, os.W_OK | os.X_OK):
            raise BadValue(f"{path} is not writable by this user")
        return path
    parent = path.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise BadValue(f"{path} cannot be created: {parent} is not a writable directory")
    return path


# -- parameter values (docs/parameters.md) ---------------------------------------------

_TRUE = {"true", "on", "yes", "1"}
_FALSE = {"false", "off", "no", "0"}


def parameter_value(parameter: Parameter, value: object, unit: str = "") -> ParameterValue:
    """``value`` (as a client or a person gave it) as ``parameter``'s checked value.

    A number may come with ``unit`` or as a quantity string (``"1064 nm"``, ``"20 ms"``)
    in any unit of the parameter's dimension; a bool as ``true/false/on/off/yes/no/1/0``;
    a choice in any letter case. Raises InvalidRequest/OutOfRange with the reason.
    """
    from capabilities import InvalidRequest  # not at the top: this module stays light

    try:
        if parameter.kind in ("float", "int"):
            value = _number(parameter, value, unit)
        elif unit:
            raise InvalidRequest(f"{parameter.name} is {parameter.kind}: it takes no unit")
        elif (
            parameter.kind == "bool"
            and isinstance(value, str | int)
            and not isinstance(value, bool)
        ):
            word = str(value).strip().lower()
            if word not in _TRUE | _FALSE:
                raise InvalidRequest(f"{parameter.name}: expected true or false, got {value!r}")
            value = word in _TRUE
        elif parameter.kind == "choice" and isinstance(value, str):
            value = next((c for c in parameter.choices if c.lower() == value.lower()), value)
    except BadValue as e:
        raise InvalidRequest(f"{parameter.name}: {e}") from None
    return parameter.check(value)


def _number(parameter: Parameter, value: object, unit: str) -> object:
    from capabilities import InvalidRequest

    if isinstance(value, str):
        text = value.strip()
        try:
            value = float(text)
        except ValueError:
            if unit:
                raise InvalidRequest(
                    f"{parameter.name}: give a number with unit {unit!r}, or a quantity"
                    f" such as '{text}' alone, not both"
                ) from None
            return to_unit(text, parameter.unit or "dimensionless")
    if unit and not isinstance(value, bool) and isinstance(value, int | float):
        if not math.isfinite(value):
            return value  # Parameter.check says what is wrong with it
        return to_unit(f"{value!r} {unit}", parameter.unit or "dimensionless")
    return value
