"""The base class of a message-based driver, and of a channel sharing its connection."""

from __future__ import annotations

from collections.abc import Mapping

from drivers.toolkit.connection import Connection
from drivers.toolkit.properties import Endpoint


class MessageInstrument(Endpoint):
    """A driver that owns one :class:`Connection`.

    Subclasses build the connection in ``__init__`` (no I/O there: the config loader
    constructs drivers just to check their parameters) and extend :meth:`open` with the
    instrument's setup, calling ``await super().open()`` first.
    """

    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    async def open(self) -> None:
        await self.connection.open()

    async def close(self) -> None:
        await self.connection.close()

    async def query(self, command: str) -> str:
        return await self.connection.query(command)

    async def write(self, command: str, *, check_errors: bool = True) -> None:
        await self.connection.write(command, check_errors=check_errors)


class Channel(Endpoint):
    """One channel of a multi-channel instrument: the parent's connection, its own fields.

    ``fields`` fill the named placeholders of command templates, e.g. ``{"ch": 2}`` turns
    ``"VOLT? (@{ch})"`` into ``"VOLT? (@2)"``.
    """

    def __init__(self, parent: MessageInstrument, name: str, fields: Mapping[str, object]) -> None:
        self.connection = parent.connection
        self.name = name
        self._fields = dict(fields)

    @property
    def label(self) -> str:
        return f"{self.connection.name} {self.name}"

    def parameter_channel(self) -> str:
        return self.name

    def command_fields(self) -> Mapping[str, object]:
        return self._fields
