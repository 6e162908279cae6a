"""What a derived capability may still do, as a client asks for it and the daemon gets it.

The daemon's :class:`labd.rpc.policy.Policy` enforces it (docs/security.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from capabilities.declarations import declared
from labd.contract import schema

RANGED_QUANTITIES = tuple(
    dict.fromkeys(m.sets for decl in declared() for m in decl.methods if m.sets is not None)
)
"""Set-points a restriction can bound, as the capabilities declare them (``position``,
``voltage``, ``current``): each is a field of ``Restriction`` in ``labd.capnp``."""


@dataclass(frozen=True)
class ParameterLimit:
    """What a restricted holder may do with one parameter (``ParameterLimit`` on the wire)."""

    read_only: bool = False
    """It may read the parameter, never set it."""
    range: tuple[float, float] | None = None
    """A number it may set only within ``[low, high]`` (in the parameter's unit)."""
    choices: tuple[str, ...] = ()
    """A choice it may set only to one of these; empty: any."""


@dataclass(frozen=True)
class Restriction:
    """The narrowing asked for when deriving a capability (mirrors ``labd.capnp``)."""

    read_only: bool = False
    expires_in: float | None = None
    """Seconds from now, positive and finite; ``None``: never expires (beyond the
    parent's expiry)."""
    ranges: dict[str, tuple[float, float]] = field(default_factory=dict)
    """Allowed set-point ranges by quantity: ``position`` (Movable), ``voltage`` and
    ``current`` (VoltageSource)."""
    parameters: dict[str, ParameterLimit] = field(default_factory=dict)
    """Limits per parameter, by name (docs/parameters.md)."""

    def to_wire(self) -> Any:
        """The ``Restriction`` message. Its figures are checked by the daemon, in
        :meth:`labd.rpc.policy.Policy.derive` (one place; a bad one is ``InvalidRequest``)."""
        message = schema.load().Restriction.new_message(
            readOnly=self.read_only, expiresIn=self.expires_in or 0.0
        )
        for quantity, (low, high) in self.ranges.items():
            if quantity not in RANGED_QUANTITIES:
                raise ValueError(f"cannot restrict {quantity!r}; known: {RANGED_QUANTITIES}")
            part = message.init(quantity)
            part.low, part.high = low, high
        limits = message.init("parameters", len(self.parameters))
        for struct, (name, limit) in zip(limits, self.parameters.items(), strict=True):
            struct.name, struct.readOnly = name, limit.read_only
            if limit.range is not None:
                struct.init("range")
                struct.range.low, struct.range.high = limit.range
            choices = struct.init("choices", len(limit.choices))
            for i, choice in enumerate(limit.choices):
                choices[i] = choice
        return message

    @classmethod
    def from_wire(cls, struct: Any) -> Restriction:
        """The ``Restriction`` message as asked for; its figures are checked by the
        daemon's :meth:`labd.rpc.policy.Policy.derive`."""
        ranges = {
            quantity: (getattr(struct, quantity).low, getattr(struct, quantity).high)
            for quantity in RANGED_QUANTITIES
            if struct._has(quantity)
        }
        parameters = {
            limit.name: ParameterLimit(
                read_only=limit.readOnly,
                range=(limit.range.low, limit.range.high) if limit._has("range") else None,
                choices=tuple(limit.choices),
            )
            for limit in struct.parameters
        }
        # 0 (also the unset default) is "never"; anything else must be a lifetime, which
        # Policy.derive checks (a negative or NaN one used to mean "never" too).
        expires_in = None if struct.expiresIn == 0 else struct.expiresIn
        return cls(
            read_only=struct.readOnly,
            expires_in=expires_in,
            ranges=ranges,
            parameters=parameters,
        )
