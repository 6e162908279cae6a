"""``labd run FILE``: compile a script, upload it to the daemon, run it there, watch it.

The script runs inside the daemon, next to the instruments; this command only follows it:
log lines as they come, a progress line, the results at the end (the named values, then
the rows the script emitted as a table, long ones shortened in the middle). Ctrl-C
cancels the run on the daemon (closing the terminal any other way leaves it running, as
a run outlives its client). The exit status says how it went: 0 succeeded, 1 the script
failed (the reason is printed with its code), 2 the file or arguments are wrong, 3 no
daemon, 130 interrupted.
"""

from __future__ import annotations

import argparse
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labd.cli import arguments
from labd.cli.connection import (
    INTERRUPTED,
    REFUSED,
    USAGE,
    UsageError,
    add_connection_arguments,
    connect_options,
    report_failure,
)
from labd.values import Number, count, duration

if TYPE_CHECKING:
    import pyarrow as pa
    from rich.console import Console
    from rich.table import Table

    from labd.client import Lab
    from labd.client.scripts import RunHandle, RunInfo, Scripts
    from labd.scripting import Grants

LEVEL_STYLE = {"debug": "dim", "info": "", "warn": "yellow", "error": "bold red"}
PROGRESS_INTERVAL_S = 0.25
ROWS_SHOWN = (30, 10)
"""A longer table shows its first and last rows this many, and says how many it has."""
#: Fuel is a 64-bit count of instructions in wasmtime.
FUEL = count(low=1, high=2**63 - 1)
#: A wasm32 module addresses at most 4 GiB of linear memory.
MEMORY_MIB = Number(low=0, low_open=True, high=4096, unit="MiB", why="wasm32 addresses 4 GiB")
LANGUAGES = "{languages}"
"""Stands for the file types ``labd run`` compiles, in its help text."""


class _HelpListingLanguages(argparse.HelpFormatter):
    """Fills in :data:`LANGUAGES` only when help is shown: the list comes from
    :mod:`labd.scripting.compile`, which imports wasmtime (~90 ms) -- too slow to pay on
    every ``labd`` start just to build the parser."""

    def format_help(self) -> str:
        from labd.scripting.compile import SUPPORTED

        return super().format_help().replace(LANGUAGES, ", ".join(SUPPORTED))


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "run",
        help="compile, upload and run a WebAssembly script on the daemon",
        description=f"Compile FILE if needed ({LANGUAGES}), upload it to the daemon and run"
        " it there with live log lines. Ctrl-C cancels the run.",
        formatter_class=_HelpListingLanguages,
    )
    p.add_argument("file", help=f"script source or module ({LANGUAGES})")
    p.add_argument("--name", help="name to upload it under (default: the file's stem)")
    p.add_argument(
        "--arg", action="append", default=[], metavar="KEY=VALUE", help="script argument"
    )
    p.add_argument(
        "--grant",
        action="append",
        default=[],
        metavar="NAME[:Capability,...]",
        help="let the script use instrument NAME (all its capabilities, or those listed);"
        " '*' grants everything",
    )
    p.add_argument("--fuel", type=arguments.whole(FUEL), help="instruction budget (e.g. 1e10)")
    p.add_argument(
        "--deadline",
        type=arguments.number(duration()),
        metavar="SECONDS",
        help="wall-clock limit (e.g. 30 or '2 min')",
    )
    p.add_argument(
        "--memory",
        type=arguments.number(MEMORY_MIB),
        metavar="MIB",
        help="linear memory limit in MiB (e.g. 64 or '1 GiB')",
    )
    add_connection_arguments(p)
    p.set_defaults(func=run_command)


@dataclass
class Outcome:
    """What the run did, filled in as it goes (read after an interrupt too)."""

    info: RunInfo | None = None
    cancelled_by_us: bool = False


def run_command(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.markup import escape

    from capabilities import CapabilityError
    from labd import aio
    from labd.scripting import Grants, ScriptFailed
    from labd.scripting.compile import CompileError, compile_source

    err = Console(stderr=True, soft_wrap=True)  # one line per error, however long
    try:
        grants = Grants.parse(args.grant)
        script_args = parse_args(args.arg)
        name = args.name or script_name(Path(args.file))
        module = compile_source(args.file)
    except (ValueError, CompileError) as e:
        err.print(f"labd run: {escape(str(e))}")
        return USAGE
    memory = int(args.memory * 2**20) if args.memory else None
    outcome = Outcome()
    console = Console()
    try:
        aio.run(
            follow_run, args, name, module, script_args, grants, memory, console, outcome,
        )  # fmt: skip
    except KeyboardInterrupt:
        run = f"run {outcome.info.id} " if outcome.info else ""
        what = "cancelled on the daemon" if outcome.cancelled_by_us else "not started"
        err.print(f"labd run: interrupted; {run}{what}")
        return INTERRUPTED
    except ScriptFailed as e:  # the message names the script and says what to change
        err.print(f"labd run: failed: {e.code}: {escape(e.message)}")
        return REFUSED
    except CapabilityError as e:  # the daemon refused the arguments: grants, limits
        err.print(f"labd run: {type(e).__name__}: {escape(str(e))}")
        return USAGE
    except Exception as e:
        return report_failure("labd run", e)
    return 0


def parse_args(items: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--arg {item!r}: write KEY=VALUE, e.g. --arg steps=41")
        out[key.strip()] = value
    return out


def script_name(path: Path) -> str:
    """A valid script name from a file name: ``scan.wat`` → ``scan``."""
    stem = re.sub(r"[^A-Za-z0-9_.-]", "-", path.stem)
    return stem if stem[:1].isalpha() else f"script-{stem}"[:64]


async def follow_run(
    args: argparse.Namespace,
    name: str,
    module: bytes,
    script_args: dict[str, str],
    grants: Grants,
    memory: int | None,
    console: Console,
    outcome: Outcome,
) -> None:
    import trio

    from labd.client import connect
    from labd.scripting import ScriptFailed

    async with connect(args.connect, **connect_options(args)) as lab:
        await check_grants(lab, grants)
        scripts = await lab.scripts()
        version = await install(scripts, name, module, console)
        # Shielded: a Ctrl-C right now must not leave a run we hold no handle on.
        with trio.CancelScope(shield=True):
            run = await scripts.run(
                name,
                version=version,
                args=script_args,
                grants=args.grant,
                fuel=args.fuel,
                deadline_s=args.deadline,
                memory_bytes=memory,
            )
            outcome.info = await run.info()
        failure: ScriptFailed | None = None
        try:
            await watch(run, console, outcome)
            try:
                results = await run.wait()
            except ScriptFailed as e:  # what it reported before it failed is shown too
                failure, results = e, {}
        finally:
            if outcome.info is None or not outcome.info.finished:
                # Interrupted (Ctrl-C cancels this task): stop the run on the daemon too.
                with trio.CancelScope(shield=True), trio.move_on_after(5):
                    await run.cancel()
                    outcome.cancelled_by_us = True
        reported, rows = await run.results(), await run.table()
        for result in reported if failure else ():
            results[result.name] = result.value
        if reported or not (rows.num_rows or failure):
            console.print(results_table(outcome.info, reported, results))
        if rows.num_rows:
            console.print(rows_table(outcome.info, rows))
        if failure is not None:
            raise failure


async def check_grants(lab: Lab, grants: Grants) -> None:
    """Refuse a ``--grant`` of an instrument the daemon does not have, or of a capability
    that instrument lacks, before anything runs: such a grant is a typo, and a run that
    then fails half-way (or, worse, never tries that instrument) hides it."""
    import difflib

    from labd.scripting.grants import ALL

    have = {info.name: set(info.capabilities) for info in await lab.instruments()}
    for instrument, capabilities in sorted(grants.allowed.items()):
        if instrument == ALL:
            continue
        if instrument not in have:
            close = difflib.get_close_matches(instrument, list(have), n=1, cutoff=0.8)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise UsageError(
                f"--grant {instrument}: the daemon has no instrument {instrument!r}{hint};"
                f" it has: {', '.join(sorted(have)) or 'none'}"
            )
        lacking = sorted(capabilities - {ALL} - have[instrument])
        if lacking:
            raise UsageError(
                f"--grant {instrument}:{','.join(lacking)}: {instrument} is not"
                f" {' or '.join(lacking)}; it is: {', '.join(sorted(have[instrument]))}"
            )


async def install(scripts: Scripts, name: str, module: bytes, console: Console) -> int:
    version, uploaded = await scripts.install(name, module)
    if uploaded:
        console.print(f"uploaded script {name!r} v{version} ({len(module)} bytes)", style="dim")
    else:
        console.print(f"script {name!r} v{version} is this module already", style="dim")
    return version


async def watch(run: RunHandle, console: Console, outcome: Outcome) -> None:
    """Print log lines as they come under a progress line, until the run ends."""
    import trio
    from rich.markup import escape
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from labd.client.scripts import RunLog

    assert outcome.info is not None
    label = outcome.info.label
    started = time.monotonic()
    lines_seen = 0
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task(f"{label} starting", total=None)

        async def show_progress() -> None:
            while True:
                outcome.info = await run.info()
                progress.update(
                    task,
                    description=f"{escape(label)} [bold]{outcome.info.state}[/]"
                    f" · {lines_seen} log lines",
                )
                await trio.sleep(PROGRESS_INTERVAL_S)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(show_progress)
            lines: RunLog
            async with run.log() as lines:
                async for line in lines:
                    lines_seen += 1
                    stamp = time.strftime("%H:%M:%S", time.localtime(line.timestamp))
                    style = LEVEL_STYLE.get(line.level, "")
                    text = escape(f"{line.level:5} {line.text}")
                    console.print(f"[dim]{stamp}[/] " + (f"[{style}]{text}[/]" if style else text))
            nursery.cancel_scope.cancel()
        outcome.info = lines.final or await run.info()
    elapsed = time.monotonic() - started
    console.print(f"{escape(label)} {outcome.info.state} after {elapsed:.2f} s", style="dim")


def results_table(info: RunInfo | None, reported: list[Any], last: dict[str, float]) -> Table:
    from rich.table import Table

    counts: dict[str, int] = {}
    for result in reported:
        counts[result.name] = counts.get(result.name, 0) + 1
    title = f"results of {info.label} (run {info.id})" if info else "results"
    table = Table(title=title)
    table.add_column("result")
    table.add_column("value", justify="right")
    table.add_column("reports", justify="right")
    for key, value in last.items():
        table.add_row(key, f"{value:.6g}", str(counts.get(key, 1)))
    return table


def rows_table(info: RunInfo | None, rows: pa.Table) -> Table:
    """The script's rows (``result_row``), a column per name."""
    from rich.table import Table

    head, tail, n = *ROWS_SHOWN, rows.num_rows
    numbers = list(range(n)) if n <= head + tail else [*range(head), -1, *range(n - tail, n)]
    title = f"table of {info.label} (run {info.id})" if info else "table"
    caption = (
        f"{n} rows, {head} + {tail} shown; all: run.table() in Python" if n > head + tail else None
    )
    table = Table(title=title, caption=caption)
    table.add_column("row", justify="right", style="dim")
    for name in rows.column_names:
        table.add_column(name, justify="right")
    columns = [rows.column(i).to_pylist() for i in range(rows.num_columns)]
    for i in numbers:
        cells = ["…"] * len(columns) if i < 0 else [_cell(c[i]) for c in columns]
        table.add_row("…" if i < 0 else str(i), *cells)
    return table


def _cell(value: float | None) -> str:
    return "" if value is None else f"{value:.6g}"
