"""``labd demo``: the simulated lab doing a real experiment, headless."""

from __future__ import annotations

import argparse
from typing import Any

import trio
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from capabilities import FrameProducer, Movable, Readable
from labd.config import default_config
from labd.daemon import Daemon
from labd.experiments import ScanPoint, ScanResult, linspace, stage_scan


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "demo", help="run a stage scan on the simulated lab and find the peak"
    )
    p.add_argument("--start", type=float, default=0.0, help="scan start (mm)")
    p.add_argument("--stop", type=float, default=6.0, help="scan stop (mm)")
    p.add_argument("--steps", type=int, default=25, help="number of points")
    p.set_defaults(func=demo)


def demo(args: argparse.Namespace) -> int:
    console = Console()
    result = trio.run(_run, args, console)
    show(result, console)
    return 0


async def _run(args: argparse.Namespace, console: Console) -> ScanResult:
    daemon = Daemon(default_config())
    async with trio.open_nursery() as nursery:
        await nursery.start(daemon.run)
        lab = daemon.supervisor
        positions = linspace(args.start, args.stop, args.steps)
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task("scanning", total=len(positions))

            def on_point(i: int, point: ScanPoint) -> None:
                progress.update(task, advance=1, description=f"x = {point.position:+.3f}")

            result = await stage_scan(
                lab.get("stage").proxy(Movable),
                lab.get("meter").proxy(Readable),
                lab.get("camera").proxy(FrameProducer),
                positions,
                on_point,
            )
        nursery.cancel_scope.cancel()
    return result


def show(result: ScanResult, console: Console) -> None:
    table = Table(title="stage scan")
    table.add_column(f"position ({result.unit})", justify="right")
    table.add_column(f"power ({result.power_unit})", justify="right")
    table.add_column("frame max", justify="right")
    table.add_column("frame mean", justify="right")
    peak = result.peak
    for p in result.points:
        style = "bold green" if p is peak else None
        table.add_row(
            f"{p.position:+.3f}",
            f"{p.power:.4g}",
            str(p.frame_max),
            f"{p.frame_mean:.1f}",
            style=style,
        )
    console.print(table)
    console.print(
        f"peak: {peak.power:.4g} {result.power_unit} at {peak.position:+.3f} {result.unit}"
    )
