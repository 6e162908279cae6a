"""Ways to give a run its instruments: ``(name, capability) -> object``.

In the daemon a run reaches instruments through the supervisor, so every call is
serialised with the GUI's and the pollers' and a driver fault restarts only that driver.
Tests and tools without a supervisor can hand over plain objects instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from labd.errors import CapabilityMissing, UnknownInstrument
from labd.scripting.host import Resolver
from labd.supervisor import Supervisor


def supervisor_resolver(supervisor: Supervisor) -> Resolver:
    """Instruments as typed proxies of ``supervisor``'s handles."""

    def resolve(name: str, capability: type[Any]) -> object:
        return supervisor.get(name).proxy(capability)

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
        return target

    return resolve
