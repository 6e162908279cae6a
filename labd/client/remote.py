"""Client-side capability objects: each implements its :mod:`capabilities` Protocol.

The classes are derived from the capabilities' declarations (capabilities/declarations.py),
as the daemon's servers are, so the two ends cannot drift apart.

``await instrument.get(Movable)`` returns a :class:`RemoteMovable`, which mypy accepts
wherever a ``Movable`` is expected — the same experiment code runs in the daemon (on a
supervisor proxy) and in a client (over the wire).
"""

from __future__ import annotations

import typing
from collections.abc import Callable
from typing import Any

from capabilities import Frame
from capabilities.declarations import CapabilityDecl, MethodDecl, declared
from labd import records
from labd.client.parameters import RemoteConfigurable
from labd.client.session import ClientSession
from labd.contract import convert, schema

_s: Any = schema.load()


class _Remote:
    def __init__(self, link: ClientSession, cap: Any) -> None:
        self._link = link
        self._cap = cap

    async def _call(self, send: Callable[[], Any]) -> Any:
        return await self._link.call(send)


def _result_fields(interface: Any, wire: str) -> list[str]:
    struct = interface.schema.methods[wire].result_type.node.struct
    return [f.name for f in sorted(struct.fields, key=lambda f: f.codeOrder)]


def _remote_method(interface: Any, method: MethodDecl, hints: dict[str, Any]) -> Any:
    arguments = [hint for name, hint in hints.items() if name != "return"]
    returns = hints.get("return")
    fields = _result_fields(interface, method.wire)

    async def call(self: _Remote, *args: Any) -> Any:
        if len(args) > len(arguments):
            raise TypeError(f"{method.name}() takes {len(arguments)} arguments, got {len(args)}")
        wire = [convert.arg_to_wire(h, a) for h, a in zip(arguments, args, strict=False)]
        response = await self._call(lambda: getattr(self._cap, method.wire)(*wire))
        if returns is Frame:
            return records.frame_from_batch(records.batch_from_ipc(response.frame))
        return convert.result_from_wire(returns, response, fields)

    call.__name__ = method.name
    return call


def _remote_class(decl: CapabilityDecl) -> type[_Remote]:
    """The client side of one declared capability: an object satisfying its Protocol."""
    interface = getattr(_s, decl.name)
    namespace: dict[str, Any] = {"__doc__": f"{decl.name} over the wire."}
    for method in decl.methods:
        hints = typing.get_type_hints(getattr(decl.protocol, method.name))
        namespace[method.name] = _remote_method(interface, method, hints)
    return type(f"Remote{decl.name}", (_Remote,), namespace)


CUSTOM_REMOTES: dict[str, type[_Remote | RemoteConfigurable]] = {"Configurable": RemoteConfigurable}
"""Capabilities whose remote is written by hand (parameters: see labd.client.parameters)."""

#: capability name -> (field of the wire ``Capabilities`` struct, client class)
REMOTES: dict[str, tuple[str, type[_Remote | RemoteConfigurable]]] = {
    decl.name: (decl.wire_field, CUSTOM_REMOTES.get(decl.name) or _remote_class(decl))
    for decl in declared()
}
