"""Runs from the command line: ``labd runs``, ``labd runs RUN_ID`` and ``labd export``.

``labd runs`` lists every run the daemon recorded (docs/runs.md); ``labd runs RUN_ID``
prints one run's whole record as JSON; ``labd export RUN_ID --format parquet|hdf5|csv -o
PATH`` writes all data of a run through the daemon (:mod:`labd.client.export`), so it
works from any machine that can reach it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labd.cli.connection import (
    INTERRUPTED,
    USAGE,
    add_connection_arguments,
    connect_options,
    report_failure,
)

if TYPE_CHECKING:
    from labd.client.export import Exported
    from labd.contract.runs import RunSummary

FORMATS = ("parquet", "hdf5", "csv")
"""As :data:`labd.client.export.FORMATS` (not imported here: it loads pyarrow, and every
``labd`` start reads this module)."""


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("runs", help="the recorded runs, or one run's whole record")
    p.add_argument("run_id", nargs="?", metavar="RUN_ID", help="print this run's record (JSON)")
    add_connection_arguments(p)
    p.set_defaults(func=runs)
    p = subparsers.add_parser("export", help="write all data of a run to Parquet, HDF5 or CSV")
    p.add_argument("run_id", metavar="RUN_ID", help="as `labd runs` lists it")
    p.add_argument("--format", "-f", required=True, choices=FORMATS)
    p.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="PATH",
        help="parquet, csv: a directory (one file per stream); hdf5: a file",
    )
    add_connection_arguments(p)
    p.set_defaults(func=export)


def runs(args: argparse.Namespace) -> int:
    from labd.client import connect_blocking

    try:
        with connect_blocking(args.connect, **connect_options(args)) as lab:
            if args.run_id is not None:
                record = lab.get_run(args.run_id)
                print(json.dumps(json.loads(record.to_json()), indent=2))
                return 0
            summaries = lab.runs()
    except KeyboardInterrupt:
        return INTERRUPTED
    except Exception as e:
        return report_failure("labd runs", e)
    show_runs(summaries)
    return 0


def show_runs(summaries: list[RunSummary]) -> None:
    from rich.console import Console
    from rich.table import Table

    if not summaries:
        print("no runs recorded yet (a script run, or `with lab.run(...)` in Python, makes one)")
        return
    table = Table()
    table.add_column("id", no_wrap=True)  # copied into `labd export`: never cut
    for column in ("name", "who", "start (UTC)", "duration", "outcome", "script"):
        table.add_column(column)
    for s in summaries:
        start = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(s.started))
        duration = "-" if s.ended is None else f"{s.ended - s.started:.1f} s"
        table.add_row(s.id, s.name, s.who, start, duration, s.outcome, s.script or "-")
    # Piped (grep, a script): whole rows, as `labd get` does.
    Console(width=None if sys.stdout.isatty() else 200).print(table)


def export(args: argparse.Namespace) -> int:
    from labd import aio
    from labd.client.export import OutputUnusable

    output = Path(args.output)
    try:
        exported = aio.run(_export, args, output)
    except KeyboardInterrupt:
        return INTERRUPTED
    except OutputUnusable as e:
        print(f"labd export: {e}", file=sys.stderr)
        return USAGE
    except Exception as e:
        return report_failure("labd export", e)
    for stream, why in exported.skipped.items():
        print(f"{stream}: skipped ({why})")
    for stream, rows in exported.rows.items():
        print(f"{stream}: {rows} rows")
    print(f"run {args.run_id} written to {output} ({args.format})")
    return 0


async def _export(args: argparse.Namespace, output: Path) -> Exported:
    from labd.client import connect
    from labd.client.export import export_run

    async with connect(args.connect, **connect_options(args)) as lab:
        return await export_run(lab, args.run_id, args.format, output)
