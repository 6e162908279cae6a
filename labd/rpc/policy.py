"""Restricted and shared capabilities: what a derived capability may still do.

Holding a capability is the permission. A holder narrows it by deriving a new one with a
:class:`Policy` — read-only, value ranges, an expiry — and the lab's owner may hand that
out as a sharing token. Policies form a chain (a restriction of a share points at the
share), so revoking one link cuts everything derived from it: every call through a derived
capability checks its whole chain and fails with :class:`~capabilities.PermissionDenied`.

The check runs twice: once when the call arrives (a refused call never queues), and again
as the call's :data:`~labd.supervisor.Guard`, in the instrument's owner task, atomically
with the call and against the set-points it would leave (:mod:`labd.setpoints`). Only the
second one is what a range rests on (docs/security.md).
"""

from __future__ import annotations

import math
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from capabilities import InvalidRequest, OutOfRange, Parameter, PermissionDenied
from labd.contract.restriction import RANGED_QUANTITIES, ParameterLimit, Restriction
from labd.setpoints import PARAMETER_PREFIX

if TYPE_CHECKING:
    from labd.supervisor import Guard

SHARES_PER_INSTRUMENT = 256
"""Live sharing tokens one instrument may have; making more is refused until some are
revoked or expire."""


class Policy:
    """The rights of one derived capability; the root policy (``Policy()``) allows all."""

    def __init__(
        self,
        parent: Policy | None = None,
        *,
        read_only: bool = False,
        expires_at: float | None = None,
        ranges: dict[str, tuple[float, float]] | None = None,
        parameters: dict[str, ParameterLimit] | None = None,
    ) -> None:
        self.parent = parent
        self.read_only = read_only
        self.expires_at = expires_at
        self.ranges = dict(ranges or {})
        self.parameters = dict(parameters or {})
        self.revoked = False
        self.shared = False
        """Handed out as a sharing token (set by :meth:`ShareRegistry.share`)."""

    def derive(self, restriction: Restriction) -> Policy:
        """A child policy: never more than this one allows (ranges intersect, earliest expiry)."""
        for quantity, (low, high) in restriction.ranges.items():
            if quantity not in RANGED_QUANTITIES:
                raise InvalidRequest(
                    f"cannot restrict {quantity!r}; known: {', '.join(RANGED_QUANTITIES)}"
                )
            if not low <= high:
                raise OutOfRange(f"{quantity} range [{low:g}, {high:g}] is empty (low > high)")
        for name, limit in restriction.parameters.items():
            if not name:
                raise InvalidRequest("a parameter limit names no parameter")
            if limit.range is not None and not limit.range[0] <= limit.range[1]:
                low, high = limit.range
                raise OutOfRange(f"parameter {name} range [{low:g}, {high:g}] is empty")
        expires_at = None
        if restriction.expires_in is not None:
            expires_in = restriction.expires_in
            if not 0 < expires_in < math.inf:
                raise InvalidRequest(
                    f"expiry {expires_in!r} s: a share expires after a positive, finite number"
                    " of seconds, or never (expiresIn = 0 on the wire, no --expires on the CLI)"
                )
            expires_at = time.time() + expires_in
        return Policy(
            self,
            read_only=restriction.read_only,
            expires_at=expires_at,
            ranges=restriction.ranges,
            parameters=restriction.parameters,
        )

    def chain(self) -> list[Policy]:
        links: list[Policy] = []
        policy: Policy | None = self
        while policy is not None:
            links.append(policy)
            policy = policy.parent
        return links

    @property
    def is_restricted(self) -> bool:
        return self.parent is not None

    @property
    def via_share(self) -> bool:
        """Reached through a sharing token (only the lab's owner may share)."""
        return any(p.shared for p in self.chain())

    @property
    def effective_read_only(self) -> bool:
        return any(p.read_only for p in self.chain())

    @property
    def effective_expiry(self) -> float | None:
        expiries = [p.expires_at for p in self.chain() if p.expires_at is not None]
        return min(expiries) if expiries else None

    def effective_range(self, quantity: str) -> tuple[float, float] | None:
        bounds = [p.ranges[quantity] for p in self.chain() if quantity in p.ranges]
        if not bounds:
            return None
        return max(b[0] for b in bounds), min(b[1] for b in bounds)

    def parameter_limits(self, name: str) -> list[ParameterLimit]:
        """The limits on parameter ``name`` along the chain (each must hold)."""
        return [p.parameters[name] for p in self.chain() if name in p.parameters]

    def narrow(self, parameter: Parameter) -> Parameter:
        """``parameter`` as this holder sees it: the range and choices it may set, and
        not writable where it may not set it."""
        for limit in self.parameter_limits(parameter.name):
            low, high = limit.range if limit.range is not None else (None, None)
            parameter = parameter.narrowed(
                low=low,
                high=high,
                choices=limit.choices or None,
                writable=not limit.read_only,
            )
        if self.effective_read_only:
            parameter = parameter.narrowed(writable=False)
        return parameter

    def check_parameter(self, name: str, value: object) -> None:
        """Refuse setting parameter ``name`` to ``value`` beyond what this holder may."""
        for limit in self.parameter_limits(name):
            if limit.read_only:
                raise PermissionDenied(
                    f"set {name}: this restricted capability may read {name}, not set it"
                )
            number = isinstance(value, int | float) and not isinstance(value, bool)
            if limit.range is not None and number:
                low, high = limit.range
                if not low <= value <= high:  # type: ignore[operator]
                    raise OutOfRange(
                        f"set {name}: {value:g} is outside [{low:g}, {high:g}], the range this"
                        " restricted capability allows"
                    )
            if limit.choices and value not in limit.choices:
                raise OutOfRange(
                    f"set {name}: {value!r} is not one this restricted capability may set"
                    f" (it may: {', '.join(limit.choices)})"
                )

    def check_alive(self) -> None:
        """Raise PermissionDenied if this capability (or one it derives from) was revoked or expired."""
        now = time.time()
        for policy in self.chain():
            if policy.revoked:
                raise PermissionDenied("this capability was revoked by its owner")
            if policy.expires_at is not None and now >= policy.expires_at:
                raise PermissionDenied("this capability has expired; ask its owner for a new one")

    def check_call(self, method: str, *, mutates: bool) -> None:
        self.check_alive()
        if mutates and self.effective_read_only:
            raise PermissionDenied(f"{method}: this is a read-only capability")

    def check_value(self, method: str, quantity: str, value: float) -> None:
        """Refuse a call that would leave ``quantity`` at ``value``, outside the range."""
        bounds = self.effective_range(quantity)
        if bounds is None:
            return
        low, high = bounds
        if not low <= value <= high:
            raise OutOfRange(
                f"{method}: would leave the {quantity} at {value:g}, outside [{low:g}, {high:g}],"
                " the range this restricted capability allows"
            )

    def guard(self, method: str, *, mutates: bool) -> Guard:
        """The check of one call as the owner task runs it (see the module docstring)."""

        def check(leaves: Mapping[str, object]) -> None:
            self.check_call(method, mutates=mutates)
            for quantity, value in leaves.items():
                if quantity.startswith(PARAMETER_PREFIX):
                    self.check_parameter(quantity.removeprefix(PARAMETER_PREFIX), value)
                elif isinstance(value, int | float):
                    self.check_value(method, quantity, float(value))

        return check


@dataclass
class Share:
    token: str
    instrument: str
    policy: Policy


class ShareRegistry:
    """Sharing tokens of one daemon (in memory: they end with the daemon).

    A share that expired, or whose parent capability was revoked, can never be redeemed
    again; it is forgotten when the next share is made, so a daemon that hands out
    expiring tokens for weeks keeps only the live ones.
    """

    def __init__(self) -> None:
        self._shares: dict[str, Share] = {}

    def share(self, instrument: str, policy: Policy) -> Share:
        """Register ``policy`` under a fresh token. ``policy`` must be its own link (revocable).

        Refused for a capability that itself came from a sharing token (only the lab's
        owner shares), and beyond :data:`SHARES_PER_INSTRUMENT` live tokens.
        """
        if policy.via_share:
            raise PermissionDenied(
                "a shared capability cannot be shared again; ask the lab's owner for"
                " another sharing token"
            )
        self._forget_dead()
        live = sum(1 for share in self._shares.values() if share.instrument == instrument)
        if live >= SHARES_PER_INSTRUMENT:
            raise PermissionDenied(
                f"{instrument} already has {live} live sharing tokens, the most the daemon"
                " keeps per instrument; revoke some first (labd share --list, labd share"
                " --revoke TOKEN)"
            )
        token = "share-" + secrets.token_urlsafe(24)
        share = Share(token, instrument, policy)
        policy.shared = True
        self._shares[token] = share
        return share

    def redeem(self, token: str) -> Share:
        share = self._shares.get(token)
        if share is None:
            raise PermissionDenied(
                "unknown, revoked or expired sharing token; ask its owner for a new one"
            )
        share.policy.check_alive()
        return share

    def revoke(self, token: str) -> None:
        share = self._shares.pop(token, None)
        if share is None:
            raise PermissionDenied("unknown or already revoked sharing token")
        share.policy.revoked = True

    def list(self) -> list[Share]:
        return list(self._shares.values())

    def _forget_dead(self) -> None:
        for token, share in list(self._shares.items()):
            try:
                share.policy.check_alive()
            except PermissionDenied:
                del self._shares[token]
