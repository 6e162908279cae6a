"""Recorded data from the command line: ``labd data`` and ``labd replay``.

``labd data`` shows where the daemon keeps each stream (its ring, its files) and whether
persisting works -- a full disk shows up here before anyone misses an hour of data.
``labd replay STREAM --since 60 -o out.arrows`` writes a time range of a stream to an
Arrow IPC stream file, batch numbers included, batch by batch as they arrive (a long
range of frames never has to fit in memory); ``pa.ipc.open_stream`` or
:func:`labd.rings.read_stream_file` reads it back.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labd.cli import arguments
from labd.cli.connection import (
    INTERRUPTED,
    REFUSED,
    USAGE,
    OutputUnwritable,
    add_connection_arguments,
    connect_options,
    report_failure,
)
from labd.values import Number, duration

#: A point in time, as seconds since the epoch (what time.time() and the batches carry).
EPOCH = Number(low=0)

if TYPE_CHECKING:
    from rich.console import Console

    from labd.client.replay import DataInfo


def register(subparsers: Any) -> None:
    def add(name: str, help: str) -> Any:
        p = subparsers.add_parser(name, help=help)
        add_connection_arguments(p)
        return p

    p = add("data", "where the daemon keeps each stream's data, and persistence health")
    p.set_defaults(func=data)
    p = add("replay", "write a time range of a stream (ring and files) to an Arrow file")
    p.add_argument("stream", help='e.g. "meter/reading" or "camera/frames"')
    when = p.add_mutually_exclusive_group(required=True)
    when.add_argument(
        "--since",
        type=arguments.number(duration()),
        metavar="SECONDS",
        help="the last SECONDS until now (e.g. 60 or '5 min')",
    )
    when.add_argument(
        "--start", type=arguments.number(EPOCH), metavar="EPOCH", help="from this time (epoch s)"
    )
    p.add_argument(
        "--end",
        type=arguments.number(EPOCH),
        metavar="EPOCH",
        help="until this time (default: now)",
    )
    p.add_argument("-o", "--output", required=True, help="Arrow IPC stream file to write")
    p.set_defaults(func=replay)


def data(args: argparse.Namespace) -> int:
    from rich.console import Console

    from labd.client import connect_blocking

    try:
        with connect_blocking(args.connect, **connect_options(args)) as lab:
            info = lab.data_info()
    except KeyboardInterrupt:
        return INTERRUPTED
    except Exception as e:
        return report_failure("labd data", e)
    show_data_info(info, Console())
    return REFUSED if any(p.error for p in info.persisted) else 0


def show_data_info(info: DataInfo, console: Console) -> None:
    from rich.table import Table

    from labd.rings.sizing import fmt_bytes

    where = "this machine" if info.same_host else f"{info.host} (not this machine)"
    console.print(f"daemon [bold]{info.daemon_id}[/] on {where}; rings under {info.ring_root}")
    if info.data_dir is None:
        console.print(
            "[yellow]not persisting[/] (persist = false in \\[daemon], or labd serve --no-persist)"
        )
    else:
        console.print(
            f"persisting run {info.run_id} under {info.data_dir} (<stream>/{info.run_id}/);"
            f" {fmt_bytes(info.disk_used)} of its quota of {fmt_bytes(info.disk_quota)} used"
        )
    persisted = {p.stream: p for p in info.persisted}
    table = Table()
    for column in ("stream", "kind", "ring", "newest", "on disk", "lost", "disk"):
        table.add_column(column)
    for ring in info.rings:
        p = persisted.get(ring.stream)
        disk = "-" if p is None else "[red]failing[/]" if p.error else "ok"
        table.add_row(
            ring.stream,
            ring.kind,
            f"{ring.capacity} batches ≈ {ring.retention_s:g} s",
            str(ring.write_seq),
            "-" if p is None else f"{p.batches} ({fmt_bytes(p.bytes)})",
            "-" if p is None else str(p.lost),
            disk,
        )
    console.print(table)
    for p in info.persisted:
        if p.error:  # in full, not squeezed into a column: it says what to do
            console.print(f"{p.stream}: {p.error}", style="red", soft_wrap=True, markup=False)


def replay(args: argparse.Namespace) -> int:
    from labd import aio

    end = time.time() if args.end is None else args.end
    start = end - args.since if args.since is not None else args.start
    if start > end:
        print(f"labd replay: the start ({start}) is after the end ({end})", file=sys.stderr)
        return USAGE
    output = Path(args.output)
    try:
        batches, rows = aio.run(_replay_to_file, args, start, end, output)
    except KeyboardInterrupt:
        return INTERRUPTED
    except Exception as e:
        return report_failure("labd replay", e)
    print(f"{batches} batches, {rows} rows of {args.stream} written to {output}")
    return 0


async def _replay_to_file(
    args: argparse.Namespace, start: float, end: float, output: Path
) -> tuple[int, int]:
    import pyarrow as pa

    from labd.client import connect
    from labd.rings.layout import SEQ_METADATA_KEY

    batches = rows = 0
    async with (
        connect(args.connect, **connect_options(args)) as lab,
        lab.replay_batches(args.stream, start, end) as source,
    ):
        try:
            sink = pa.OSFile(str(output), "wb")
        except OSError as e:
            raise OutputUnwritable(output, e) from None
        with sink, pa.ipc.new_stream(sink, source.schema) as out:
            async for seq, batch in source:
                out.write_batch(batch, custom_metadata={SEQ_METADATA_KEY: str(seq)})
                batches += 1
                rows += batch.num_rows
    return batches, rows
