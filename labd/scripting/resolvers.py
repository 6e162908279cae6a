"""Ways to give a run its instruments: ``(name, capability) -> object``.

In the daemon a run reaches instruments through the supervisor, so every call is
serialised with the GUI's and the pollers' and a driver fault restarts only that driver.
Tests and tools without a supervisor can hand over plain objects instead.

Parameters are the exception to "an object implementing the capability": for
:class:`~capabilities.Configurable` a resolver returns a *handle* (see
:data:`labd.scripting.host.Resolver`), because a script's sets go through
:mod:`labd.parameters` like every other surface's (docs/scripting.md, "Parameters").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from capabilities import Configurable
from labd.errors import CapabilityMissing, UnknownInstrument
from labd.scripting.host import Resolver
from labd.setpoints import parameter_key
from labd.supervisor import Guard, Supervisor


def supervisor_resolver(supervisor: Supervisor) -> Resolver:
    """Instruments as typed proxies of ``supervisor``'s handles (Configurable: the handle)."""

    def resolve(name: str, capability: type[Any]) -> object:
        handle = supervisor.get(name)
        proxy = handle.proxy(capability)  # CapabilityMissing if it lacks the capability
        return handle if capability is Configurable else proxy

    return resolve


def objects_resolver(objects: Mapping[str, object]) -> Resolver:
    """Instruments from a plain mapping of names to (driver) objects."""

    def resolve(name: str, capability: type[Any]) -> object:
        try:
            target = objects[name]
        except KeyError:
            known = ", ".join(sorted(objects)) or "none"
            raise UnknownInstrument(f"no instrument named {name!r}; known: {known}") from None
        if not isinstance(target, capability):
            raise CapabilityMissing(f"{name} is not {capability.__name__}")
        return ObjectHandle(name, target) if capability is Configurable else target

    return resolve


class ObjectHandle:
    """A plain object in the shape of the handle :mod:`labd.parameters` works on.

    Calls go straight to the object: there is no owner task to serialise them, and a
    guard sees only the parameter being set (docs/scripting.md, "Parameters").
    """

    channel: str | None = None

    def __init__(self, name: str, target: object) -> None:
        self.name = name
        self._target = target

    async def call(
        self, method: str, *args: Any, timeout: float | None = None, guard: Guard | None = None
    ) -> Any:
        if guard is not None and method == "set_parameter":
            guard({parameter_key(str(args[0])): args[1]})
        return await getattr(self._target, method)(*args)

    def __repr__(self) -> str:
        return f"<ObjectHandle {self.name}>"
