"""Keysight (Agilent) 34461A digital multimeter over VISA (USB, LAN or GPIB; SCPI).

The measurement function and range are fixed by the config (``function``, ``range``)
and applied at open with ``CONFigure``; each :meth:`read` then triggers one reading with
``READ?``. ``range = "auto"`` lets the meter choose. An overload (the meter answers
``9.9E37``) reads as ``inf`` with the sign of the input rather than as a number that
looks valid.
"""

from __future__ import annotations

import math

from capabilities import Reading
from drivers.toolkit import Connection, MessageInstrument, ScpiErrorQueue, measurement
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

#: What the meter answers for an overload.
OVERLOAD = 9.9e37


class Keysight34461A(MessageInstrument):
    """Capabilities: Readable."""

    identity = measurement("*IDN?", parse=str)
    reading = measurement("READ?")

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

    async def read(self) -> Reading:
        value = await self.reading.get()
        if abs(value) >= OVERLOAD:
            value = math.copysign(math.inf, value)
        return Reading(value, self.unit)
