"""A link: the blocking byte pipe to one instrument (a VISA session or a serial port).

Links are deliberately dumb and synchronous; :class:`~drivers.toolkit.connection.Connection`
runs them in worker threads and turns their two failure kinds into capability errors
that name the instrument and the command.
"""

from __future__ import annotations

from typing import Protocol


class LinkTimeout(Exception):
    """No complete reply arrived within the link's timeout."""


class LinkLost(Exception):
    """The link is gone: port closed, cable unplugged, session invalid, cannot open."""


class Link(Protocol):
    """One message-based connection. All methods block; none is called concurrently."""

    @property
    def address(self) -> str:
        """Where the instrument is, for messages: ``"USB0::...::INSTR"``, ``"/dev/ttyUSB0"``."""
        ...

    @property
    def hint(self) -> str:
        """What to check when the instrument does not answer (cable, power, settings)."""
        ...

    def open(self) -> None: ...

    def close(self) -> None:
        """Release the link; never raises (a vanished device cannot be closed cleanly)."""
        ...

    def write(self, message: str) -> None:
        """Send ``message`` plus the write termination."""
        ...

    def read(self) -> str:
        """One reply, read up to the read termination, which is stripped."""
        ...

    def discard_input(self) -> None:
        """Drop bytes that arrived unasked (late replies of a timed-out query)."""
        ...

    def interrupt(self) -> None:
        """Make a read or write blocked in another thread return now, if the link can.

        Called from the event loop's thread on a link that hung past its deadline, so it
        must neither block nor raise; a link that cannot do it does nothing.
        """
        ...
