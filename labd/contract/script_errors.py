"""What goes wrong with a script, as errors with a short stable ``code``.

A client (CLI, GUI, a notebook) must tell "the script ran out of fuel" from "the script
was denied the stage" without parsing text, and a person must read what to do next; so
every error has both a ``code`` and a message that names the script and a remedy.
"""

from __future__ import annotations

from labd.errors import LabdError


class ScriptError(LabdError):
    """Base class of scripting errors."""

    code = "script-error"


class UnknownScript(ScriptError, LookupError):
    """No script (or version of it) has that name in the store."""

    code = "unknown-script"


class ScriptInvalid(ScriptError):
    """A module cannot be loaded: not WebAssembly, bad WAT, or it does not fit ABI v1."""

    code = "script-invalid"


class ScriptFailed(ScriptError):
    """A run ended without success. ``code`` says how:

    ``out-of-fuel``, ``deadline``, ``cancelled``, ``stack-overflow``, ``trap`` (any other
    WebAssembly trap), ``instantiate`` (the module could not start, e.g. it needs more
    memory than allowed), ``exit`` (WASI ``proc_exit`` with a non-zero status),
    ``script-error`` (``run`` returned a positive status), or the slug of the ABI error
    code ``run`` returned (``denied``, ``device``, ``inval``, …).
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return f"[{self.code}] {self.message}"
