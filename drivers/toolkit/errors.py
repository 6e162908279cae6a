"""Errors the toolkit adds to :mod:`capabilities.errors`, and how their messages read.

Every message names the instrument (model and where it is connected), the command that
was on the wire, and what to check, because the person reading it is standing at a rack
of instruments and needs to know which cable to look at.
"""

from __future__ import annotations

from capabilities import DeviceError, InvalidRequest


class UnexpectedReply(DeviceError):
    """The instrument answered, but not what its protocol says it answers (garbage)."""


class CommandRejected(InvalidRequest):
    """The instrument reported an error for a command (its error queue or status).

    A refused request, not a broken instrument: restarting would not help, so the
    supervisor keeps the instrument ready and hands the error to the caller.
    """


class DeviceReportedFault(DeviceError):
    """The instrument reports a hardware fault (motor error, thermal shutdown, ...)."""
