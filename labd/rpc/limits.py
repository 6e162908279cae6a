"""What the daemon admits: connections, their time and bytes before authentication, their
message sizes after it, and how often a peer may present a wrong token.

Every limit fails closed and harms only the connection (or peer) that hit it: the daemon
refuses, closes or slows that one and keeps serving everyone else. docs/security.md lists
them with what a client sees when it hits each.
"""

from __future__ import annotations

import logging
import resource
import time
from dataclasses import dataclass

log = logging.getLogger("labd.rpc")

KIB = 1024
MIB = 1024 * KIB


@dataclass(frozen=True)
class Limits:
    """The figures of :func:`labd.rpc.server.serve_rpc`; the defaults suit a lab machine."""

    max_connections: int = 512
    """Open connections per listener (unix socket, each TCP port, each bulk port); one
    more is closed at once with a one-line reason."""
    max_unauthenticated: int = 64
    """Connections per listener that have not unlocked or redeemed yet; while that many
    wait, the listener accepts no more (new clients wait in the listen backlog)."""
    auth_timeout_s: float = 10.0
    """A connection that has not unlocked or redeemed (TLS handshake included) after
    this long is closed."""
    pre_auth_message_bytes: int = 64 * KIB
    """Largest Cap'n Proto message before unlock/redeem (the header says the size; a
    bigger announcement closes the connection before its body is read)."""
    pre_auth_bytes: int = 256 * KIB
    """All bytes a connection may send before unlock/redeem."""
    message_bytes: int = 256 * MIB
    """Largest Cap'n Proto message after unlock/redeem (script uploads are the big ones)."""
    wrong_tokens_per_connection: int = 5
    """Wrong lab or sharing tokens on one connection; the next attempt closes it."""
    wrong_tokens_per_peer: int = 10
    """Wrong tokens from one peer (TCP: its IP address; unix socket: its uid) within
    :data:`PEER_MEMORY_S` that cost only :data:`WRONG_TOKEN_DELAY_S` each; every further
    one doubles the delay, up to :data:`MAX_WRONG_TOKEN_DELAY_S`."""

    def __post_init__(self) -> None:
        for name in ("max_connections", "max_unauthenticated", "wrong_tokens_per_connection"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, not {getattr(self, name)}")
        if not self.auth_timeout_s > 0:
            raise ValueError(f"auth_timeout_s must be positive, not {self.auth_timeout_s}")


DEFAULT_LIMITS = Limits()

WRONG_TOKEN_DELAY_S = 0.2
"""A wrong lab or sharing token costs this much time, so guessing is hopeless."""
MAX_WRONG_TOKEN_DELAY_S = 10.0
PEER_MEMORY_S = 60.0
"""A peer's wrong tokens are forgotten this long after its last one."""
ACCEPT_BACKOFF_S = 0.1
"""After ``accept`` fails for want of file descriptors, wait this long before the next."""


def raise_fd_limit() -> int:
    """Raise the soft ``RLIMIT_NOFILE`` to the hard limit and return the new soft limit.

    The soft limit is often 1024 while the hard one is far higher; every client costs a
    descriptor, so the daemon takes what it is allowed instead of failing at 1024.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:  # a container may forbid it: keep the soft one
            log.warning("could not raise the open-file limit from %d: %s", soft, exc)
    log.info("open-file limit: %d", soft)
    return soft


class ThrottledLog:
    """Log one kind of event at most once per ``interval_s``, counting the ones left out,
    so that a flood of refusals cannot flood the log (or the disk under it)."""

    def __init__(self, level: int = logging.WARNING, interval_s: float = 5.0) -> None:
        self._level = level
        self._interval_s = interval_s
        self._next = 0.0
        self._dropped = 0

    def __call__(self, message: str, *args: object) -> None:
        now = time.monotonic()
        if now < self._next:
            self._dropped += 1
            return
        if self._dropped:
            message += " (and %d more like it since the last such line)"
            args = (*args, self._dropped)
        self._dropped = 0
        self._next = now + self._interval_s
        log.log(self._level, message, *args)
