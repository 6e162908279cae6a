"""The ``labd`` command line: one module per group of subcommands.

Each module listed in :data:`COMMAND_MODULES` exposes ``register(subparsers)``, adding its
subcommands with ``set_defaults(func=...)``; ``func(args)`` returns the exit status.

Whatever goes wrong, a person sees one line, never a traceback (docs/config.md, "Errors"):
a wrong argument or config is named with what is accepted (exit status 2); anything
unexpected is reported as a bug in labd, with the file its traceback was written to
(``LABD_DEBUG=1`` prints the traceback instead).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import tempfile
import traceback
from collections.abc import Sequence
from typing import NoReturn

COMMAND_MODULES = [
    "labd.cli.serve",
    "labd.cli.demo",
    "labd.cli.client_cmds",
    "labd.cli.parameter_cmds",
    "labd.cli.gui_cmd",
    "labd.cli.run_cmd",
    "labd.cli.data_cmds",
    "labd.cli.runs_cmds",
    "labd.cli.drivers_cmd",
]


class OneLineParser(argparse.ArgumentParser):
    """Reports a wrong command line in one line (argparse's default repeats the usage,
    several lines for ``labd run``); subcommand parsers inherit it."""

    def error(self, message: str) -> NoReturn:
        from labd.cli.connection import USAGE

        self.exit(USAGE, f"{self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="labd",
        description="labd: a headless lab-instrument daemon and its clients.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug details")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from labd.cli.connection import INTERRUPTED

    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if not getattr(args, "func", None):
            parser.print_help()
            return 2
        logging.basicConfig(
            level=logging.DEBUG if args.verbose else logging.INFO,
            format="%(asctime)s %(name)s %(levelname)s: %(message)s",
            stream=sys.stderr,
        )
        status: int = args.func(args)
    except KeyboardInterrupt:
        return INTERRUPTED
    except Exception as error:
        return report_uncaught(error)
    return status


def report_uncaught(error: Exception) -> int:
    """One line for an error no command handled: the person's mistake (a wrong config or
    argument, exit status 2), or a bug in labd (exit status 70, traceback in a file)."""
    from labd.cli.connection import BUG, USAGE, UsageError
    from labd.errors import LabdError
    from labd.values import BadValue

    leaf = _first_leaf(error)
    if isinstance(leaf, LabdError | UsageError | BadValue):
        for line in str(leaf).splitlines() or [type(leaf).__name__]:
            print(f"labd: {line}", file=sys.stderr)
        return USAGE
    if os.environ.get("LABD_DEBUG"):
        raise error
    summary = (
        f"{type(leaf).__name__}: {str(leaf).strip().splitlines()[0] if str(leaf).strip() else ''}"
    )
    print(
        f"labd: internal error (a bug in labd, please report it): {summary.rstrip(': ')};"
        f" traceback in {_save_traceback(error)} (LABD_DEBUG=1 prints it)",
        file=sys.stderr,
    )
    return BUG


def _first_leaf(error: BaseException) -> BaseException:
    while isinstance(error, BaseExceptionGroup) and error.exceptions:
        error = error.exceptions[0]
    return error


def _save_traceback(error: BaseException) -> str:
    fd, path = tempfile.mkstemp(prefix="labd-bug-", suffix=".txt")
    with os.fdopen(fd, "w") as out:
        out.write(f"labd {' '.join(sys.argv[1:])}\npython {sys.version}\n\n")
        out.write("".join(traceback.format_exception(error)))
    return path
