"""Experiment scripts as WebAssembly, run by wasmtime inside the daemon.

Upload a module to a :class:`ScriptStore`, start it on a :class:`ScriptEngine`, and watch
the :class:`Run`. The guest side of the contract (ABI v1) is in ``wasm_scripts/ABI.md``.
"""

from labd.contract.script_errors import ScriptError, ScriptFailed, ScriptInvalid, UnknownScript
from labd.scripting.engine import ScriptEngine
from labd.scripting.grants import Grants
from labd.scripting.host import Resolver
from labd.scripting.limits import RunLimits
from labd.scripting.resolvers import objects_resolver, supervisor_resolver
from labd.scripting.results import RESULT_SCHEMA, Result
from labd.scripting.run import LogLine, Run, RunState
from labd.scripting.store import ScriptStore, ScriptVersion

__all__ = [
    "RESULT_SCHEMA",
    "Grants",
    "LogLine",
    "Resolver",
    "Result",
    "Run",
    "RunLimits",
    "RunState",
    "ScriptEngine",
    "ScriptError",
    "ScriptFailed",
    "ScriptInvalid",
    "ScriptStore",
    "ScriptVersion",
    "UnknownScript",
    "objects_resolver",
    "supervisor_resolver",
]
