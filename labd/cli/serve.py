"""``labd serve``: run the daemon until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import hashlib
import os
import signal
import sys
from typing import Any

import trio

from labd import aio
from labd.config import LabConfig, default_config, load_config
from labd.daemon import Daemon
from labd.errors import ConfigError
from labd.rpc.server import add_rpc_arguments, rpc_options, serve_rpc


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("serve", help="run the daemon (default: the simulated lab)")
    p.add_argument("--config", "-c", help="lab config TOML (default: the built-in simulated lab)")
    add_rpc_arguments(p)
    p.set_defaults(func=serve)


def read_config(path: str | None) -> LabConfig:
    return default_config() if path is None else load_config(path)


def serve(args: argparse.Namespace) -> int:
    try:
        config = read_config(args.config)
    except ConfigError as e:
        print(f"labd: {e}", file=sys.stderr)
        return 2
    rpc = rpc_options(args)
    daemon = Daemon(config, daemon_id=daemon_id_for(rpc["socket_path"]))
    aio.run(run_until_signal, daemon, rpc, handle_signals=False)
    return 0


def daemon_id_for(socket_path: str | None) -> str:
    """The id naming this daemon's rings in /dev/shm: "default" for the default socket, so
    ``labd.rings.attach(stream)`` just works; a stable id derived from any other socket, so
    several daemons on one machine never collide."""
    if socket_path is None:
        return "default"
    digest = hashlib.sha1(os.path.abspath(socket_path).encode()).hexdigest()[:10]
    return f"sock-{digest}"


async def run_until_signal(daemon: Daemon, rpc: dict[str, Any]) -> None:
    """Run ``daemon`` until SIGINT or SIGTERM, then unwind so every driver is closed."""
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            await nursery.start(daemon.run)
            await nursery.start(
                lambda task_status: serve_rpc(daemon, **rpc, task_status=task_status)
            )
            print("labd: ready", file=sys.stderr, flush=True)
            async for signum in signals:
                print(
                    f"labd: {signal.Signals(signum).name}: shutting down",
                    file=sys.stderr,
                    flush=True,
                )
                nursery.cancel_scope.cancel()
                break
    for handle in daemon.supervisor.handles():
        print(f"labd: {handle.name}: {handle.state.value}", file=sys.stderr, flush=True)
