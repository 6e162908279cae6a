"""Client subcommands: ``labd ls|status|move|read|snap|share|watch`` against a running daemon."""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from labd.cli import arguments
from labd.cli.connection import (
    INTERRUPTED,
    REFUSED,
    OutputUnwritable,
    add_connection_arguments,
    connect_options,
    report_failure,
)
from labd.values import DAY_S, Number, duration

if TYPE_CHECKING:
    from labd.client import BlockingLab, ParameterLimit

#: A position or range bound: any finite number, in the instrument's own unit.
COORDINATE = Number()
#: The longest a sharing token may live; leaving out --expires means it never expires.
SHARE_LIFETIME = duration(
    high=366 * DAY_S, why="leave --expires out for a share that never expires"
)

STATE_STYLE = {"ready": "green", "busy": "cyan", "faulted": "bold red", "restarting": "yellow"}


def register(subparsers: Any) -> None:
    def add(name: str, help: str, func: Callable[[BlockingLab, argparse.Namespace], int]) -> Any:
        p = subparsers.add_parser(name, help=help)
        with_lab(p, func)
        return p

    add("ls", "list instruments, their capabilities and state", ls)
    add("status", "instrument states and streams", status)
    p = add("move", "move a Movable to a position and wait until settled", move)
    p.add_argument("name")
    p.add_argument("position", type=arguments.number(COORDINATE))
    p = add("read", "read a Readable once", read)
    p.add_argument("name")
    p = add("snap", "snap one frame into an Arrow IPC file", snap)
    p.add_argument("name")
    p.add_argument("-o", "--output", required=True, help="file to write (.arrow)")
    p = add("share", "make a sharing token for a collaborator, or revoke one", share)
    p.add_argument("name", nargs="?", help="instrument to share")
    p.add_argument("--read-only", action="store_true", help="only reading/query methods")
    p.add_argument(
        "--expires",
        type=arguments.number(SHARE_LIFETIME),
        metavar="SECONDS",
        help="token lifetime, e.g. 3600 or '8 h' (default: until revoked)",
    )
    p.add_argument(
        "--range",
        nargs=2,
        type=arguments.number(COORDINATE),
        action=arguments.Interval,
        metavar=("LOW", "HIGH"),
        help="position range",
    )
    for quantity, unit in (("voltage", "V"), ("current", "A")):
        p.add_argument(
            f"--{quantity}",
            nargs=2,
            type=arguments.number(COORDINATE),
            action=arguments.Interval,
            metavar=("LOW", "HIGH"),
            help=f"{quantity} set-point range of a VoltageSource, in {unit}",
        )
    p.add_argument(
        "--param-range",
        nargs=3,
        action=arguments.ParameterRange,
        default=[],
        metavar=("PARAM", "LOW", "HIGH"),
        help="the values a numeric parameter may be set to, in its unit (repeatable)",
    )
    p.add_argument(
        "--param-choices",
        nargs=2,
        action="append",
        default=[],
        metavar=("PARAM", "A,B,..."),
        help="the choices a choice parameter may be set to (repeatable)",
    )
    p.add_argument(
        "--param-read-only",
        action="append",
        default=[],
        metavar="PARAM",
        help="a parameter the holder may read but not set (repeatable)",
    )
    p.add_argument("--revoke", metavar="TOKEN", help="revoke this sharing token")
    p.add_argument("--list", action="store_true", help="list active sharing tokens")
    p = add("watch", "live readings of an instrument's streams in the terminal", watch)
    p.add_argument("name")
    p.add_argument(
        "--seconds",
        type=arguments.number(duration(zero=True)),
        default=0,
        help="stop after this long (0: Ctrl-C)",
    )


def with_lab(
    parser: argparse.ArgumentParser, func: Callable[[BlockingLab, argparse.Namespace], int]
) -> None:
    """Make ``parser``'s command connect to the daemon and run ``func`` with the lab."""
    add_connection_arguments(parser)
    parser.set_defaults(func=lambda args: _with_lab(args, func))


def _with_lab(
    args: argparse.Namespace, func: Callable[[BlockingLab, argparse.Namespace], int]
) -> int:
    # Imported here, not at the top: `labd --help` and the other subcommands start faster
    # without the client's pycapnp and pyarrow.
    from labd.client import connect_blocking

    try:
        with connect_blocking(args.connect, **connect_options(args)) as lab:
            return func(lab, args)
    except KeyboardInterrupt:
        return INTERRUPTED
    except Exception as e:
        return report_failure("labd", e)


def ls(lab: BlockingLab, args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    table = Table()
    for column in ("instrument", "driver", "state", "capabilities"):
        table.add_column(column)
    for info in lab.instruments():
        state = f"[{STATE_STYLE.get(info.state, '')}]{info.state}[/]"
        table.add_row(info.name, info.driver, state, ", ".join(info.capabilities))
    Console().print(table)
    return 0


def status(lab: BlockingLab, args: argparse.Namespace) -> int:
    from rich.console import Console

    console = Console()
    for info in lab.instruments():
        why = f" — {info.reason}" if info.reason and info.state != "ready" else ""
        if info.last_fault_at is not None and info.state == "ready":
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info.last_fault_at))
            why = f" (last fault {when}: {info.last_fault})"
        style = STATE_STYLE.get(info.state, "")
        console.print(
            f"{info.name:12} [{style}]{info.state}[/] restarts={info.restarts}{why}",
            markup=True,
            highlight=False,
        )
    for stream in lab.streams():
        console.print(f"  stream {stream.name:24} {stream.kind:9} seq={stream.last_seq}")
    return 0


def move(lab: BlockingLab, args: argparse.Namespace) -> int:
    from capabilities import Movable

    stage = lab.instrument(args.name).get(Movable)
    stage.move_abs(args.position)
    print(stage.wait_settled(60.0))
    return 0


def read(lab: BlockingLab, args: argparse.Namespace) -> int:
    from capabilities import Readable

    print(lab.instrument(args.name).get(Readable).read())
    return 0


def snap(lab: BlockingLab, args: argparse.Namespace) -> int:
    from capabilities import FrameProducer
    from labd import records

    frame = lab.instrument(args.name).get(FrameProducer).snap()
    try:
        with open(args.output, "wb") as out:
            out.write(records.batch_to_ipc(records.frame_to_batch(frame)))
    except OSError as e:
        raise OutputUnwritable(args.output, e) from None
    print(f"{frame.format.height}×{frame.format.width} {frame.format.dtype} → {args.output}")
    return 0


def share(lab: BlockingLab, args: argparse.Namespace) -> int:
    from labd.client import Restriction

    if args.revoke:
        lab.revoke(args.revoke)
        print("revoked")
        return 0
    if args.list or not args.name:
        for s in lab.shares():
            expiry = time.ctime(s.expires_at) if s.expires_at else "never"
            print(f"{s.token}  {s.instrument}  read_only={s.read_only}  expires={expiry}")
        return 0
    bounds = {"position": args.range, "voltage": args.voltage, "current": args.current}
    ranges = {q: (b[0], b[1]) for q, b in bounds.items() if b}
    restriction = Restriction(
        read_only=args.read_only,
        expires_in=args.expires,
        ranges=ranges,
        parameters=_parameter_limits(args),
    )
    token, _ = lab.instrument(args.name).share(restriction)
    print(token)
    print(
        f"# a collaborator redeems it with labd.client.redeem_blocking({token!r}, ADDRESS);"
        f" revoke with: labd share --revoke {token}",
        file=sys.stderr,
    )
    return 0


def _parameter_limits(args: argparse.Namespace) -> dict[str, ParameterLimit]:
    """``--param-range/--param-choices/--param-read-only`` as limits by parameter name."""
    from labd.client import ParameterLimit

    limits: dict[str, ParameterLimit] = {}

    def update(name: str, **change: Any) -> None:
        limits[name] = dataclasses.replace(limits.get(name, ParameterLimit()), **change)

    for name, bounds in args.param_range:
        update(name, range=bounds)
    for name, choices in args.param_choices:
        update(name, choices=tuple(c.strip() for c in choices.split(",") if c.strip()))
    for name in args.param_read_only:
        update(name, read_only=True)
    return limits


def watch(lab: BlockingLab, args: argparse.Namespace) -> int:
    from rich.live import Live
    from rich.table import Table

    info = lab.instrument(args.name).info()
    kinds = {s.name: s.kind for s in lab.streams()}
    readings = [s for s in info.streams if kinds.get(s) == "readings"]
    if not readings:
        print(f"labd: {args.name} publishes no readings (streams: {info.streams})", file=sys.stderr)
        return REFUSED
    stream = readings[0]
    end = time.monotonic() + args.seconds if args.seconds else float("inf")
    shown: deque[tuple[int, str]] = deque(maxlen=15)
    with lab.subscribe(stream, max_rate=10) as sub, Live(refresh_per_second=10) as live:
        last = 0
        while time.monotonic() < end:
            try:
                message = sub.next(timeout=max(0.1, min(1.0, end - time.monotonic())))
            except TimeoutError:
                continue
            gap = f" (skipped {message.seq - last - 1})" if last and message.seq > last + 1 else ""
            last = message.seq
            for reading in message.readings():
                shown.append((message.seq, f"{reading}{gap}"))
            table = Table(title=f"{stream}")
            table.add_column("seq", justify="right")
            table.add_column("reading")
            for seq, text in shown:
                table.add_row(str(seq), text)
            live.update(table)
    return 0
