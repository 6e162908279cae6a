"""A SCPI instrument described entirely in the lab config, with no Python code.

Each capability the instrument has is one table of commands; the driver has exactly the
capabilities whose tables are present (the class is composed from one mixin per
capability, so :func:`capabilities.capabilities_of` reports the configured set)::

    [instruments.att]
    driver = "scpi.generic"
    resource = "TCPIP0::10.0.0.7::inst0::INSTR"
    model = "ACME ATT-100"
    readable = { query = "MEAS:VOLT?", unit = "V" }
    movable = { set = "POS %g", get = "POS?", min = -50, max = 50, unit = "mm", settled = "*OPC?" }
    stoppable = { command = "ABOR" }
    switchable = { set = "OUTP %d", get = "OUTP?" }

Commands take the value printf-style (``%g``, ``%d``, ``%.3f``). After every command the
error queue (``error_query``, ``SYST:ERR?`` by default; ``""`` to skip) is read.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import trio

from capabilities import Limits, Reading, SupplyReadback
from drivers.toolkit import (
    Connection,
    MessageInstrument,
    ScpiErrorQueue,
    scpi_bool,
    settle_deadline,
)
from drivers.toolkit.visa_link import VisaLink

SETTLE_TIMEOUT_S = 30.0
"""How long a ``wait_settled`` without a timeout of its own waits before the axis counts as
stuck (a fault)."""

#: capability table -> (required keys, optional keys)
TABLES: dict[str, tuple[set[str], set[str]]] = {
    "readable": ({"query"}, {"unit"}),
    "temperature_sensor": ({"query"}, {"unit"}),
    "movable": ({"set", "get", "min", "max"}, {"unit", "settled", "tolerance"}),
    "stoppable": ({"command"}, set()),
    "switchable": ({"set", "get"}, set()),
    "voltage_source": (
        {"set_voltage", "get_voltage", "set_current", "get_current", "max_voltage", "max_current"},
        {"measure_voltage", "measure_current"},
    ),
}


class GenericSCPI(MessageInstrument):
    """Capabilities: those configured (Readable, TemperatureSensor, Movable, Stoppable,
    Switchable, VoltageSource)."""

    def __init__(
        self,
        *,
        resource: str,
        visa_library: str = "@py",
        timeout_s: float = 2.0,
        model: str = "SCPI instrument",
        read_termination: str = "\n",
        write_termination: str = "\n",
        error_query: str = "SYST:ERR?",
        readable: Mapping[str, Any] | None = None,
        temperature_sensor: Mapping[str, Any] | None = None,
        movable: Mapping[str, Any] | None = None,
        stoppable: Mapping[str, Any] | None = None,
        switchable: Mapping[str, Any] | None = None,
        voltage_source: Mapping[str, Any] | None = None,
    ) -> None:
        given = {
            "readable": readable,
            "temperature_sensor": temperature_sensor,
            "movable": movable,
            "stoppable": stoppable,
            "switchable": switchable,
            "voltage_source": voltage_source,
        }
        self.tables = {name: _check_table(name, t) for name, t in given.items() if t is not None}
        if not self.tables:
            raise ValueError(f"configure at least one capability table: {', '.join(TABLES)}")
        link = VisaLink(
            resource,
            visa_library=visa_library,
            timeout_s=timeout_s,
            read_termination=read_termination,
            write_termination=write_termination,
        )
        check = ScpiErrorQueue(error_query) if error_query else None
        super().__init__(Connection(link, model=model, timeout_s=timeout_s, error_check=check))
        # Become the class that has exactly the configured capabilities' methods.
        self.__class__ = _compose(tuple(self.tables))

    async def _number(self, command: str) -> float:
        reply = await self.query(command)
        try:
            return float(reply)
        except ValueError:
            raise self.connection.unexpected(command, reply, "a number") from None

    async def _send(self, template: str, value: object) -> None:
        await self.write(template % value)


def _check_table(name: str, table: Mapping[str, Any]) -> dict[str, Any]:
    required, optional = TABLES[name]
    missing = required - set(table)
    if missing:
        raise ValueError(f"[{name}] lacks {', '.join(sorted(missing))}")
    unknown = set(table) - required - optional
    if unknown:
        accepted = ", ".join(sorted(required | optional))
        raise ValueError(
            f"[{name}] has unknown key(s) {', '.join(sorted(unknown))}; accepted: {accepted}"
        )
    for key in ("set", "set_voltage", "set_current"):
        if key in table and "%" not in table[key]:
            raise ValueError(f"[{name}] {key} = {table[key]!r} needs a %g (or %d) for the value")
    return dict(table)


class _Readable(GenericSCPI):
    async def read(self) -> Reading:
        table = self.tables["readable"]
        return Reading(await self._number(table["query"]), table.get("unit", ""))


class _TemperatureSensor(GenericSCPI):
    async def temperature(self) -> Reading:
        table = self.tables["temperature_sensor"]
        return Reading(await self._number(table["query"]), table.get("unit", "K"))


class _Movable(GenericSCPI):
    def _travel(self) -> Limits:
        table = self.tables["movable"]
        return Limits(float(table["min"]), float(table["max"]), table.get("unit", ""))

    async def move_abs(self, position: float) -> None:
        self._travel().check(position, f"{self.label}: position")
        await self._send(self.tables["movable"]["set"], position)

    async def move_rel(self, delta: float) -> None:
        await self.move_abs((await self.position()).value + delta)

    async def position(self) -> Reading:
        table = self.tables["movable"]
        return Reading(await self._number(table["get"]), table.get("unit", ""))

    async def wait_settled(self, timeout: float | None = None) -> Reading:
        """``settled`` (e.g. ``*OPC?``) blocks until the move is done; without it, poll
        the position until two readings agree within ``tolerance``."""
        table = self.tables["movable"]
        with settle_deadline(self.label, timeout, SETTLE_TIMEOUT_S):
            if "settled" in table:
                await self.query(table["settled"])
                return await self.position()
            last = await self.position()
            while True:
                await trio.sleep(0.05)
                now = await self.position()
                if abs(now.value - last.value) <= float(table.get("tolerance", 0.0)):
                    return now
                last = now

    async def limits(self) -> Limits:
        return self._travel()


class _Stoppable(GenericSCPI):
    async def stop(self) -> None:
        await self.write(self.tables["stoppable"]["command"])


class _Switchable(GenericSCPI):
    async def set_on(self, on: bool) -> None:
        await self._send(self.tables["switchable"]["set"], int(on))

    async def is_on(self) -> bool:
        command = self.tables["switchable"]["get"]
        reply = await self.query(command)
        try:
            return scpi_bool(reply)
        except ValueError:
            raise self.connection.unexpected(command, reply, "0/1 or OFF/ON") from None


class _VoltageSource(GenericSCPI):
    async def set_voltage(self, volts: float) -> None:
        table = self.tables["voltage_source"]
        Limits(0.0, float(table["max_voltage"]), "V").check(volts, f"{self.label}: voltage")
        await self._send(table["set_voltage"], volts)

    async def voltage_setpoint(self) -> float:
        return await self._number(self.tables["voltage_source"]["get_voltage"])

    async def set_current_limit(self, amps: float) -> None:
        table = self.tables["voltage_source"]
        Limits(0.0, float(table["max_current"]), "A").check(amps, f"{self.label}: current")
        await self._send(table["set_current"], amps)

    async def current_limit(self) -> float:
        return await self._number(self.tables["voltage_source"]["get_current"])

    async def readback(self) -> SupplyReadback:
        table = self.tables["voltage_source"]
        volts = await self._number(table.get("measure_voltage", table["get_voltage"]))
        amps = await self._number(table.get("measure_current", table["get_current"]))
        limit = await self.current_limit()
        return SupplyReadback(Reading(volts, "V"), Reading(amps, "A"), amps >= 0.99 * limit)


_MIXINS: dict[str, type[GenericSCPI]] = {
    "readable": _Readable,
    "temperature_sensor": _TemperatureSensor,
    "movable": _Movable,
    "stoppable": _Stoppable,
    "switchable": _Switchable,
    "voltage_source": _VoltageSource,
}
_COMPOSED: dict[tuple[str, ...], type[GenericSCPI]] = {}


def _compose(tables: tuple[str, ...]) -> type[GenericSCPI]:
    """The subclass of GenericSCPI with the mixins of ``tables`` (made once per set)."""
    key = tuple(sorted(tables))
    if key not in _COMPOSED:
        bases = tuple(_MIXINS[name] for name in key)
        name = "GenericSCPI[" + ",".join(key) + "]"
        _COMPOSED[key] = type(name, bases, {"__module__": __name__})
    return _COMPOSED[key]
