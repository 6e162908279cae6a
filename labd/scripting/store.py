"""Uploaded scripts by name and version, compiled once.

Uploading a new version never touches a run in progress: a run holds the version it
started with, and the next run of that name gets the newest. Compilation happens at
upload (so a module that does not fit ABI v1 is refused with a clear message before
anyone runs it), and the compiled artifact is kept in memory keyed by the module's
sha256 — and, if a ``cache_dir`` is given, in a directory only this user can read —
so a re-run, a re-upload or a daemon restart does not compile again.

Compiled artifacts are native code that wasmtime loads without checking, so the cache is
private to the daemon: it is never filled from anything but our own compiler.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import trio
import wasmtime

from labd.contract.script_errors import ScriptInvalid, UnknownScript
from labd.scripting import abi

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")
_VALTYPES = {"i": "i32", "I": "i64", "F": "f64"}


def wasm_config(stack_bytes: int | None = None) -> wasmtime.Config:
    """The engine settings every script runs under (compiled artifacts depend on them)."""
    config = wasmtime.Config()
    config.consume_fuel = True
    config.epoch_interruption = True
    if stack_bytes is not None:
        config.max_wasm_stack = stack_bytes
    return config


@dataclass(frozen=True)
class ScriptVersion:
    """One uploaded version of a script."""

    name: str
    version: int
    sha256: str
    artifact: bytes
    """The compiled module (``wasmtime.Module.serialize``); load with :meth:`load`."""
    uses_wasi: bool
    imports: tuple[str, ...]
    size: int
    """Size of the uploaded WebAssembly binary in bytes."""
    uploaded_at: float

    def load(self, engine: wasmtime.Engine) -> wasmtime.Module:
        """The module, ready to instantiate on ``engine`` (made with :func:`wasm_config`)."""
        return wasmtime.Module.deserialize(engine, self.artifact)

    @property
    def label(self) -> str:
        return f"script {self.name!r} v{self.version}"


class ScriptStore:
    """Scripts by name; each upload of a name adds a version (1, 2, …)."""

    def __init__(self, cache_dir: Path | None = None) -> None:
        self._versions: dict[str, list[ScriptVersion]] = {}
        self._artifacts: dict[str, bytes] = {}
        self._engine = wasmtime.Engine(wasm_config())
        self._cache_dir = cache_dir
        if cache_dir is not None:
            cache_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            if cache_dir.stat().st_mode & 0o077:
                raise PermissionError(
                    f"script cache {cache_dir} is readable by others; compiled scripts are"
                    f" trusted native code: chmod 700 {cache_dir} or choose another directory"
                )

    async def upload(self, name: str, source: bytes | str) -> ScriptVersion:
        """Add a version of ``name`` from a WebAssembly binary or WAT text.

        Compiles in a worker thread (a large module takes seconds). Raises
        :class:`ScriptInvalid` with the reason when the module cannot be used.
        """
        return await trio.to_thread.run_sync(self.upload_sync, name, source)

    def upload_sync(self, name: str, source: bytes | str) -> ScriptVersion:
        """:meth:`upload` for callers outside Trio (tests, tools)."""
        if not isinstance(name, str) or not _NAME.match(name):
            raise ScriptInvalid(
                f"script name {name!r} is not valid: use a letter, then up to 63 letters,"
                " digits, '_', '-' or '.'"
            )
        binary = _to_binary(name, source)
        digest = hashlib.sha256(binary).hexdigest()
        artifact = self._artifacts.get(digest) or self._cached(digest)
        module = (
            wasmtime.Module.deserialize(self._engine, artifact)
            if artifact
            else _compile(self._engine, name, binary)
        )
        uses_wasi, imports = _check_abi(name, module)
        if artifact is None:
            artifact = bytes(module.serialize())
            self._store_cached(digest, artifact)
        self._artifacts[digest] = artifact
        versions = self._versions.setdefault(name, [])
        version = ScriptVersion(
            name=name,
            version=len(versions) + 1,
            sha256=digest,
            artifact=artifact,
            uses_wasi=uses_wasi,
            imports=imports,
            size=len(binary),
            uploaded_at=time.time(),
        )
        versions.append(version)
        return version

    def names(self) -> list[str]:
        return sorted(self._versions)

    def versions(self, name: str) -> Sequence[ScriptVersion]:
        return tuple(self._versions_of(name))

    def get(self, name: str, version: int | None = None) -> ScriptVersion:
        """Version ``version`` of ``name``, or its newest when ``version`` is None."""
        versions = self._versions_of(name)
        if version is None:
            return versions[-1]
        if not 1 <= version <= len(versions):
            raise UnknownScript(
                f"script {name!r} has no version {version}; it has versions 1 to {len(versions)}"
            )
        return versions[version - 1]

    def _versions_of(self, name: str) -> list[ScriptVersion]:
        try:
            return self._versions[name]
        except KeyError:
            known = ", ".join(self.names()) or "none uploaded yet"
            raise UnknownScript(f"no script named {name!r}; known: {known}") from None

    def _cache_path(self, digest: str) -> Path | None:
        if self._cache_dir is None:
            return None
        # Artifacts only load into the wasmtime build that made them.
        return self._cache_dir / f"{digest}-{_wasmtime_version()}.cwasm"

    def _cached(self, digest: str) -> bytes | None:
        path = self._cache_path(digest)
        if path is None or not path.exists():
            return None
        data = path.read_bytes()
        try:
            wasmtime.Module.deserialize(self._engine, data)
        except wasmtime.WasmtimeError:
            path.unlink(missing_ok=True)  # a stale or damaged artifact: compile afresh
            return None
        return data

    def _store_cached(self, digest: str, artifact: bytes) -> None:
        path = self._cache_path(digest)
        if path is None:
            return
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(artifact)
        tmp.replace(path)


def _wasmtime_version() -> str:
    from importlib.metadata import version

    return version("wasmtime")


def _to_binary(name: str, source: bytes | str) -> bytes:
    if isinstance(source, bytes | bytearray) and bytes(source[:4]) == b"\0asm":
        return bytes(source)
    try:
        text = source if isinstance(source, str) else bytes(source).decode("utf-8")
    except UnicodeDecodeError:
        raise ScriptInvalid(
            f"script {name!r}: neither a WebAssembly binary (it does not start with \\0asm)"
            " nor WAT text (it is not UTF-8)"
        ) from None
    try:
        return bytes(wasmtime.wat2wasm(text))
    except wasmtime.WasmtimeError as e:
        raise ScriptInvalid(f"script {name!r}: the WAT text does not parse: {e}") from None


def _compile(engine: wasmtime.Engine, name: str, binary: bytes) -> wasmtime.Module:
    try:
        return wasmtime.Module(engine, binary)
    except wasmtime.WasmtimeError as e:
        raise ScriptInvalid(f"script {name!r} is not valid WebAssembly: {e}") from None


def _signature(ty: wasmtime.FuncType) -> tuple[str, str]:
    return (
        "".join(str(p) for p in ty.params),
        "".join(str(r) for r in ty.results),
    )


def _expected(params: str, results: str) -> tuple[str, str]:
    return (
        "".join(_VALTYPES[c] for c in params),
        "".join(_VALTYPES[c] for c in results),
    )


def _check_abi(name: str, module: wasmtime.Module) -> tuple[bool, tuple[str, ...]]:
    """Refuse a module whose imports or exports do not fit ABI v1; returns (uses WASI, imports)."""
    uses_wasi = False
    imports: list[str] = []
    for imp in module.imports:
        where = f"{imp.module}.{imp.name}"
        if imp.module == abi.IMPORT_MODULE and imp.name in abi.IMPORTS:
            if not isinstance(imp.type, wasmtime.FuncType):
                raise ScriptInvalid(f"script {name!r} imports {where} as a non-function")
            want = _expected(*abi.IMPORTS[imp.name])
            got = _signature(imp.type)
            if got != want:
                raise ScriptInvalid(
                    f"script {name!r} imports {where} with signature ({got[0]}) -> ({got[1]}),"
                    f" but ABI v1 defines ({want[0]}) -> ({want[1]}); rebuild against the"
                    " current SDK (see wasm_scripts/ABI.md)"
                )
            imports.append(imp.name or "")
        elif imp.module == abi.WASI_MODULE and imp.name in abi.WASI_IMPORTS:
            uses_wasi = True
        elif imp.module == abi.IMPORT_MODULE:
            raise ScriptInvalid(
                f"script {name!r} imports {where}, which ABI v{abi.ABI_VERSION} does not have;"
                f" known imports: {', '.join(sorted(abi.IMPORTS))}"
            )
        else:
            raise ScriptInvalid(
                f"script {name!r} imports {where}: a script may import only from"
                f" {abi.IMPORT_MODULE!r} (and WASI preview 1); see wasm_scripts/ABI.md"
            )
    exports = {e.name: e.type for e in module.exports}
    run = exports.get("run")
    if not isinstance(run, wasmtime.FuncType) or _signature(run) != ("", "i32"):
        raise ScriptInvalid(
            f"script {name!r} must export a function run() -> i32; it exports:"
            f" {', '.join(sorted(exports)) or 'nothing'}"
        )
    if not isinstance(exports.get("memory"), wasmtime.MemoryType):
        raise ScriptInvalid(f"script {name!r} must export its linear memory as 'memory'")
    init = exports.get("_initialize")
    if init is not None and (
        not isinstance(init, wasmtime.FuncType) or _signature(init) != ("", "")
    ):
        raise ScriptInvalid(
            f"script {name!r} exports _initialize with a signature other than () -> ()"
        )
    cleanup = exports.get("cleanup")
    if cleanup is not None and (
        not isinstance(cleanup, wasmtime.FuncType)
        or _signature(cleanup) not in (("", ""), ("", "i32"))
    ):
        raise ScriptInvalid(
            f"script {name!r} exports cleanup, but not as a function () -> () or () -> i32"
            " (see wasm_scripts/ABI.md, 'How a run ends')"
        )
    return uses_wasi, tuple(imports)
