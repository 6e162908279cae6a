"""Keysight (Agilent) 34461A digital multimeter over VISA (USB, LAN or GPIB; SCPI).

The measurement function and range come from the config (``function``, ``range``) and
are applied at open with ``CONFigure``; each :meth:`read` then triggers one reading with
``READ?``. ``range = "auto"`` lets the meter choose. An overload (the meter answers
``9.9E37``) reads as ``inf`` with the sign of the input rather than as a number that
looks valid.

Parameters: ``function`` and ``range`` (applied with ``CONFigure``, which also returns
the meter's other settings, NPLC included, to their defaults: set ``nplc`` after them;
the driver holds what it configured, so a change on the front panel is not seen), and
``nplc`` (``<function>:NPLC``, integration time in power-line cycles; DC and resistance
functions only).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from capabilities import InvalidRequest, Parameter, ParameterValue, Reading
from drivers.toolkit import Connection, MessageInstrument, ScpiErrorQueue, control, measurement
from drivers.toolkit.visa_link import VisaLink

#: function -> (CONFigure command, unit, ranges the 34461A accepts)
FUNCTIONS: dict[str, tuple[str, str, tuple[float, ...]]] = {
    "volt:dc": ("CONF:VOLT:DC", "V", (0.1, 1, 10, 100, 1000)),
    "volt:ac": ("CONF:VOLT:AC", "V", (0.1, 1, 10, 100, 750)),
    "curr:dc": ("CONF:CURR:DC", "A", (1e-4, 1e-3, 1e-2, 0.1, 1, 3, 10)),
    "curr:ac": ("CONF:CURR:AC", "A", (1e-4, 1e-3, 1e-2, 0.1, 1, 3, 10)),
    "res": ("CONF:RES", "Ohm", (1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8)),
    "fres": ("CONF:FRES", "Ohm", (1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8)),
}

#: function -> the SCPI prefix of its NPLC setting (AC functions have none: they filter).
NPLC_PREFIX = {"volt:dc": "VOLT:DC", "curr:dc": "CURR:DC", "res": "RES", "fres": "FRES"}

#: The integration times the 34461A offers, in power-line cycles.
NPLCS = {"0.02": 0.02, "0.2": 0.2, "1": 1.0, "10": 10.0, "100": 100.0}

FUNCTION = Parameter(
    "function",
    "choice",
    choices=tuple(FUNCTIONS),
    description="what the meter measures; a change also sets range to auto",
)

#: What the meter answers for an overload.
OVERLOAD = 9.9e37


class Keysight34461A(MessageInstrument):
    """Capabilities: Readable."""

    identity = measurement("*IDN?", parse=str)
    reading = measurement("READ?")
    nplc = control(
        "{func}:NPLC?",
        "{func}:NPLC {}",
        parse=float,
        format=lambda v: f"{v:g}",
        choices=NPLCS,
        doc="integration time in power-line cycles (DC and resistance functions)",
    )

    def __init__(
        self,
        *,
        resource: str,
        visa_library: str = "@py",
        timeout_s: float = 5.0,
        function: str = "volt:dc",
        range: str | float = "auto",  # the meter's own word, though it shadows range()
    ) -> None:
        if function not in FUNCTIONS:
            raise ValueError(f"function must be one of {', '.join(FUNCTIONS)}, got {function!r}")
        self.function = function
        self.configure, self.unit, ranges = FUNCTIONS[function]
        if isinstance(range, str):
            if range.lower() != "auto":
                raise ValueError(f'range must be "auto" or a number, got {range!r}')
            self.range = "AUTO"
        elif range in ranges:
            self.range = f"{range:g}"
        else:
            accepted = ", ".join(f"{r:g}" for r in ranges)
            raise ValueError(f"range {range:g} {self.unit} is not one of: auto, {accepted}")
        link = VisaLink(resource, visa_library=visa_library, timeout_s=timeout_s)
        super().__init__(
            Connection(
                link, model="Keysight 34461A", timeout_s=timeout_s, error_check=ScpiErrorQueue()
            )
        )

    async def open(self) -> None:
        await super().open()
        await self.write("*CLS", check_errors=False)
        identity = await self.identity.get()
        if "3446" not in identity and "3447" not in identity:
            raise self.connection.unexpected("*IDN?", identity, "a Keysight 3446x/3447x")
        await self.write(f"{self.configure} {self.range}")

    def command_fields(self) -> dict[str, object]:
        return {"func": NPLC_PREFIX.get(self.function, "")}

    def range_parameter(self) -> Parameter:
        """``range``: its choices are those of the present function."""
        ranges = tuple(f"{r:g}" for r in FUNCTIONS[self.function][2])
        return Parameter(
            "range",
            "choice",
            choices=("auto", *ranges),
            description=f"auto, or the full scale in {self.unit} (choices follow the function)",
        )

    async def parameters(self) -> Sequence[Parameter]:
        return [FUNCTION, self.range_parameter(), *self.declared_parameters()]

    async def get_parameter(self, name: str) -> ParameterValue:
        if name == "function":
            return self.function
        if name == "range":
            return "auto" if self.range == "AUTO" else self.range
        self._check_nplc(name)
        return await super().get_parameter(name)

    async def set_parameter(self, name: str, value: ParameterValue) -> None:
        if name == "function":
            function = str(FUNCTION.check(value))
            await self.write(f"{FUNCTIONS[function][0]} AUTO")
            self.function, self.range = function, "AUTO"
            self.configure, self.unit, _ = FUNCTIONS[function]
        elif name == "range":
            choice = str(self.range_parameter().check(value))
            wanted = "AUTO" if choice == "auto" else choice
            await self.write(f"{self.configure} {wanted}")
            self.range = wanted
        else:
            self._check_nplc(name)
            await super().set_parameter(name, value)

    def _check_nplc(self, name: str) -> None:
        if name == "nplc" and self.function not in NPLC_PREFIX:
            raise InvalidRequest(
                f"{self.label}: nplc applies to DC and resistance functions, not {self.function}"
                " (an AC function filters instead)"
            )

    async def read(self) -> Reading:
        value = await self.reading.get()
        if abs(value) >= OVERLOAD:
            value = math.copysign(math.inf, value)
        return Reading(value, self.unit)
