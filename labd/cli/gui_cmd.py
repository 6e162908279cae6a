"""``labd gui``: the DearPyGui desktop client.

``labd gui`` connects to the local daemon, ``labd gui --connect HOST:PORT`` to one on the
LAN, and ``labd gui --sim`` starts a simulated lab (``labd serve`` in a child process)
and shows it, for a first look. The GUI only ever holds a client connection: closing
or killing it leaves a daemon it did not start running untouched.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from labd.cli import arguments
from labd.cli.connection import USAGE


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("gui", help="open the desktop GUI (DearPyGui)")
    p.add_argument(
        "--connect",
        metavar="ADDR",
        type=arguments.address,
        help="daemon address: socket path, HOST:PORT or tls://HOST:PORT"
        " (default: $LABD_ADDRESS, else the local daemon)",
    )
    p.add_argument("--token", help="lab token for a remote daemon (default: $LABD_TOKEN)")
    p.add_argument(
        "--tls-ca", type=arguments.input_file, help="certificate to trust for tls:// addresses"
    )
    p.add_argument(
        "--sim",
        action="store_true",
        help="start the simulated lab (labd serve) in a child process and connect to it",
    )
    p.add_argument(
        "--no-local-rings",
        action="store_true",
        help="time travel through the daemon's replay even when its rings could be mapped",
    )
    p.add_argument(
        "--script-actions",
        metavar="FILE",
        type=arguments.input_file,
        help="run the steps of a JSON actions file (tests, demos); see gui.actions",
    )
    p.set_defaults(func=gui)


def gui(args: argparse.Namespace) -> int:
    if args.sim and args.connect:
        print("labd gui: --sim starts its own daemon; leave out --connect", file=sys.stderr)
        return USAGE
    # Imported here: `labd --help` must not need a display or load DearPyGui.
    from gui.main import hard_exit, run_gui

    if not args.sim:
        status = run_gui(
            args.connect,
            token=args.token,
            tls_ca=args.tls_ca,
            actions=args.script_actions,
            local_rings=not args.no_local_rings,
        )
    else:
        with simulated_lab() as socket_path:
            status = run_gui(
                str(socket_path),
                actions=args.script_actions,
                title="labd — simulated lab",
                local_rings=not args.no_local_rings,
            )
    hard_exit(status)
    return status  # not reached


@contextlib.contextmanager
def simulated_lab(timeout: float = 30.0) -> Iterator[Path]:
    """Run ``labd serve`` (the built-in simulated lab) on a private socket while in use."""
    with tempfile.TemporaryDirectory(prefix="labd-sim-") as tmp:
        socket_path = Path(tmp) / "labd.sock"
        daemon = subprocess.Popen(
            [sys.executable, "-m", "labd", "serve", "--socket", str(socket_path)],
            stdin=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + timeout
            while not socket_path.with_suffix(".token").exists():
                if daemon.poll() is not None:
                    raise SystemExit(f"labd gui --sim: the daemon exited ({daemon.returncode})")
                if time.monotonic() > deadline:
                    raise SystemExit(
                        f"labd gui --sim: the daemon did not start within {timeout:g} s"
                    )
                time.sleep(0.05)
            yield socket_path
        finally:
            daemon.terminate()
            try:
                daemon.wait(10)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(socket_path)
