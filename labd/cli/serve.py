"""``labd serve``: run the daemon until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import logging
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labd.cli import arguments
from labd.cli.connection import REFUSED, USAGE
from labd.contract.address import TlsConfig, default_socket_path
from labd.rpc.limits import DEFAULT_LIMITS
from labd.values import BadValue, Number, creatable_directory

if TYPE_CHECKING:
    from labd.config import LabConfig
    from labd.daemon import Daemon

log = logging.getLogger("labd")


#: What a daemon that cannot start raises: a port in use, an unwritable socket directory,
#: a certificate that does not load, a daemon id taken by a running daemon. Anything else
#: is a bug and keeps its traceback.
STARTUP_PROBLEMS: tuple[type[Exception], ...] = (OSError, ValueError, RuntimeError)


class StartupFailed(Exception):
    """The daemon could not start; the message says why, one problem per line."""


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("serve", help="run the daemon (default: the simulated lab)")
    p.add_argument("--config", "-c", help="lab config TOML (default: the built-in simulated lab)")
    persist = p.add_mutually_exclusive_group()
    persist.add_argument(
        "--data-dir",
        metavar="PATH",
        help="persist streams here (default: [daemon] data_dir, else $XDG_DATA_HOME/labd)",
    )
    persist.add_argument(
        "--no-persist", action="store_true", help="write nothing to disk (the rings only)"
    )
    add_rpc_arguments(p)
    p.add_argument(
        "--max-connections",
        type=arguments.whole(Number(low=1, high=1_000_000, whole=True)),
        default=DEFAULT_LIMITS.max_connections,
        metavar="N",
        help="open connections per listener; one more is refused at once"
        f" (default: {DEFAULT_LIMITS.max_connections})",
    )
    p.add_argument(
        "--insecure",
        action="store_true",
        help="allow --listen on a non-loopback address without TLS (the lab token then"
        " crosses the network in clear text)",
    )
    p.set_defaults(func=serve)


def read_config(path: str | None) -> LabConfig:
    from labd.config import default_config, load_config

    return default_config() if path is None else load_config(path)


def serve(args: argparse.Namespace) -> int:
    from labd import aio
    from labd.daemon import Daemon
    from labd.errors import ConfigError

    try:
        config = read_config(args.config)
    except ConfigError as e:  # every problem of the file, one line each
        for line in str(e).splitlines():
            print(f"labd: {line}", file=sys.stderr)
        return USAGE
    try:
        config = persistence_options(config, args)
    except BadValue as e:
        print(f"labd serve: {e}", file=sys.stderr)
        return USAGE
    for option in ("tls_cert", "tls_key"):
        path = getattr(args, option)
        if path is not None and not os.access(path, os.R_OK):
            flag = "--" + option.replace("_", "-")
            print(f"labd serve: {flag} {path}: no such readable file", file=sys.stderr)
            return USAGE
    rpc = rpc_options(args)
    try:
        rpc.update(limit_options(args, tls=rpc["tls"] is not None))
    except ValueError as e:
        print(f"labd serve: {e}", file=sys.stderr)
        return USAGE
    daemon = Daemon(config, daemon_id=daemon_id_for(rpc["socket_path"]))
    try:
        aio.run(run_until_signal, daemon, rpc, handle_signals=False)
    except StartupFailed as e:
        log.debug("startup failed", exc_info=e.__cause__)
        for line in str(e).splitlines():
            print(f"labd serve: {line}", file=sys.stderr)
        return REFUSED
    return 0


def persistence_options(config: LabConfig, args: argparse.Namespace) -> LabConfig:
    """``config`` with ``--data-dir`` / ``--no-persist`` applied (they win over the file);
    raises BadValue (one line, what to do) when its data directory cannot be written."""
    from labd.config import default_data_dir

    if args.no_persist:
        return dataclasses.replace(config, data_dir=None)
    if args.data_dir is not None:
        path = Path(args.data_dir).expanduser().absolute()
        try:
            return dataclasses.replace(config, data_dir=creatable_directory(path))
        except BadValue as e:
            raise BadValue(f"--data-dir {args.data_dir}: {e}") from None
    if config.data_dir is not None and config.data_dir == default_data_dir():
        try:
            creatable_directory(config.data_dir)
        except BadValue as e:
            raise BadValue(
                f"cannot persist to the default data directory: {e}; give --data-dir PATH"
                " (or [daemon] data_dir), or --no-persist (or persist = false)"
            ) from None
    return config


def limit_options(args: argparse.Namespace, *, tls: bool) -> dict[str, Any]:
    """``limits`` and ``insecure`` for :func:`labd.rpc.server.serve_rpc`; raises ValueError
    (one line) for a bad figure or a ``--listen`` that would send the token in clear text."""
    from labd.rpc.server import InsecureListen, check_listen_address

    if args.max_connections < 1:
        raise ValueError(f"--max-connections must be at least 1, not {args.max_connections}")
    for text in args.listen:
        try:
            check_listen_address(text, tls=tls, insecure=args.insecure)
        except InsecureListen:
            raise
        except ValueError as e:  # not a HOST:PORT at all
            raise ValueError(f"--listen {text}: {e}") from None
    limits = dataclasses.replace(DEFAULT_LIMITS, max_connections=args.max_connections)
    return {"limits": limits, "insecure": args.insecure}


def daemon_id_for(socket_path: str | None) -> str:
    """The id naming this daemon's rings in /dev/shm: "default" for the default socket, so
    ``labd.rings.attach(stream)`` just works; a stable id derived from any other socket, so
    several daemons on one machine never collide."""
    if socket_path is None:
        return "default"
    digest = hashlib.sha1(os.path.abspath(socket_path).encode()).hexdigest()[:10]
    return f"sock-{digest}"


async def run_until_signal(daemon: Daemon, rpc: dict[str, Any]) -> None:
    """Run ``daemon`` until SIGINT or SIGTERM, then unwind so every driver is closed.

    Raises :class:`StartupFailed` when the daemon or its RPC server cannot start for a
    reason the person starting it can fix (see :data:`STARTUP_PROBLEMS`).
    """
    import trio

    from labd.errors import LabdError
    from labd.rpc.server import serve_rpc

    ready = False
    try:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with trio.open_nursery() as nursery:
                await nursery.start(daemon.run)
                await nursery.start(
                    lambda task_status: serve_rpc(daemon, **rpc, task_status=task_status)
                )
                ready = True
                print("labd: ready", file=sys.stderr, flush=True)
                async for signum in signals:
                    print(
                        f"labd: {signal.Signals(signum).name}: shutting down",
                        file=sys.stderr,
                        flush=True,
                    )
                    nursery.cancel_scope.cancel()
                    break
    except Exception as e:
        problems = list(_leaves(e))
        if ready or not all(isinstance(p, (*STARTUP_PROBLEMS, LabdError)) for p in problems):
            raise
        raise StartupFailed("\n".join(map(_describe, problems))) from e
    for handle in daemon.supervisor.handles():
        print(f"labd: {handle.name}: {handle.state.value}", file=sys.stderr, flush=True)


def _describe(problem: BaseException) -> str:
    import ssl

    if isinstance(problem, ssl.SSLError):
        return (
            f"the TLS certificate does not load ({problem}): --tls-cert takes a PEM"
            " certificate chain, --tls-key its PEM private key"
        )
    if isinstance(problem, OSError) and problem.filename is not None:
        return f"{problem.filename}: {problem.strerror}"
    return str(problem)


def _leaves(error: BaseException) -> Iterator[BaseException]:
    """The exceptions in ``error``, with exception groups (nurseries) flattened."""
    if isinstance(error, BaseExceptionGroup):
        for inner in error.exceptions:
            yield from _leaves(inner)
    else:
        yield error


def add_rpc_arguments(parser: Any) -> None:
    """The ``labd serve`` options of the RPC server (here, not in ``labd.rpc.server``:
    ``labd --help`` must not pay for importing pycapnp)."""
    parser.add_argument(
        "--socket",
        help=f"unix socket to listen on (default: {default_socket_path()}); the token file"
        " is written next to it",
    )
    parser.add_argument(
        "--listen",
        action="append",
        default=[],
        metavar="HOST:PORT",
        help="also listen on TCP (repeatable); use with --tls-cert/--tls-key beyond localhost",
    )
    parser.add_argument("--tls-cert", help="PEM certificate chain: TCP listeners speak TLS")
    parser.add_argument("--tls-key", help="PEM private key of --tls-cert")


def rpc_options(args: Any) -> dict[str, Any]:
    """Keyword arguments of :func:`labd.rpc.server.serve_rpc` from parsed ``labd serve`` arguments."""
    if bool(args.tls_cert) != bool(args.tls_key):
        raise SystemExit("labd serve: --tls-cert and --tls-key go together; give both")
    tls = TlsConfig(Path(args.tls_cert), Path(args.tls_key)) if args.tls_cert else None
    return {"socket_path": args.socket, "listen": list(args.listen), "tls": tls}
