"""``labd get NAME [PARAM]`` and ``labd set NAME PARAM VALUE[UNIT]``: parameters from a shell.

``labd get meter`` prints every parameter of the meter (and of its channels) with its
value, unit and what it accepts; ``labd get meter wavelength`` prints one value, for
scripts. ``labd set meter wavelength 1064nm`` takes the value as people write it; the
daemon converts the unit (docs/parameters.md).
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from labd.cli.client_cmds import with_lab

if TYPE_CHECKING:
    from capabilities import Parameter
    from labd.client import BlockingLab
    from labd.client.blocking import BlockingParameters


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("get", help="an instrument's parameters, or one parameter's value")
    p.add_argument("name", help="instrument (or channel, e.g. tc/A)")
    p.add_argument("parameter", nargs="?", help="one parameter: print only its value")
    with_lab(p, get)
    p = subparsers.add_parser("set", help="set a parameter, e.g. labd set meter wavelength 1064nm")
    p.add_argument("name", help="instrument (or channel, e.g. tc/A)")
    p.add_argument("parameter")
    p.add_argument(
        "value",
        nargs="+",
        help="the value, with a unit if you like: 1064nm, '2.5 mA', on, high",
    )
    with_lab(p, set_)


def get(lab: BlockingLab, args: argparse.Namespace) -> int:
    if args.parameter is not None:
        parameters = lab.instrument(args.name).parameters
        parameter = parameters.describe(args.parameter)
        print(parameter.show(parameters.get(args.parameter)))
        return 0
    from rich.console import Console
    from rich.table import Table

    names = [args.name] + [
        info.name for info in lab.instruments() if info.name.startswith(args.name + "/")
    ]
    rows: list[tuple[str, ...]] = []
    notes: list[str] = []
    for name in names:
        instrument = lab.instrument(name)
        if "Configurable" not in instrument.capabilities():
            continue
        parameters = instrument.parameters
        for parameter in parameters.list():
            shown, note = _shown(parameters, parameter)
            if note:
                notes.append(f"{name} {parameter.name}: {note}")
            rows.append(
                (parameter.channel, parameter.name, shown, parameter.span(), _access(parameter),
                 parameter.description)
            )  # fmt: skip
    if not rows:
        print(f"{args.name} has no parameters")
        return 0
    columns = ["channel", "parameter", "value", "accepts", "access", "description"]
    if not any(row[0] for row in rows):  # no channels: no channel column
        columns, rows = columns[1:], [row[1:] for row in rows]
    table = Table()
    for column in columns:
        # Names and values whole, always: a script greps them; descriptions may wrap.
        table.add_column(column, no_wrap=column != "description")
    for row in rows:
        table.add_row(*row)
    # Piped (no terminal), rich would squeeze the table into 80 columns.
    console = Console(width=None if sys.stdout.isatty() else 200)
    console.print(table)
    for note in notes:
        console.print(f"* {note}", highlight=False)
    return 0


def set_(lab: BlockingLab, args: argparse.Namespace) -> int:
    parameters = lab.instrument(args.name).parameters
    held = parameters.set(args.parameter, " ".join(args.value))
    print(parameters.describe(args.parameter).show(held))
    return 0


def _shown(parameters: BlockingParameters, parameter: Parameter) -> tuple[str, str]:
    """The value for the table, and a note: an instrument's refusal to report one does not
    fail the whole table (a Lake Shore input no heater loop controls has no set point)."""
    from capabilities import CapabilityError

    if not parameter.readable:
        return "(write-only)", ""
    try:
        return parameter.show(parameters.get(parameter.name)), ""
    except CapabilityError as e:
        return "(none: *)", str(e)


def _access(parameter: Parameter) -> str:
    if not parameter.writable:
        return "read-only"
    return "" if parameter.readable else "write-only"
