"""A simulated bench DC supply driving a resistive load, with current compliance."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import trio

from capabilities import Limits, Reading, SupplyReadback
from drivers.sim.base import SimInstrument, check_non_negative, check_positive
from drivers.sim.world import HEATING_POWER, SUPPLY_PROTECTION, SUPPLY_SETTINGS, StepHistory
from drivers.toolkit.parameters import value


@dataclass(frozen=True, slots=True)
class _Output:
    volts: float
    amps: float
    in_compliance: bool

    @property
    def watts(self) -> float:
        return self.volts * self.amps


class SimPowerSupply(SimInstrument):
    """A constant-voltage supply into ``load_resistance`` ohms that falls back to
    constant current at its limit.

    On: the load draws ``V/R``; if that exceeds the current limit the supply is in
    compliance, delivers exactly the limit and the voltage drops to ``I_lim·R``.
    Off: 0 V, 0 A. Set points outside ``[0, max_voltage]`` / ``[0, max_current]`` are
    refused. Readback carries ``voltage_noise`` / ``current_noise`` (Gaussian).
    The power into the load is published in the sim world, so a thermometer linked to
    this supply warms up. The constructor's ``voltage``, ``current_limit`` and ``output``
    are the state at power-up; a restarted driver finds the supply as the previous one
    left it, as with a real supply whose controller reconnects.

    Over-voltage protection (parameter ``over_voltage_protection``, V): whenever the
    output is on with a voltage set point above the level — a ``set_voltage`` above it,
    ``set_on(True)`` with the set point above it, or the level lowered below the set
    point — the protection trips: the output turns off and ``protection_tripped`` reads
    true. The set point is kept; ``set_on(True)`` clears the trip and tries again. The
    level defaults to 110 % of ``max_voltage`` (it never trips) and accepts 0 to that.
    """

    over_voltage_protection = value(
        33.0,
        unit="V",
        low=0.0,
        high="_ovp_high",
        doc="output turns off when the voltage set point exceeds this level with output on",
        on_change="_check_protection",
    )
    protection_tripped = value(
        False,
        writable=False,
        doc="the over-voltage protection turned the output off (set_on(True) clears it)",
    )

    def __init__(
        self,
        *,
        name: str = "psu",
        max_voltage: float = 30.0,
        max_current: float = 3.0,
        load_resistance: float = 10.0,
        voltage: float = 0.0,
        current_limit: float = 1.0,
        output: bool = False,
        over_voltage_protection: float | None = None,
        voltage_noise: float = 5e-4,
        current_noise: float = 5e-5,
        seed: int | None = None,
        fail_after_calls: int | None = None,
        hang_after_calls: int | None = None,
        disconnect_after_calls: int | None = None,
    ) -> None:
        super().__init__(
            name,
            fail_after_calls=fail_after_calls,
            hang_after_calls=hang_after_calls,
            disconnect_after_calls=disconnect_after_calls,
        )
        owner = f"sim.power_supply {name!r}"
        check_positive(
            owner, max_voltage=max_voltage, max_current=max_current, load_resistance=load_resistance
        )
        check_non_negative(owner, voltage_noise=voltage_noise, current_noise=current_noise)
        self._voltage_range = Limits(0.0, float(max_voltage), "V")
        self._ovp_high = 1.1 * float(max_voltage)
        ovp = self._ovp_high if over_voltage_protection is None else over_voltage_protection
        self.over_voltage_protection = float(ovp)
        self._current_range = Limits(0.0, float(max_current), "A")
        self._voltage = self._voltage_range.check(float(voltage), f"{owner}: voltage")
        self._limit = self._current_range.check(float(current_limit), f"{owner}: current_limit")
        self._load = float(load_resistance)
        self._on = bool(output)
        self._noise = (float(voltage_noise), float(current_noise))
        self._rng = np.random.default_rng(seed)
        self._power: StepHistory | None = None

    async def open(self) -> None:
        await super().open()
        # A restarted driver finds the supply as the previous one left it.
        settings = self.world.get(self.name, SUPPLY_SETTINGS)
        if settings is not None:
            self._voltage, self._limit, self._on = settings
        protection = self.world.get(self.name, SUPPLY_PROTECTION)
        if protection is not None:
            self.over_voltage_protection, self.protection_tripped = protection
        t = trio.current_time()
        self._power = self.world.get(self.name, HEATING_POWER)
        if self._power is None:
            self._power = StepHistory(self._output().watts, t)
            self.world.publish(self.name, HEATING_POWER, self._power)
        self._output_changed()

    # VoltageSource

    async def set_voltage(self, volts: float) -> None:
        await self._call("set_voltage")
        self._voltage = self._voltage_range.check(float(volts), f"{self.name} voltage")
        self._check_protection()

    async def voltage_setpoint(self) -> float:
        await self._call("voltage_setpoint")
        return self._voltage

    async def set_current_limit(self, amps: float) -> None:
        await self._call("set_current_limit")
        self._limit = self._current_range.check(float(amps), f"{self.name} current limit")
        self._output_changed()

    async def current_limit(self) -> float:
        await self._call("current_limit")
        return self._limit

    async def readback(self) -> SupplyReadback:
        await self._call("readback")
        out = self._output()
        volts = out.volts + self._noise[0] * float(self._rng.standard_normal()) if self._on else 0.0
        amps = out.amps + self._noise[1] * float(self._rng.standard_normal()) if self._on else 0.0
        return SupplyReadback(Reading(volts, "V"), Reading(amps, "A"), out.in_compliance)

    # Switchable

    async def set_on(self, on: bool) -> None:
        await self._call("set_on")
        self._on = bool(on)
        if self._on:
            self.protection_tripped = False
        self._check_protection()

    async def is_on(self) -> bool:
        await self._call("is_on")
        return self._on

    # internals

    def _output(self) -> _Output:
        if not self._on:
            return _Output(0.0, 0.0, False)
        amps = self._voltage / self._load
        if amps > self._limit:
            return _Output(self._limit * self._load, self._limit, True)
        return _Output(self._voltage, amps, False)

    def _check_protection(self) -> None:
        if self._on and self._voltage > self.over_voltage_protection:
            self._on = False
            self.protection_tripped = True
        self._output_changed()

    def _output_changed(self) -> None:
        assert self._power is not None
        self._power.set(trio.current_time(), self._output().watts)
        self.world.publish(self.name, SUPPLY_SETTINGS, (self._voltage, self._limit, self._on))
        self.world.publish(
            self.name, SUPPLY_PROTECTION, (self.over_voltage_protection, self.protection_tripped)
        )
