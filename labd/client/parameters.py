"""An instrument's parameters from a client: ``inst.parameters["wavelength"].set(1064, "nm")``.

Units are converted by the daemon (docs/parameters.md), so a client writes them as people
do — ``set("gain", 4)``, ``set("wavelength", "1.064 um")``, ``set("ramp_rate", 2, "K/min")``
— and gets back the value the instrument holds afterwards, in the parameter's unit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import trio

from capabilities import Parameter, ParameterValue
from capabilities.parameters import ParameterChange, find
from labd.aio import to_trio
from labd.client.feed import _deliver, _Feed
from labd.client.session import ClientSession
from labd.contract import convert, schema

if TYPE_CHECKING:
    from labd.client.lab import Instrument

_s: Any = schema.load()


class RemoteConfigurable:
    """The ``Configurable`` capability over the wire (what ``inst.get(Configurable)`` gives)."""

    def __init__(self, link: ClientSession, cap: Any) -> None:
        self._link = link
        self._cap = cap

    async def parameters(self) -> Sequence[Parameter]:
        result = await self._link.call(self._cap.parameters)
        return [convert.parameter_from(p) for p in result.parameters]

    async def get_parameter(self, name: str) -> ParameterValue:
        result = await self._link.call(lambda: self._cap.getParameter(name))
        return convert.parameter_value_from(result.value)

    async def set_parameter(self, name: str, value: ParameterValue, unit: str = "") -> None:
        await self.set_value(name, value, unit)

    async def set_value(self, name: str, value: ParameterValue, unit: str = "") -> ParameterValue:
        wire = _s.ParameterValue.new_message()
        convert.parameter_value_to(wire, value)
        result = await self._link.call(lambda: self._cap.setParameter(name, wire, unit))
        return convert.parameter_value_from(result.value)

    def watch(self) -> ParameterWatch:
        return ParameterWatch(self._link, lambda watcher: self._cap.watch(watcher), _Watcher)


class Parameters:
    """``inst.parameters``: every setting of one instrument, by name."""

    def __init__(self, instrument: Instrument) -> None:
        self._instrument = instrument
        self._described: list[Parameter] | None = None

    async def _remote(self) -> RemoteConfigurable:
        from capabilities import Configurable

        remote = await self._instrument.get(Configurable)
        assert isinstance(remote, RemoteConfigurable)
        return remote

    async def list(self) -> list[Parameter]:
        """What each parameter is (kind, unit, limits or choices, description), as this
        capability may use it (a restricted one sees its own ranges)."""
        self._described = list(await (await self._remote()).parameters())
        return self._described

    async def describe(self, name: str) -> Parameter:
        described = self._described if self._described is not None else await self.list()
        return find(described, name, self._instrument.name or "this instrument")

    async def get(self, name: str) -> ParameterValue:
        """The value now, as the parameter's type (an ``int`` parameter as an int)."""
        value = await (await self._remote()).get_parameter(name)
        return convert.parameter_value_as(await self.describe(name), value)

    async def set(self, name: str, value: ParameterValue, unit: str = "") -> ParameterValue:
        """Set ``name`` to ``value`` (in ``unit``, or a quantity string such as
        ``"1064 nm"``); returns the value the instrument holds afterwards."""
        held = await (await self._remote()).set_value(name, value, unit)
        return convert.parameter_value_as(await self.describe(name), held)

    def __getitem__(self, name: str) -> ParameterRef:
        return ParameterRef(self, name)

    async def watch(self) -> ParameterWatch:
        """``async with await inst.parameters.watch() as changes: async for c in changes``"""
        return (await self._remote()).watch()


class ParameterRef:
    """One parameter: ``await inst.parameters["gain"].set(4)``."""

    def __init__(self, parameters: Parameters, name: str) -> None:
        self._parameters = parameters
        self.name = name

    async def describe(self) -> Parameter:
        return await self._parameters.describe(self.name)

    async def get(self) -> ParameterValue:
        return await self._parameters.get(self.name)

    async def set(self, value: ParameterValue, unit: str = "") -> ParameterValue:
        return await self._parameters.set(self.name, value, unit)


class _Watcher(_s.ParameterWatcher.Server):  # type: ignore[misc]
    def __init__(self, nursery: trio.Nursery, send: trio.MemorySendChannel[Any]) -> None:
        self._nursery = nursery
        self._send = send

    async def changed(self, change: Any, **_: Any) -> None:
        item = ParameterChange(
            change.instrument,
            change.parameter,
            convert.parameter_value_from(change.value),
            change.unit,
            change.by,
            change.timestamp,
        )
        await to_trio(self._nursery, _deliver, self._send, item)


class ParameterWatch(_Feed):
    async def __aenter__(self) -> ParameterWatch:
        await super().__aenter__()
        return self

    def __aiter__(self) -> ParameterWatch:
        return self

    async def __anext__(self) -> ParameterChange:
        change: ParameterChange = await self._next()
        return change
