"""How the daemon tells a client what went wrong, so that the client can say it again.

pycapnp sends a server exception to the peer as the text of its whole Python traceback,
which leaks server paths and native stack addresses and is useless to a program. Every
server method's error therefore leaves as a :class:`WireError` (:func:`to_wire_error`,
:func:`wire_errors`, and the dispatch guard of :mod:`labd.contract.dispatch`), whose text
is exactly ``labd:<code>: <message>`` and which carries no traceback. The client finds
that marker in the remote exception and raises the matching class again
(:func:`parse_error`, :func:`error_from_code`; codes in docs/rpc.md).

A connection the daemon closes on purpose (one of its limits, docs/security.md) ends with
a Cap'n Proto Abort whose reason starts with :data:`CLOSED_MARKER`.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

from capabilities.errors import CapabilityError
from labd.contract.script_errors import ScriptError, ScriptFailed, ScriptInvalid, UnknownScript
from labd.errors import ERROR_CLASSES, LabdError, error_code

log = logging.getLogger("labd.rpc")
P = ParamSpec("P")
R = TypeVar("R")

CLOSED_MARKER = "labd closed the connection: "
"""How the reason in the daemon's Abort message starts (the client looks for it)."""

_MARKER = re.compile(r"labd:([a-z0-9:-]+): (.*)", re.DOTALL)

SCRIPT_FAILED = "script-failed"
"""Wire code prefix of a failed script run: ``script-failed:<ScriptFailed.code>``."""
SCRIPT_ERROR_CODES = ("script-error", "script-invalid", "unknown-script")


class WireError(Exception):
    """An error in its wire form: ``labd:<code>: <message>``, without a traceback.

    pycapnp formats ``exc.__traceback__``; this class always reports ``None`` there so the
    remote side receives one short line. ``__module__`` is ``builtins`` so the line is not
    prefixed with a module path either.
    """

    __module__ = "builtins"

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"labd:{code}: {message}")
        self.code = code
        self.message = message

    @property
    def __traceback__(self) -> None:
        return None

    @__traceback__.setter
    def __traceback__(self, _value: object) -> None:
        pass


def to_wire_error(exc: BaseException) -> WireError:
    """The wire form of ``exc``; unexpected errors are logged here with their traceback.

    A :class:`WireError` comes back as a fresh copy: one raised while handling another
    exception would otherwise take that exception's traceback along as its context.
    """
    if isinstance(exc, WireError):
        return WireError(exc.code, exc.message)
    code = error_code(exc)
    if code == "internal":
        log.error("internal error in an RPC call", exc_info=exc)
        return WireError(code, f"internal daemon error ({type(exc).__name__}); see the daemon log")
    return WireError(code, str(exc).strip() or type(exc).__name__)


def parse_error(text: str) -> tuple[str, str] | None:
    """(code, message) if ``text`` carries a labd error marker."""
    match = _MARKER.search(text)
    if match is None:
        return None
    return match.group(1), match.group(2).strip()


def error_from_code(code: str, message: str) -> Exception:
    """An instance of the exception class registered for ``code`` (LabdError if unknown)."""
    if code.startswith(SCRIPT_FAILED + ":") or code in SCRIPT_ERROR_CODES:
        return _script_error(code, message)
    cls = ERROR_CLASSES.get(code)
    if cls is None:
        return LabdError(f"{message} [{code}]")
    if issubclass(cls, LabdError | CapabilityError):
        return cls(message)
    return LabdError(message)


def _script_error(code: str, message: str) -> Exception:
    if code.startswith(SCRIPT_FAILED + ":"):
        return ScriptFailed(code.partition(":")[2], message)
    classes: dict[str, type[ScriptError]] = {
        cls.code: cls for cls in (ScriptError, ScriptInvalid, UnknownScript)
    }
    return classes[code](message)


def wire_errors(method: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """Decorate a server method so that whatever it raises leaves as a :class:`WireError`."""

    @functools.wraps(method)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await method(*args, **kwargs)
        except (asyncio.CancelledError, WireError):
            raise
        except Exception as exc:
            raise to_wire_error(exc) from None

    return wrapper
