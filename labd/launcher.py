"""Start a ``labd serve`` daemon as a child process and wait until it accepts clients.

Used by ``labd demo`` (a first look without a running daemon), by benchmarks and by
tests: the daemon is a separate process on purpose, so that what the client does —
crash, hang, get killed — cannot touch the experiment.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


class DaemonFailed(RuntimeError):
    """The child daemon exited or did not become ready; the message holds its log."""


@dataclass
class DaemonProcess:
    process: subprocess.Popen[bytes]
    socket: Path
    log: Path

    @property
    def address(self) -> str:
        return str(self.socket)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM (clean shutdown: every driver closed), SIGKILL if it does not exit."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


@contextlib.contextmanager
def spawn_daemon(
    config: str | os.PathLike[str] | None = None,
    *extra_args: str,
    workdir: str | os.PathLike[str] | None = None,
    ready_timeout: float = 60.0,
) -> Iterator[DaemonProcess]:
    """Run ``labd serve`` (the simulated lab when ``config`` is None) on a private socket."""
    with contextlib.ExitStack() as stack:
        if workdir is None:
            workdir = stack.enter_context(tempfile.TemporaryDirectory(prefix="labd-"))
        root = Path(workdir)
        sock = root / "run" / "labd.sock"
        log = root / "labd.log"
        args = [sys.executable, "-m", "labd", "serve", "--socket", str(sock), *extra_args]
        if config is not None:
            args += ["--config", str(config)]
        with log.open("wb") as out:
            process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
        daemon = DaemonProcess(process, sock, log)
        try:
            _wait_ready(daemon, ready_timeout)
            yield daemon
        finally:
            daemon.stop()


def _wait_ready(daemon: DaemonProcess, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    token = daemon.socket.with_suffix(".token")
    while not (daemon.socket.exists() and token.exists() and "labd: ready" in daemon.log_text()):
        if daemon.process.poll() is not None:
            raise DaemonFailed(
                f"labd serve exited with {daemon.process.returncode}:\n{daemon.log_text()}"
            )
        if time.monotonic() > deadline:
            daemon.stop()
            raise DaemonFailed(
                f"labd serve was not ready after {timeout:g} s:\n{daemon.log_text()}"
            )
        time.sleep(0.05)
