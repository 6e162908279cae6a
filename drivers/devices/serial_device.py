"""A simulated serial instrument behind a real pseudo terminal.

The simulator owns the master side of a pty (``os.openpty``); the driver under test
opens the slave side with pyserial exactly as it would open ``/dev/ttyUSB0``. Because a
new pty gets a new ``/dev/pts/N`` each time, the simulator publishes a stable symlink
(like udev's ``/dev/serial/by-id/...``) when given ``link=``: the device can then vanish
and come back at the same path, which is what a driver's reconnect needs.

Faults a test can switch on at any time: ``mode = "silent"`` (reads commands, never
answers), ``mode = "garbage"`` (answers noise), :meth:`disappear` / :meth:`reappear`
(the port goes away, like a pulled USB cable, and comes back).
"""

from __future__ import annotations

import contextlib
import os
import queue
import select
import threading
import tty
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Literal

Mode = Literal["normal", "silent", "garbage"]

#: What a device in "garbage" mode answers: line noise, properly terminated.
GARBAGE = "\x7f#?~\x15garbage"


class SerialDevice:
    """Base class: subclasses implement :meth:`handle` (and :meth:`split` if their commands
    are not terminated lines, and :meth:`poll` to speak unasked, e.g. at the end of a move)."""

    #: Terminates each command from the host (used by the default :meth:`split`).
    command_termination = b"\r\n"
    #: Appended to each reply.
    reply_termination = "\r\n"

    def __init__(self, *, link: str | os.PathLike[str] | None = None) -> None:
        self.link = Path(link) if link is not None else None
        self.mode: Mode = "normal"
        #: Every command received, in order, whatever the mode (tests assert on it).
        self.received: list[str] = []
        #: Held while the device state changes; tests take it to read state consistently.
        self.lock = threading.RLock()
        self._arrived = threading.Condition(self.lock)
        self._requests: queue.Queue[tuple[Callable[[], None], threading.Event]] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._running = False
        self._master: int | None = None
        self._slave: int | None = None
        self._slave_path = ""
        self._buffer = bytearray()

    # --- protocol, implemented by subclasses ---

    def handle(self, command: str) -> str | None:
        """The reply to ``command`` (without termination), or None for no reply."""
        raise NotImplementedError

    def split(self, buffer: bytearray) -> list[str]:
        """Take complete commands off the front of ``buffer``."""
        commands = []
        term = self.command_termination
        while (end := buffer.find(term)) >= 0:
            commands.append(buffer[:end].decode("latin-1"))
            del buffer[: end + len(term)]
        return commands

    def poll(self) -> list[str]:
        """Messages the device sends unasked now (called about every 5 ms)."""
        return []

    def wait_received(self, command: str, timeout: float = 2.0) -> None:
        """Block until ``command`` has arrived (it may still be in flight after a write)."""
        with self._arrived:
            if not self._arrived.wait_for(lambda: command in self.received, timeout):
                raise AssertionError(f"{command!r} never arrived; received {self.received}")

    # --- lifecycle ---

    @property
    def port(self) -> str:
        """What to give pyserial: the stable link if any, else the current pty path."""
        return str(self.link) if self.link is not None else self._slave_path

    def start(self) -> None:
        self._running = True
        self._appear()
        self._thread = threading.Thread(target=self._serve, name=type(self).__name__, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._running = False
        if self._thread is not None:
            self._thread.join()
        self._vanish()

    def __enter__(self) -> SerialDevice:
        self.start()
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def disappear(self) -> None:
        """Close the port as a pulled cable would: the host's next I/O fails."""
        self._in_thread(self._vanish)

    def reappear(self) -> None:
        """Come back (on a new pty, at the same ``link`` path)."""
        self._in_thread(self._appear)

    # --- inside the simulator thread ---

    def _in_thread(self, fn: Callable[[], None]) -> None:
        done = threading.Event()
        self._requests.put((fn, done))
        done.wait()

    def _appear(self) -> None:
        if self._master is not None:
            return
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        self._slave_path = os.ttyname(self._slave)
        self._buffer.clear()
        if self.link is not None:
            tmp = self.link.with_name(self.link.name + ".tmp")
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            tmp.symlink_to(self._slave_path)
            tmp.replace(self.link)

    def _vanish(self) -> None:
        if self.link is not None:
            with contextlib.suppress(FileNotFoundError):
                self.link.unlink()
        for fd in (self._master, self._slave):
            if fd is not None:
                os.close(fd)
        self._master = self._slave = None

    def _serve(self) -> None:
        while self._running:
            while not self._requests.empty():
                fn, done = self._requests.get()
                fn()
                done.set()
            master = self._master
            if master is None:
                threading.Event().wait(0.005)
                continue
            readable, _, _ = select.select([master], [], [], 0.005)
            if readable:
                try:
                    self._buffer += os.read(master, 4096)
                except OSError:
                    continue  # no slave end open at this instant (host reopening)
            with self.lock:
                replies = []
                for command in self.split(self._buffer):
                    self.received.append(command)
                    self._arrived.notify_all()
                    if self.mode == "normal":
                        replies.append(self.handle(command))
                    elif self.mode == "garbage":
                        replies.append(GARBAGE)
                replies += self.poll()
            for reply in replies:
                if reply is not None:
                    os.write(master, (reply + self.reply_termination).encode("latin-1"))
