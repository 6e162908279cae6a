"""Build every example script into wasm_scripts/build/<language>/<name>.wasm.

    python -m wasm_scripts.build            # build what the installed toolchains allow
    python -m wasm_scripts.build --strict   # fail if any toolchain is missing (CI)

Each language uses the toolchain :func:`labd.scripting.compile.compile_source` picks.
Builds are cached in wasm_scripts/build/cache, keyed by a hash of everything that goes
into one: the source, its language's SDK, the compile flags and the compiler's files, so
an edit to any of them rebuilds. AssemblyScript takes ~2 s a build, Go ~0.4 s with a warm
Go cache (~5 s cold); the tests build every example more than once.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import sys
import time
from pathlib import Path

from labd.scripting import compile as compiler
from labd.scripting.compile import SUPPORTED, CompileError, ToolchainMissing

HERE = Path(__file__).resolve().parent
EXAMPLES = HERE / "examples"
BUILD = HERE / "build"
CACHE = BUILD / "cache"


def examples() -> list[Path]:
    return sorted(p for p in EXAMPLES.glob("*/*") if p.suffix in SUPPORTED)


def build(source: Path) -> Path:
    """Compile one example (or take it from the cache); returns where the binary went."""
    target = BUILD / source.parent.name / f"{source.stem}.wasm"
    target.parent.mkdir(parents=True, exist_ok=True)
    cached = CACHE / f"{build_key(source)}.wasm"
    if not cached.is_file():
        binary = compiler.compile_source(source)
        CACHE.mkdir(parents=True, exist_ok=True)
        partial = cached.with_suffix(".partial")
        partial.write_bytes(binary)
        partial.replace(cached)  # atomic: a concurrent build never reads half a binary
    shutil.copyfile(cached, target)
    return target


def build_key(source: Path) -> str:
    """A hash of everything that goes into building ``source``."""
    digest = hashlib.sha256()

    def add(label: str, data: bytes) -> None:
        digest.update(f"{label}\0{len(data)}\0".encode())
        digest.update(data)

    add("source", source.read_bytes())
    add("flags", Path(compiler.__file__).read_bytes())
    sdk = compiler.sdk_dir() / source.parent.name
    for path in sorted(sdk.rglob("*")) if sdk.is_dir() else []:
        if path.is_file():
            add(f"sdk {path.relative_to(sdk)}", path.read_bytes())
    for path in compiler.compiler_files(source.suffix):
        stat = path.resolve().stat()  # a reinstalled compiler is a new compiler
        add(f"compiler {path.resolve()}", f"{stat.st_size} {stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:32]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--strict", action="store_true", help="a missing toolchain is an error")
    options = parser.parse_args(argv)
    failed = missing = 0
    for source in examples():
        name = source.relative_to(EXAMPLES)
        started = time.perf_counter()
        try:
            target = build(source)
        except ToolchainMissing as e:
            missing += 1
            print(f"skipped {name}: {e}", file=sys.stderr)
        except CompileError as e:
            failed += 1
            print(f"FAILED  {name}: {e}", file=sys.stderr)
        else:
            took = time.perf_counter() - started
            print(f"built   {name} -> {target} ({target.stat().st_size} bytes, {took:.1f} s)")
    return 1 if failed or (missing and options.strict) else 0


if __name__ == "__main__":
    sys.exit(main())
