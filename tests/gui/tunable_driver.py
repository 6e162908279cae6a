"""A small driver with one parameter of every kind, for the GUI's settings section.

Loaded by the test lab as ``driver = "tests.gui.tunable_driver:Tunable"`` (a lab's own
driver, docs/writing-a-driver.md): it is ``Configurable`` with a float, an int, a bool, a
choice, a text, a read-only and a write-only parameter, and ``WavelengthTunable`` and
``TemperatureController`` too, so one instrument shows every widget the GUI draws for
settings (docs/gui.md, "What you see"). The wavelength parameter and the capability are one
value, as a real power meter's would be.
"""

from __future__ import annotations

from collections.abc import Sequence

from capabilities import InvalidRequest, Parameter, ParameterValue, Reading

PARAMETERS = (
    Parameter("wavelength", "float", "nm", 400.0, 1800.0, description="Responsivity correction"),
    Parameter("gain", "int", "", 1, 16, description="Amplifier gain"),
    Parameter("averaging", "bool", description="Average ten readings per value"),
    Parameter(
        "range",
        "choice",
        choices=("auto", "low", "high"),
        description="Measurement range",
    ),
    Parameter("label", "text", description="A note shown on the front panel"),
    Parameter("serial", "text", writable=False, description="Serial number of the head"),
    Parameter(
        "attenuator",
        "float",
        "dB",
        0.0,
        60.0,
        readable=False,
        description="Attenuation of the filter in front (the head cannot report it)",
    ),
)


class Tunable:
    """Parameters held in memory; the temperature loop reports its set point as heater %."""

    def __init__(self, *, name: str = "tunable") -> None:
        self.name = name
        self.values: dict[str, ParameterValue] = {
            "wavelength": 633.0,
            "gain": 2,
            "averaging": False,
            "range": "auto",
            "label": "bench 3",
            "serial": "TH-0042",
            "attenuator": 0.0,
        }
        self.setpoint_k = 295.0
        self.ramp_k_per_min = 0.0

    async def open(self) -> None:
        pass

    async def close(self) -> None:
        pass

    # Configurable
    async def parameters(self) -> Sequence[Parameter]:
        return PARAMETERS

    async def get_parameter(self, name: str) -> ParameterValue:
        if name not in self.values:
            raise InvalidRequest(f"{self.name} has no parameter {name!r}")
        return self.values[name]

    async def set_parameter(self, name: str, value: ParameterValue) -> None:
        self.values[name] = value

    # WavelengthTunable
    async def wavelength(self) -> float:
        return float(self.values["wavelength"])

    async def set_wavelength(self, nm: float) -> None:
        self.values["wavelength"] = PARAMETERS[0].check(nm)

    # TemperatureController
    async def temperature_setpoint(self) -> float:
        return self.setpoint_k

    async def set_temperature_setpoint(self, kelvin: float) -> None:
        self.setpoint_k = float(kelvin)

    async def ramp_rate(self) -> float:
        return self.ramp_k_per_min

    async def set_ramp_rate(self, kelvin_per_min: float) -> None:
        self.ramp_k_per_min = float(kelvin_per_min)

    async def heater_output(self) -> Reading:
        return Reading(min(100.0, max(0.0, (self.setpoint_k - 280.0) * 2.0)), "%")


class Plain:
    """An instrument with no parameters at all (not ``Configurable``): a fixed reading."""

    def __init__(self, *, name: str = "plain") -> None:
        self.name = name

    async def open(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def read(self) -> Reading:
        return Reading(1.0, "V")
