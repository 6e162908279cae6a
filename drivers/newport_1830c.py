"""Newport 1830-C optical power meter (RS-232, one-letter commands such as ``D?``).

The meter reports in the units selected on it (W, dB, dBm or REL); the driver selects
``units`` at open and reads back the unit code, so every :class:`Reading` carries the
unit the number really is in. The wavelength setting scales the detector's calibration
and is set at open when ``wavelength_nm`` is given. The 1830-C has no error report: a
command it does not understand is ignored, which is why values are validated here.
"""

from __future__ import annotations

from capabilities import Reading
from drivers.toolkit import (
    Connection,
    MessageInstrument,
    control,
    in_range,
    measurement,
    one_of,
)
from drivers.toolkit.serial_link import SerialLink

#: The meter's unit codes (``U?``/``U<n>``).
UNITS = {1: "W", 2: "dB", 3: "dBm", 4: "REL"}


class Newport1830C(MessageInstrument):
    """Capabilities: Readable (optical power)."""

    power = measurement("D?")
    unit_code = control("U?", "U{}", parse=int, validator=one_of(*UNITS), check_errors=False)
    wavelength = control(
        "W?",
        "W{}",
        parse=int,
        validator=in_range(400, 1800, "nm"),  # the span of the 818-series detector heads
        check_errors=False,
        unit="nm",
    )

    def __init__(
        self,
        *,
        port: str,
        baudrate: int = 9600,
        timeout_s: float = 1.0,
        units: str = "W",
        wavelength_nm: int | None = None,
    ) -> None:
        codes = {name: code for code, name in UNITS.items()}
        if units not in codes:
            raise ValueError(f"units must be one of {', '.join(codes)}, got {units!r}")
        link = SerialLink(
            port,
            baudrate=baudrate,
            timeout_s=timeout_s,
            read_termination="\n",
            write_termination="\n",
        )
        super().__init__(Connection(link, model="Newport 1830-C", timeout_s=timeout_s))
        self.units = codes[units]
        self.wavelength_nm = wavelength_nm
        self._unit = units

    async def open(self) -> None:
        await super().open()
        if self.wavelength_nm is not None:
            await self.wavelength.set(self.wavelength_nm)
        await self.unit_code.set(self.units)
        # Read back: the meter ignores what it does not understand, silently.
        code = await self.unit_code.get()
        if code not in UNITS:
            raise self.connection.unexpected("U?", str(code), "a unit code 1-4")
        self._unit = UNITS[code]

    async def read(self) -> Reading:
        return Reading(await self.power.get(), self._unit)

    async def set_wavelength(self, nm: int) -> None:
        """Change the calibration wavelength (400-1800 nm, depending on the detector head)."""
        await self.wavelength.set(nm)
