"""Keysight E36300 family of triple-output DC supplies (E36311A/12A/13A) over VISA.

Each output is a channel (``psu/ch1``...) implementing VoltageSource and Switchable; all
three share the supply's one VISA session. Commands address an output with the SCPI
channel list (``VOLT 5,(@2)``), so no "selected channel" state can go stale between
calls. Voltage and current limits are per model and per output, checked before sending.

Whether an output is current-limited is judged from the measured current reaching the
limit (within 1 %), which is what constant-current mode means.

Parameters per output: ``over_voltage_protection`` (``VOLT:PROT``: the output turns off
when its voltage exceeds the level) and ``over_current_protection``
(``CURR:PROT:STAT``: the output turns off instead of regulating current at its limit).
The voltage and current set points and the output state are not parameters: they are
the VoltageSource and Switchable methods, which a share can restrict (docs/security.md).
"""

from __future__ import annotations

from collections.abc import Mapping

from capabilities import Reading, SupplyReadback
from drivers.toolkit import (
    Channel,
    Connection,
    MessageInstrument,
    ScpiErrorQueue,
    control,
    from_attribute,
    in_range,
    measurement,
    scpi_bool,
)
from drivers.toolkit.validators import InRange
from drivers.toolkit.visa_link import VisaLink

#: model -> per output (max volts, max amps), from the E36300 data sheet (programming range).
MODELS: dict[str, tuple[tuple[float, float], ...]] = {
    "E36311A": ((6.18, 5.15), (25.75, 1.03), (25.75, 1.03)),  # output 3 is -25 V, set as magnitude
    "E36312A": ((6.18, 5.15), (25.75, 1.03), (25.75, 1.03)),
    "E36313A": ((6.18, 10.3), (25.75, 2.06), (25.75, 2.06)),
}


class E36300Output(Channel):
    """One output: VoltageSource + Switchable + Configurable (its protection)."""

    voltage = control(
        "VOLT? (@{ch})",
        "VOLT {:.4f},(@{ch})",
        validator=from_attribute("volts"),
        unit="V",
        parameter=False,  # VoltageSource.set_voltage, restricted by shares
    )
    current = control(
        "CURR? (@{ch})",
        "CURR {:.4f},(@{ch})",
        validator=from_attribute("amps"),
        unit="A",
        parameter=False,  # VoltageSource.set_current_limit
    )
    output = control(
        "OUTP? (@{ch})",
        "OUTP {},(@{ch})",
        parse=scpi_bool,
        format=int,
        expected="0 or 1",
        parameter=False,  # Switchable.set_on
    )
    over_voltage_protection = control(
        "VOLT:PROT? (@{ch})",
        "VOLT:PROT {:.4f},(@{ch})",
        validator=from_attribute("volts"),
        unit="V",
        doc="the output turns off when its voltage exceeds this level",
    )
    over_current_protection = control(
        "CURR:PROT:STAT? (@{ch})",
        "CURR:PROT:STAT {},(@{ch})",
        parse=scpi_bool,
        format=int,
        expected="0 or 1",
        doc="on: the output turns off at its current limit instead of regulating current",
    )
    measured_voltage = measurement("MEAS:VOLT? (@{ch})", unit="V")
    measured_current = measurement("MEAS:CURR? (@{ch})", unit="A")

    def __init__(self, parent: MessageInstrument, number: int, volts: float, amps: float) -> None:
        super().__init__(parent, f"ch{number}", {"ch": number})
        self.volts: InRange = in_range(0, volts, "V")
        self.amps: InRange = in_range(0.002, amps, "A")

    async def set_voltage(self, volts: float) -> None:
        await self.voltage.set(volts)

    async def voltage_setpoint(self) -> float:
        return await self.voltage.get()

    async def set_current_limit(self, amps: float) -> None:
        await self.current.set(amps)

    async def current_limit(self) -> float:
        return await self.current.get()

    async def readback(self) -> SupplyReadback:
        volts = await self.measured_voltage.get()
        amps = await self.measured_current.get()
        limit = await self.current.get()
        return SupplyReadback(Reading(volts, "V"), Reading(amps, "A"), amps >= 0.99 * limit)

    async def set_on(self, on: bool) -> None:
        await self.output.set(on)

    async def is_on(self) -> bool:
        return await self.output.get()


class KeysightE36300(MessageInstrument):
    """Capabilities: HasChannels (ch1..ch3, each VoltageSource + Switchable)."""

    identity = measurement("*IDN?", parse=str)

    def __init__(
        self,
        *,
        resource: str,
        visa_library: str = "@py",
        timeout_s: float = 2.0,
        model: str = "E36312A",
    ) -> None:
        if model not in MODELS:
            raise ValueError(f"model must be one of {', '.join(MODELS)}, got {model!r}")
        link = VisaLink(resource, visa_library=visa_library, timeout_s=timeout_s)
        super().__init__(
            Connection(
                link, model=f"Keysight {model}", timeout_s=timeout_s, error_check=ScpiErrorQueue()
            )
        )
        self.model = model
        self.outputs = {
            f"ch{n}": E36300Output(self, n, volts, amps)
            for n, (volts, amps) in enumerate(MODELS[model], start=1)
        }

    def channels(self) -> Mapping[str, object]:
        return self.outputs

    async def open(self) -> None:
        await super().open()
        await self.write("*CLS", check_errors=False)
        identity = await self.identity.get()
        if self.model not in identity:
            raise self.connection.unexpected("*IDN?", identity, f"a Keysight {self.model}")
