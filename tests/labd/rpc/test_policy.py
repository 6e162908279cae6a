from __future__ import annotations

import time

import pytest

from capabilities import PermissionDenied
from labd.contract.restriction import Restriction
from labd.rpc.policy import Policy, ShareRegistry


def test_dead_shares_are_forgotten_when_the_next_is_made() -> None:
    registry = ShareRegistry()
    root = Policy()
    expired = registry.share("meter", Policy(root, expires_at=time.time() - 1))
    parent = root.derive(Restriction())
    orphan = registry.share("meter", parent.derive(Restriction(read_only=True)))
    parent.revoked = True  # revoking a link cuts everything derived from it
    live = registry.share("meter", root.derive(Restriction(expires_in=60)))
    assert [s.token for s in registry.list()] == [live.token]
    for dead in (expired, orphan):
        with pytest.raises(PermissionDenied):
            registry.redeem(dead.token)
