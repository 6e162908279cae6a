"""Turn a script's source file into WebAssembly, for ``labd run FILE``.

The extension picks the toolchain; each is one that builds offline on a Debian machine:
WAT (built into wasmtime), C (Debian ``clang`` + ``lld``, else the ``ziglang`` package),
Rust (Debian ``rustc`` + ``libstd-rust-dev-wasm32``) and Zig (the ``ziglang`` package).
The guest SDKs come from ``wasm_scripts/sdk`` (or ``$LABD_SDK_DIR``).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import wasmtime

from labd.scripting.errors import ScriptError

RUSTC = "/usr/bin/rustc"
"""Debian's rustc: a rustup toolchain earlier on PATH usually has no wasm32 standard library."""

SUPPORTED = (".wat", ".wasm", ".c", ".rs", ".zig")


class CompileError(ScriptError):
    """The source did not compile; the message carries the compiler's own output."""

    code = "compile-failed"


class ToolchainMissing(CompileError):
    """The compiler for this language is not installed; the message says how to get it."""

    code = "toolchain-missing"


def sdk_dir() -> Path:
    """Where the guest SDKs are: ``$LABD_SDK_DIR`` or ``wasm_scripts/sdk`` of this checkout."""
    path = Path(
        os.environ.get("LABD_SDK_DIR")
        or Path(__file__).resolve().parents[2] / "wasm_scripts" / "sdk"
    )
    if not path.is_dir():
        raise ToolchainMissing(
            f"the guest SDK directory {path} does not exist; set LABD_SDK_DIR to wasm_scripts/sdk"
        )
    return path


def compile_source(path: Path | str) -> bytes:
    """The WebAssembly binary for ``path`` (.wat, .wasm, .c, .rs or .zig)."""
    path = Path(path)
    if not path.is_file():
        raise CompileError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix == ".wasm":
        return path.read_bytes()
    if suffix == ".wat":
        try:
            return bytes(wasmtime.wat2wasm(path.read_text()))
        except wasmtime.WasmtimeError as e:
            raise CompileError(f"{path}: {e}") from None
    builders = {".c": _c, ".rs": _rust, ".zig": _zig}
    if suffix not in builders:
        raise CompileError(
            f"{path}: cannot compile {suffix or 'files without an extension'};"
            f" supported: {', '.join(SUPPORTED)}"
        )
    with tempfile.TemporaryDirectory(prefix="labd-compile-") as tmp:
        out = Path(tmp) / "out.wasm"
        builders[suffix](path.resolve(), out, Path(tmp))
        return out.read_bytes()


def _c(source: Path, out: Path, tmp: Path) -> None:
    flags = ["-O2", "-nostdlib", "-I", str(sdk_dir() / "c"), "-o", str(out), str(source)]
    link = ["-Wl,--no-entry", "-Wl,--export=run"]
    if shutil.which("clang") and shutil.which("wasm-ld"):
        _run(["clang", "--target=wasm32", *flags, *link], source)
    else:
        # zig cc bundles clang and lld: the fallback where Debian's are not installed
        _run([*_zig_command(), "cc", "--target=wasm32-freestanding", *flags, *link], source)


def _rust(source: Path, out: Path, tmp: Path) -> None:
    if not Path(RUSTC).exists():
        raise ToolchainMissing(
            f"{source}: Rust scripts need Debian's rustc with the wasm32 standard library:"
            " apt-get install rustc libstd-rust-dev-wasm32"
        )
    common = [RUSTC, "--edition", "2021", "--target", "wasm32-unknown-unknown", "-O"]
    _run(
        [
            *common,
            "--crate-type",
            "rlib",
            "--out-dir",
            str(tmp),
            str(sdk_dir() / "rust" / "labd.rs"),
        ],
        source,
    )
    _run(
        [
            *common, "--crate-type", "cdylib", "-C", "strip=symbols",
            "--extern", f"labd={tmp / 'liblabd.rlib'}", "-L", str(tmp), "-o", str(out), str(source),
        ],
        source,
    )  # fmt: skip


def _zig(source: Path, out: Path, tmp: Path) -> None:
    _run(
        [
            *_zig_command(), "build-exe", "-target", "wasm32-freestanding", "-fno-entry",
            "-rdynamic", "-O", "ReleaseSmall", "--cache-dir", str(tmp / "cache"),
            "--dep", "labd", f"-Mroot={source}", f"-Mlabd={sdk_dir() / 'zig' / 'labd.zig'}",
            f"-femit-bin={out}",
        ],
        source,
    )  # fmt: skip


def _zig_command() -> list[str]:
    if importlib.util.find_spec("ziglang") is None:
        raise ToolchainMissing(
            "Zig (and the C fallback) need the PyPI package ziglang: uv sync, or pip install ziglang"
        )
    return [sys.executable, "-m", "ziglang"]


def _run(command: list[str], source: Path) -> None:
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=300, cwd=source.parent
        )
    except FileNotFoundError:
        raise ToolchainMissing(f"{source}: {command[0]} is not installed") from None
    if done.returncode != 0:
        output = (done.stderr or done.stdout).strip()
        raise CompileError(f"{source} did not compile ({Path(command[0]).name}):\n{output}")
