"""One Cap'n Proto server class per capability, each a thin adapter onto the supervisor.

The classes are derived from the capabilities' declarations (capabilities/declarations.py:
methods, their types, which mutate, which a range bounds); only ``Configurable`` is
written by hand. A method's arguments and results cross by the types its Protocol
declares (:mod:`labd.contract.convert`).

Every call goes through :meth:`Target.call`: check the holder's :class:`Policy` (revoked?
expired? read-only?), run the driver method as a Trio task in the connection's nursery via
:func:`labd.aio.to_trio` (so a cancelled RPC cancels the driver call), and turn any
exception into its short wire form. A restricted holder's call carries the policy as its
guard, which the instrument's owner task runs atomically with the call against the
set-points the call would leave (ranges: docs/security.md).

Fault injection is the lab owner's alone: a restricted or shared capability never
carries ``FaultInjectable`` (:func:`granted`).
"""

from __future__ import annotations

import asyncio
import logging
import typing
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from capabilities import Frame, InvalidRequest
from capabilities.declarations import CapabilityDecl, MethodDecl, camel, declared
from labd import parameters, records
from labd.aio import aio, to_trio
from labd.contract import convert, schema
from labd.contract.errors import to_wire_error
from labd.parameters import Change, ParameterLog
from labd.rpc.ipc import ipc_buffer
from labd.rpc.policy import Policy
from labd.rpc.subscriptions import SubscriptionServer, failure_text
from labd.supervisor import InstrumentHandle

log = logging.getLogger("labd.rpc")

METHODS: dict[str, MethodDecl] = {m.name: m for decl in declared() for m in decl.methods}
"""Every capability method by name (names are unique across capabilities)."""

_s: Any = schema.load()


class Target:
    """One instrument as seen through one capability holder's policy."""

    def __init__(
        self,
        handle: InstrumentHandle,
        policy: Policy,
        nursery: trio.Nursery,
        parameter_log: ParameterLog | None = None,
    ) -> None:
        self.handle = handle
        self.policy = policy
        self.nursery = nursery
        self.parameter_log = parameter_log
        """Where parameter sets are recorded and watched; None: a server without streams."""

    async def run(self, afn: Callable[[], Awaitable[Any]]) -> Any:
        """Run the Trio function ``afn`` for an RPC; errors leave as :class:`WireError`."""
        try:
            return await to_trio(self.nursery, afn)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            raise to_wire_error(exc) from None

    async def call(self, method: str, *args: Any) -> Any:
        """``handle.call(method, *args)`` if the policy allows it, now and as it runs
        (whether it mutates is the capability's declaration)."""
        mutates = METHODS[method].mutates

        async def checked() -> Any:
            self.policy.check_call(method, mutates=mutates)
            guard = (
                self.policy.guard(method, mutates=mutates) if self.policy.is_restricted else None
            )
            return await self.handle.call(method, *args, guard=guard)

        return await self.run(checked)

    def guard_for(self, method: str, *, mutates: bool) -> Any:
        self.policy.check_call(method, mutates=mutates)
        return self.policy.guard(method, mutates=mutates) if self.policy.is_restricted else None


class ConfigurableServer(_s.Configurable.Server):  # type: ignore[misc]
    """Parameters by name, through :mod:`labd.parameters` (units, read-back, recording)."""

    def __init__(self, target: Target) -> None:
        self._t = target

    async def parameters(self, _context: Any, **_: Any) -> None:
        async def listed() -> list[Any]:
            self._t.policy.check_alive()
            return [self._t.policy.narrow(p) for p in await parameters.describe(self._t.handle)]

        found = await self._t.run(listed)
        for struct, parameter in zip(
            _context.results.init("parameters", len(found)), found, strict=True
        ):
            convert.parameter_to(struct, parameter)

    async def getParameter(self, name: str, _context: Any, **_: Any) -> None:
        async def got() -> Any:
            self._t.policy.check_alive()
            return await parameters.get_value(self._t.handle, name)

        convert.parameter_value_to(_context.results.value, await self._t.run(got))

    async def setParameter(self, name: str, value: Any, unit: str, _context: Any, **_: Any) -> None:
        given = convert.parameter_value_from(value)

        async def done() -> Any:
            guard = self._t.guard_for("set_parameter", mutates=True)
            return await parameters.set_value(
                self._t.handle,
                name,
                given,
                unit=unit,
                guard=guard,
                by="rpc",
                log_to=self._t.parameter_log,
            )

        convert.parameter_value_to(_context.results.value, await self._t.run(done))

    async def watch(self, watcher: Any, **_: Any) -> Any:
        self._t.policy.check_alive()
        log_ = self._t.parameter_log
        if log_ is None:
            raise to_wire_error(InvalidRequest("this labd server records no parameter sets"))
        subscription = SubscriptionServer()
        self._t.nursery.start_soon(_push_changes, log_, self._t, watcher, subscription)
        return subscription


async def _push_changes(
    log_: ParameterLog, target: Target, watcher: Any, subscription: SubscriptionServer
) -> None:
    """Send every recorded set on the target's instrument to ``watcher``, one at a time,
    while the holder's capability lives (revoking it ends the watch)."""
    with subscription.scope, log_.watch(target.handle.name) as changes:
        async for change in changes:
            try:
                target.policy.check_alive()
                await aio(watcher.changed(_change_to_wire(change)))
            except Exception as exc:
                log.debug("parameter watcher gone: %s", failure_text(exc))
                return
            subscription.sent += 1


def _change_to_wire(change: Change) -> Any:
    message = _s.ParameterChange.new_message(
        instrument=change.instrument,
        parameter=change.parameter,
        unit=change.unit,
        by=change.by,
        timestamp=change.timestamp,
    )
    convert.parameter_value_to(message.value, change.value)
    return message


def _result_fields(interface: Any, wire: str) -> list[str]:
    struct = interface.schema.methods[wire].result_type.node.struct
    return [f.name for f in sorted(struct.fields, key=lambda f: f.codeOrder)]


def _server_method(interface: Any, method: MethodDecl, hints: dict[str, Any]) -> Any:
    """The wire method ``method.wire``: arguments from the wire, the call through the
    target (policy, guard, supervisor), the result onto the wire -- as declared."""
    arguments = [(camel(name), hint) for name, hint in hints.items() if name != "return"]
    returns = hints.get("return")
    fields = _result_fields(interface, method.wire)

    async def serve(self: Any, _context: Any, **wire: Any) -> None:
        args = [convert.arg_from_wire(hint, wire[name]) for name, hint in arguments]
        result = await self._t.call(method.name, *args)
        if method.bounded_by is not None:  # a restricted holder sees the range it may use
            bounds = self._t.policy.effective_range(method.bounded_by)
            if bounds is not None:
                result = type(result)(
                    max(result.low, bounds[0]), min(result.high, bounds[1]), result.unit
                )
        if returns is Frame:
            _context.results.frame = memoryview(ipc_buffer(records.frame_to_batch(result)))
        else:
            convert.result_to_wire(returns, _context.results, fields, result)

    serve.__name__ = method.wire
    return serve


def _server_class(decl: CapabilityDecl) -> type[Any]:
    """The Cap'n Proto server of one declared capability."""
    interface = getattr(_s, decl.name)
    namespace: dict[str, Any] = {
        "__init__": _init_server,
        "__doc__": f"{decl.name} on the wire, derived from its declaration.",
    }
    for method in decl.methods:
        hints = typing.get_type_hints(getattr(decl.protocol, method.name))
        namespace[method.wire] = _server_method(interface, method, hints)
    return type(f"{decl.name}Server", (interface.Server,), namespace)


def _init_server(self: Any, target: Target) -> None:
    self._t = target


CUSTOM_SERVERS: dict[str, type[Any]] = {"Configurable": ConfigurableServer}
"""Capabilities whose server is written by hand: parameters go through
:mod:`labd.parameters` (units, read-back, recording), not one driver call each."""

#: capability name -> (field of the ``Capabilities`` struct, server class)
SERVERS: dict[str, tuple[str, type[Any]]] = {
    decl.name: (decl.wire_field, CUSTOM_SERVERS.get(decl.name) or _server_class(decl))
    for decl in declared()
}


OWNER_ONLY = frozenset(decl.name for decl in declared() if decl.owner_only)
"""Capabilities only the unrestricted capability (the lab owner's) carries."""


def granted(handle: InstrumentHandle, policy: Policy) -> list[str]:
    """The capabilities of ``handle`` a holder of ``policy`` gets."""
    if not policy.is_restricted:
        return list(handle.capabilities)
    return [name for name in handle.capabilities if name not in OWNER_ONLY]


def fill_capabilities(struct: Any, target: Target) -> None:
    """Set one server per capability granted to the target's holder on a ``Capabilities`` struct."""
    for name in granted(target.handle, target.policy):
        field, server = SERVERS[name]
        setattr(struct, field, server(target))
