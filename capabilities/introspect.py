"""Answer "which capabilities does this instrument have?"."""

from __future__ import annotations

from capabilities import protocols
from capabilities.declarations import declared

#: Every capability by its wire name, in a stable order (the schema mirrors this list);
#: derived from the declarations in :mod:`capabilities.protocols`.
CAPABILITIES: dict[str, type] = {decl.name: decl.protocol for decl in declared()}
assert protocols.Movable in CAPABILITIES.values()  # importing protocols declared them


def capabilities_of(instrument: object) -> list[str]:
    """Names of the capabilities ``instrument`` implements, in :data:`CAPABILITIES` order.

    ``isinstance`` against a runtime-checkable Protocol checks that the methods exist;
    signatures are mypy's job.
    """
    return [name for name, proto in CAPABILITIES.items() if isinstance(instrument, proto)]


def capability(name: str) -> type:
    """The Protocol called ``name``; raises ``KeyError`` with the known names otherwise."""
    try:
        return CAPABILITIES[name]
    except KeyError:
        known = ", ".join(CAPABILITIES)
        raise KeyError(f"unknown capability {name!r}; known: {known}") from None
