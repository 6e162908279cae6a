"""Each capability declared once: its Protocol, marked with what every layer needs to know.

A capability is written in one place, :mod:`capabilities.protocols`, as a Protocol whose
methods carry their types, decorated with the facts the layers above cannot read from the
types: which methods change the instrument (:func:`mutates`), which set-point a method's
argument sets or moves (the ranges a share can restrict, docs/security.md), and the
capability's number in the WebAssembly ABI. Everything else is derived from it — the RPC
servers and client remotes (:mod:`labd.rpc.capability_servers`, :mod:`labd.client.remote`),
the policy's read-only and range checks (:mod:`labd.setpoints`) and the script ABI's kind
table (:mod:`labd.scripting.abi`) — and a test checks ``schema/labd.capnp``, every SDK
and the GUI's sections against it (docs/architecture.md, "Each capability declared once").

Adding a capability is: the Protocol here, its interface in the schema, the drivers.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])
C = TypeVar("C", bound=type)

_MARK = "__labd_method__"


@dataclass(frozen=True)
class MethodDecl:
    """One method of a capability as every layer sees it."""

    name: str
    """The Python name (``move_abs``); on the wire it is camelCase (``moveAbs``)."""
    mutates: bool = False
    """Changes the instrument: a read-only holder may not call it."""
    sets: str | None = None
    """The set-point (``position``, ``voltage``) its argument sets, absolutely."""
    moves: str | None = None
    """The set-point its argument changes relatively (``move_rel``: position)."""
    forgets: str | None = None
    """The set-point it leaves unknown (``stop``: the position the axis was going to)."""
    bounded_by: str | None = None
    """A query whose answer a restricted holder sees narrowed to its range of this
    set-point (``limits``: position)."""

    @property
    def wire(self) -> str:
        return camel(self.name)


@dataclass(frozen=True)
class CapabilityDecl:
    """One capability: its Protocol and everything the layers derive from it."""

    protocol: type
    methods: tuple[MethodDecl, ...]
    abi_kind: int | None
    """Its number in the WebAssembly ABI (wasm_scripts/ABI.md); None: not for scripts."""
    owner_only: bool
    """Only the lab owner's unrestricted capability carries it (fault injection)."""

    @property
    def name(self) -> str:
        return self.protocol.__name__

    @property
    def wire_field(self) -> str:
        """Its field in the wire ``Capabilities`` struct (``frameProducer``)."""
        return self.name[0].lower() + self.name[1:]

    def method(self, name: str) -> MethodDecl:
        return next(m for m in self.methods if m.name == name)


_DECLARED: dict[str, CapabilityDecl] = {}


def capability(*, abi_kind: int | None = None, owner_only: bool = False) -> Callable[[C], C]:
    """Declare the decorated Protocol a capability (in wire order: declare new ones last)."""

    def declare(protocol: C) -> C:
        methods = tuple(
            getattr(value, _MARK, MethodDecl(name))
            for name, value in vars(protocol).items()
            if not name.startswith("_") and callable(value)
        )
        for method in methods:
            clash = next((c.name for c in _DECLARED.values() if _has(c, method.name)), None)
            if clash is not None:
                raise TypeError(f"{protocol.__name__}.{method.name}: already a method of {clash}")
        _DECLARED[protocol.__name__] = CapabilityDecl(protocol, methods, abi_kind, owner_only)
        return protocol

    return declare


def mutates(
    *,
    sets: str | None = None,
    moves: str | None = None,
    forgets: str | None = None,
) -> Callable[[F], F]:
    """Mark a capability method as one that changes the instrument."""

    def mark(method: F) -> F:
        decl = MethodDecl(method.__name__, True, sets, moves, forgets)
        setattr(method, _MARK, decl)
        return method

    return mark


def bounded_by(quantity: str) -> Callable[[F], F]:
    """Mark a query whose answer a restricted holder sees within its range of ``quantity``."""

    def mark(method: F) -> F:
        setattr(method, _MARK, MethodDecl(method.__name__, bounded_by=quantity))
        return method

    return mark


def declared() -> list[CapabilityDecl]:
    """Every capability, in declaration order (the order of the wire struct's fields).

    Complete once :mod:`capabilities.protocols` is imported, which importing the
    ``capabilities`` package (and so this module) always does first."""
    return list(_DECLARED.values())


def declaration(name: str) -> CapabilityDecl:
    """The capability called ``name``; KeyError naming the known ones otherwise."""
    try:
        return _DECLARED[name]
    except KeyError:
        raise KeyError(f"unknown capability {name!r}; known: {', '.join(_DECLARED)}") from None


def camel(name: str) -> str:
    """``move_abs`` -> ``moveAbs``: how a Python name is written on the wire."""
    return re.sub(r"_([a-z0-9])", lambda m: m.group(1).upper(), name)


def _has(decl: CapabilityDecl, method: str) -> bool:
    return any(m.name == method for m in decl.methods)
