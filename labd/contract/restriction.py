"""What a derived capability may still do, as a client asks for it and the daemon gets it.

The daemon's :class:`labd.rpc.policy.Policy` enforces it (docs/security.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from labd.contract import schema

RANGED_QUANTITIES = ("position", "voltage", "current")
"""Set-points a restriction can bound: the fields of ``Restriction`` in ``labd.capnp``."""


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
        return message
