"""Newport 1830-C optical power meter (RS-232, one-letter commands such as ``D?``).

The meter reports in the units selected on it (W, dB, dBm or REL); the driver selects
``units`` at open and reads back the unit code, so every :class:`Reading` carries the
unit the number really is in. The wavelength setting scales the detector's calibration
and is set at open when ``wavelength_nm`` is given. The 1830-C has no error report: a
command it does not understand is ignored, which is why values are validated here.

Parameters: ``wavelength`` (``W``), ``range`` (``auto`` with ``A1``, or a fixed range 1-8
with ``R<n>``, 1 the most sensitive), ``filter`` (``F1``-``F3``: slow, medium, fast
averaging) and ``units`` (``U1``-``U4``).
"""

from __future__ import annotations

from collections.abc import Sequence

from capabilities import InvalidRequest, Parameter, ParameterValue, Reading
from drivers.toolkit import (
    Connection,
    MessageInstrument,
    control,
    in_range,
    measurement,
    one_of,
    scpi_bool,
)
from drivers.toolkit.serial_link import SerialLink

#: The meter's unit codes (``U?``/``U<n>``).
UNITS = {1: "W", 2: "dB", 3: "dBm", 4: "REL"}

#: ``F?``/``F<n>``: the meter's averaging filter.
FILTERS = {"slow": 1, "medium": 2, "fast": 3}

#: The fixed ranges (``R1``..``R8``); ``auto`` is the auto-range mode (``A1``).
RANGES = tuple(str(n) for n in range(1, 9))

RANGE = Parameter(
    "range",
    "choice",
    choices=("auto", *RANGES),
    description="auto-ranging, or a fixed range 1-8 (1 the most sensitive)",
)


class Newport1830C(MessageInstrument):
    """Capabilities: Readable (optical power), WavelengthTunable, Configurable."""

    power = measurement("D?")
    unit_code = control(
        "U?",
        "U{}",
        parse=int,
        validator=one_of(*UNITS),
        check_errors=False,
        choices={name: code for code, name in UNITS.items()},
        name="units",
        on_change="_read_units",
        doc="what readings are in: W, dB or dBm, or REL (relative to the stored reference)",
    )
    nanometres = control(
        "W?",
        "W{}",
        parse=int,
        validator=in_range(400, 1800, "nm"),  # the span of the 818-series detector heads
        check_errors=False,
        unit="nm",
        name="wavelength",
        doc="wavelength the detector's calibration is corrected for (whole nm)",
    )
    filter = control(
        "F?",
        "F{}",
        parse=int,
        choices=FILTERS,
        check_errors=False,
        doc="averaging of readings: slow, medium or fast",
    )
    auto_range = control(
        "A?", "A{}", parse=scpi_bool, format=int, check_errors=False, parameter=False
    )
    range_number = control(
        "R?", "R{}", parse=int, validator=in_range(1, 8), check_errors=False, parameter=False
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
            await self.nanometres.set(self.wavelength_nm)
        await self.unit_code.set(self.units)
        await self._read_units()

    async def _read_units(self) -> None:
        # Read back: the meter ignores what it does not understand, silently.
        code = await self.unit_code.get()
        if code not in UNITS:
            raise self.connection.unexpected("U?", str(code), "a unit code 1-4")
        self._unit = UNITS[code]

    async def read(self) -> Reading:
        return Reading(await self.power.get(), self._unit)

    # WavelengthTunable

    async def wavelength(self) -> float:
        return float(await self.nanometres.get())

    async def set_wavelength(self, nm: float) -> None:
        """Change the calibration wavelength (400-1800 nm, depending on the detector head)."""
        if not float(nm).is_integer():
            raise InvalidRequest(f"{self.label}: the 1830-C takes whole nanometres, not {nm:g}")
        await self.nanometres.set(int(nm))

    # Configurable: range is auto-range (A) and the range number (R) in one choice.

    async def parameters(self) -> Sequence[Parameter]:
        return [*self.declared_parameters(), RANGE]

    async def get_parameter(self, name: str) -> ParameterValue:
        if name == RANGE.name:
            if await self.auto_range.get():
                return "auto"
            return str(await self.range_number.get())
        return await super().get_parameter(name)

    async def set_parameter(self, name: str, value: ParameterValue) -> None:
        if name == RANGE.name:
            choice = RANGE.check(value)
            if choice == "auto":
                await self.auto_range.set(True)
            else:
                await self.range_number.set(int(choice))  # a fixed range ends auto-ranging
            return
        await super().set_parameter(name, value)
