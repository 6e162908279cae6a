"""Limits both ends of a connection must set alike (the daemon's own are in :mod:`labd.rpc.limits`)."""

from __future__ import annotations

TRAVERSAL_LIMIT_WORDS = 2**30 // 8 * 2
"""2 GiB per message: big frames must pass (pycapnp's default stops at 64 MiB)."""
