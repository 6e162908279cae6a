"""One client connection as the daemon's servers see it, and what all connections share.

Its own module so that every server (:mod:`labd.rpc.lab`, :mod:`labd.rpc.scripts`,
:mod:`labd.rpc.replay`) can take a session without importing the others.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import trio

from labd.rpc.bulk import BulkListener
from labd.rpc.policy import ShareRegistry
from labd.rpc.subscriptions import IpcCache
from labd.streams import StreamHub
from labd.supervisor import Supervisor

if TYPE_CHECKING:
    from labd.parameters import ParameterLog
    from labd.rpc.replay import RecordedData
    from labd.scripting import ScriptEngine


@dataclass
class Services:
    """What every connection of one daemon shares."""

    supervisor: Supervisor
    streams: StreamHub
    lab_token: str
    token_hint: str
    """Where a client finds the lab token (told to clients that present a wrong one)."""
    shares: ShareRegistry = field(default_factory=ShareRegistry)
    ipc_cache: IpcCache = field(default_factory=IpcCache)
    scripts: ScriptEngine | None = None
    """The daemon's script engine; None for a server without one (benchmarks)."""
    data: RecordedData | None = None
    """The daemon's rings and persister (replay, dataInfo); None for a server without them."""
    parameters: ParameterLog | None = None
    """Where parameter sets are recorded and watched; None for a server without streams."""


@dataclass
class Session:
    """One client connection: its tasks (calls, subscriptions) live in ``nursery``."""

    services: Services
    nursery: trio.Nursery
    local: bool = False
    """Came in on the unix socket: same machine, same user (shared-memory lanes allowed)."""
    bulk: BulkListener | None = None
    """The bulk endpoint of the TCP listener it came in on (:mod:`labd.rpc.bulk`)."""
