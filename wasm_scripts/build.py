"""Build every example script into wasm_scripts/build/<language>/<name>.wasm.

    python -m wasm_scripts.build            # build what the installed toolchains allow
    python -m wasm_scripts.build --strict   # fail if any toolchain is missing (CI)

Each language uses the toolchain :func:`labd.scripting.compile.compile_source` picks.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from labd.scripting.compile import SUPPORTED, CompileError, ToolchainMissing, compile_source

HERE = Path(__file__).resolve().parent
EXAMPLES = HERE / "examples"
BUILD = HERE / "build"


def examples() -> list[Path]:
    return sorted(p for p in EXAMPLES.glob("*/*") if p.suffix in SUPPORTED)


def build(source: Path) -> Path:
    """Compile one example; returns where the binary went."""
    target = BUILD / source.parent.name / f"{source.stem}.wasm"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(compile_source(source))
    return target


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
