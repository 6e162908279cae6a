"""What every client subcommand shares: how to name the daemon, and what its errors mean.

Every command that talks to a daemon takes the same ``--connect``/``--token``/``--tls-ca``
options and turns the same failures into one line on stderr and the same exit status,
so that a script calling ``labd`` can tell "no daemon" from "the daemon said no":

* :data:`NO_DAEMON` (3): nothing answers, the link broke, or the token file is missing
  or unreadable (the message says which, and what to start or fix);
* :data:`REFUSED` (1): the daemon or the instrument refused the request
  (unknown instrument, missing capability, out of range, ...);
* :data:`USAGE` (2): the command line itself is wrong, or a file it names is unusable;
* :data:`BUG` (70): labd itself failed; the one line says where its traceback was written.

This module stays light (no pycapnp, no pyarrow): it is imported for every ``labd`` start.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from labd.cli import arguments

REFUSED = 1
USAGE = 2
NO_DAEMON = 3
BUG = 70
INTERRUPTED = 130


def add_connection_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--connect",
        metavar="ADDRESS",
        type=arguments.address,
        help="daemon address: socket path, HOST:PORT or tls://HOST:PORT (default: local)",
    )
    parser.add_argument("--token", help="lab token (default: the token file next to the socket)")
    parser.add_argument(
        "--tls-ca", type=arguments.input_file, help="certificate to trust for tls:// addresses"
    )


def connect_options(args: argparse.Namespace) -> dict[str, Any]:
    """The arguments of ``labd.client.connect``/``connect_blocking`` after the address."""
    return {"token": args.token, "tls_ca": args.tls_ca}


class UsageError(Exception):
    """The command line is wrong in a way only the daemon can tell (exit status 2): a
    ``--grant`` naming an instrument it does not have, say."""


class OutputUnwritable(Exception):
    """A file the command was asked to write cannot be created (exit status 2)."""

    def __init__(self, path: object, error: OSError) -> None:
        super().__init__(f"cannot write {path}: {error.strerror or error}; pick another path")


def report_failure(prog: str, error: Exception) -> int:
    """Print ``error`` as one line after ``prog`` and return the exit status it means.

    An error that none of the statuses above describes is a bug: it is raised again, for
    :func:`labd.cli.main` to report as one (with its traceback kept in a file).
    """
    from capabilities import CapabilityError
    from labd.client import ConnectionLost, NoDaemon
    from labd.errors import LabdError

    if isinstance(error, NoDaemon | ConnectionLost | FileNotFoundError | PermissionError):
        status, line = NO_DAEMON, str(error)
    elif isinstance(error, LabdError | CapabilityError):
        status, line = REFUSED, f"{type(error).__name__}: {error}"
    elif isinstance(error, OutputUnwritable | UsageError):
        status, line = USAGE, str(error)
    else:
        raise error
    print(f"{prog}: {line}", file=sys.stderr)
    return status
