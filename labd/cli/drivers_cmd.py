"""``labd drivers``: the driver names a lab config may give, and where each comes from.

The names are labd's own and those installed packages declare in the ``labd.drivers``
entry-point group (docs/writing-a-driver.md, "A driver package of your own"). Nothing is
imported to list them, so a package whose import is broken is listed too; its error shows
when a config names it. An installed name that a built-in one hides is marked as such.
"""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("drivers", help="list the driver names a lab config may use")
    p.set_defaults(func=drivers)


def drivers(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from drivers.registry import all_drivers

    table = Table()
    for column in ("driver", "class", "from"):
        table.add_column(column)
    for entry in all_drivers():
        source = escape(entry.package or "labd")
        if entry.shadowed:
            source += " [yellow](hidden: labd's own driver has this name)[/]"
        table.add_row(escape(entry.name), escape(entry.target), source)
    console = Console()
    console.print(table)
    console.print('A lab config may also name any driver class: driver = "module:Class".')
    return 0
