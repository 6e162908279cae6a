"""Parameters: an instrument's settings, each named, typed and described.

A capability method is a verb every instrument of a kind shares (``move_abs``); a
parameter is a setting particular to one model: a Lake Shore loop's ramp rate, a power
meter's range, a camera's gain. Every layer reaches them the same way, by name, through
the :class:`~capabilities.Configurable` capability (docs/parameters.md), so a driver
that declares a setting gives it to the CLI, the clients, scripts and the GUI at once.

A value is one of four Python types, chosen by the parameter's :attr:`Parameter.kind`:
``float``/``int`` numbers (in :attr:`Parameter.unit`), ``bool``, and ``str`` for
``text`` and ``choice`` (one of :attr:`Parameter.choices`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from capabilities.errors import InvalidRequest, OutOfRange

ParameterValue = float | int | bool | str
"""What :meth:`Configurable.get_parameter` returns and ``set_parameter`` takes."""

KINDS = ("float", "int", "bool", "text", "choice")
"""The value types a parameter can have (their order is the wire enum's)."""


@dataclass(frozen=True)
class Parameter:
    """What one setting is: its type, unit, accepted values and meaning."""

    name: str
    kind: str
    """One of :data:`KINDS`."""
    unit: str = ""
    """The unit of a number (as pint writes it: "nm", "K/min", "s"); empty: none."""
    low: float | None = None
    high: float | None = None
    """The closed range a number accepts; None: unbounded on that side."""
    choices: tuple[str, ...] = ()
    """What a ``choice`` parameter accepts."""
    writable: bool = True
    readable: bool = True
    """False for a write-only setting: the instrument cannot report it."""
    description: str = ""
    """One line: what the setting does, in the instrument's terms."""
    channel: str = ""
    """The channel it belongs to (``"A"``, ``"ch2"``); empty: the instrument itself."""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"parameter {self.name}: kind {self.kind!r} is not one of {KINDS}")
        if self.kind == "choice" and not self.choices:
            raise ValueError(f"parameter {self.name}: a choice needs its choices")

    def check(self, value: object) -> ParameterValue:
        """``value`` as this parameter's type, or InvalidRequest/OutOfRange saying why not.

        Numbers are not rounded into range or to whole numbers: a value the instrument
        would not take as given is refused, never silently changed.
        """
        what = f"{self.name}{f' ({self.channel})' if self.channel else ''}"
        if self.kind in ("float", "int"):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise InvalidRequest(f"{what}: expected a number, got {value!r}")
            if not math.isfinite(value):
                raise InvalidRequest(f"{what}: expected a finite number, got {value!r}")
            if self.kind == "int":
                if not float(value).is_integer():
                    raise InvalidRequest(f"{what}: expected a whole number, got {value!r}")
                value = int(value)
            else:
                value = float(value)
            if (self.low is not None and value < self.low) or (
                self.high is not None and value > self.high
            ):
                shown = f"{value:g} {self.unit}".strip()
                raise OutOfRange(f"{what} {shown} is outside {self.span()}")
            return value
        if self.kind == "bool":
            if not isinstance(value, bool):
                raise InvalidRequest(f"{what}: expected true or false, got {value!r}")
            return value
        if not isinstance(value, str):
            raise InvalidRequest(f"{what}: expected text, got {value!r}")
        if self.kind == "choice" and value not in self.choices:
            raise OutOfRange(f"{what} {value!r} is not one of: {', '.join(self.choices)}")
        return value

    def show(self, value: ParameterValue) -> str:
        """``value`` as a person reads it, with the unit: ``1064 nm``, ``true``, ``high``."""
        text = text_of(value)
        return f"{text} {self.unit}" if self.unit and self.kind in ("float", "int") else text

    def span(self) -> str:
        """The accepted values in words: ``[400, 1800] nm``, ``one of: off, low, high``."""
        if self.kind == "choice":
            return "one of: " + ", ".join(self.choices)
        if self.kind == "bool":
            return "true or false"
        if self.kind == "text":
            return "text"
        if self.low is None and self.high is None:
            return f"any number{f' in {self.unit}' if self.unit else ''}"
        low = "-inf" if self.low is None else f"{self.low:g}"
        high = "inf" if self.high is None else f"{self.high:g}"
        return f"[{low}, {high}] {self.unit}".strip()

    def narrowed(
        self,
        *,
        low: float | None = None,
        high: float | None = None,
        choices: tuple[str, ...] | None = None,
        writable: bool = True,
    ) -> Parameter:
        """This parameter as a restricted holder sees it: within a range, fewer choices,
        or not writable at all."""
        new_low = self.low if low is None else low if self.low is None else max(self.low, low)
        new_high = (
            self.high if high is None else high if self.high is None else min(self.high, high)
        )
        kept = self.choices if choices is None else tuple(c for c in self.choices if c in choices)
        if self.kind == "choice" and not kept:  # nothing left to choose: it only reads
            kept, writable = self.choices, False
        return replace(
            self,
            low=new_low,
            high=new_high,
            choices=kept,
            writable=self.writable and writable,
        )


@dataclass(frozen=True)
class ParameterChange:
    """A parameter that changed: set by someone, or found changed by the daemon
    (docs/parameters.md, "Recorded"). The same on the daemon's stream and at a watcher."""

    instrument: str
    """The instrument or channel: ``tc`` or ``tc/A``."""
    parameter: str
    value: ParameterValue
    unit: str
    by: str
    """Who or what: ``rpc``, ``script <name> run <id>``, ``open``, ``set_wavelength``."""
    timestamp: float


def text_of(value: ParameterValue) -> str:
    """A value as text, the same for every surface: ``true``, ``1064``, ``high``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.12g}"
    return str(value)


def find(parameters: list[Parameter], name: str, owner: str = "this instrument") -> Parameter:
    """The parameter called ``name``, or InvalidRequest listing the known ones."""
    for parameter in parameters:
        if parameter.name == name:
            return parameter
    known = ", ".join(p.name for p in parameters) or "none"
    raise InvalidRequest(f"{owner} has no parameter {name!r} (its parameters: {known})")
