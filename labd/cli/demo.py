"""``labd demo``: a daemon with the simulated lab, driven over RPC, doing a real experiment.

The daemon runs as its own process (as it would in a lab) and the experiment talks to it
through the real Cap'n Proto client, holding only the capabilities it needs.
"""

from __future__ import annotations

import argparse
import contextlib
from typing import TYPE_CHECKING, Any

from labd.cli import arguments
from labd.cli.connection import REFUSED
from labd.values import Number, count

if TYPE_CHECKING:
    from rich.console import Console

    from labd.experiments import ScanResult, SweepPoint


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "demo",
        help="start a daemon with the simulated lab and run a scan over RPC",
        description="Start `labd serve` with the simulated lab, connect to it over Cap'n Proto, "
        "scan the stage while reading the power meter and snapping frames, report the peak, "
        "then run a short temperature sweep.",
    )
    position = arguments.number(Number())
    p.add_argument("--start", type=position, default=0.0, help="scan start in mm (default 0)")
    p.add_argument("--stop", type=position, default=6.0, help="scan stop in mm (default 6)")
    p.add_argument(
        "--steps",
        type=arguments.whole(count(low=2, high=10_000)),
        default=25,
        help="number of scan points (default 25)",
    )
    p.add_argument(
        "--config",
        type=arguments.input_file,
        help="run the demo against this lab config instead of the simulated lab",
    )
    p.set_defaults(func=demo)


def demo(args: argparse.Namespace) -> int:
    from rich.console import Console

    from labd import aio
    from labd.launcher import DaemonFailed, spawn_daemon

    console = Console()
    with contextlib.ExitStack() as stack:
        with console.status("starting labd serve with the simulated lab ..."):
            try:
                daemon = stack.enter_context(spawn_daemon(args.config))
            except DaemonFailed as e:
                console.print(f"[red]labd demo: the daemon did not start[/red]\n{e}")
                return REFUSED
        console.print(f"daemon ready at [bold]{daemon.address}[/bold] (pid {daemon.process.pid})")
        scan, sweep = aio.run(_experiment, daemon.address, args, console)
    show_scan(scan, console)
    show_sweep(sweep, console)
    return 0


async def _experiment(
    address: str, args: argparse.Namespace, console: Console
) -> tuple[ScanResult, list[SweepPoint]]:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from capabilities import (
        FrameProducer,
        Movable,
        Readable,
        Switchable,
        TemperatureSensor,
        VoltageSource,
    )
    from labd import client
    from labd.experiments import ScanPoint, linspace, stage_scan, temperature_sweep

    async with client.connect(address) as lab:
        names = ", ".join(f"{i.name} ({'/'.join(i.capabilities)})" for i in await lab.instruments())
        console.print(f"instruments: {names}")
        stage = await lab.instrument("stage").get(Movable)
        meter = await lab.instrument("meter").get(Readable)
        camera = await lab.instrument("camera").get(FrameProducer)
        positions = linspace(args.start, args.stop, args.steps)
        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(),
        )
        with Progress(*columns, console=console) as progress:
            task = progress.add_task("stage scan", total=len(positions))

            def on_point(i: int, point: ScanPoint) -> None:
                progress.update(
                    task,
                    advance=1,
                    description=f"stage scan  x = {point.position:+.3f} mm  P = {point.power:.3g}",
                )

            scan = await stage_scan(stage, meter, camera, positions, on_point)
            progress.update(task, description="stage scan")
            sweep_task = progress.add_task("temperature sweep", total=None)
            supply = await lab.instrument("psu").get(VoltageSource)
            output = await lab.instrument("psu").get(Switchable)
            thermo = await lab.instrument("thermo").get(TemperatureSensor)
            await output.set_on(True)
            sweep = await temperature_sweep(thermo, supply, [0.0, 3.0, 6.0, 9.0], settle_s=1.0)
            await supply.set_voltage(0.0)
            await output.set_on(False)
            progress.update(sweep_task, total=1, completed=1)
    return scan, sweep


def show_scan(result: ScanResult, console: Console) -> None:
    from rich.table import Table

    table = Table(title="stage scan (meter power and camera frame at each point)")
    table.add_column(f"position ({result.unit})", justify="right")
    table.add_column(f"power ({result.power_unit})", justify="right")
    table.add_column("frame max", justify="right")
    table.add_column("spot x (px)", justify="right")
    peak = result.peak
    for p in result.points:
        style = "bold green" if p is peak else None
        table.add_row(
            f"{p.position:+.3f}",
            f"{p.power:.4g}",
            str(p.frame_max),
            str(p.spot_x),
            style=style,
        )
    console.print(table)
    console.print(
        f"[bold]peak: {peak.power:.4g} {result.power_unit} at {peak.position:+.3f} {result.unit}[/bold]"
    )


def show_sweep(points: list[SweepPoint], console: Console) -> None:
    from rich.table import Table

    table = Table(title="temperature sweep (supply voltage → thermometer)")
    table.add_column("supply (V)", justify="right")
    table.add_column("temperature (K)", justify="right")
    for p in points:
        table.add_row(f"{p.volts:.1f}", f"{p.kelvin:.3f}")
    console.print(table)
