"""compile_source for Go and AssemblyScript: the compilers' own messages, missing tools."""

import shutil
from pathlib import Path

import pytest
import trio

from labd.scripting import ScriptFailed
from labd.scripting.compile import CompileError, ToolchainMissing, compile_source
from tests.labd.scripting.simlab import script_engine, sim_lab
from wasm_scripts.build import HERE


def test_go_errors_carry_the_compilers_message(tmp_path: Path) -> None:
    source = tmp_path / "broken.go"
    source.write_text(
        'package main\n\nimport "labd"\n\n//go:wasmexport run\n'
        "func run() int32 { return labd.Status(undefinedThing()) }\n\nfunc main() {}\n"
    )
    with pytest.raises(CompileError, match=r"broken\.go:6:\d+: undefined: undefinedThing"):
        compile_source(source)


def test_assemblyscript_errors_carry_the_compilers_message(tmp_path: Path) -> None:
    source = tmp_path / "broken.ts"
    source.write_text("export function run(): i32 { return undefinedThing; }\n")
    with pytest.raises(CompileError, match="Cannot find name 'undefinedThing'"):
        compile_source(source)


def test_without_asc_the_error_says_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An SDK directory with no node_modules beside it, and no asc on PATH.
    shutil.copytree(HERE / "sdk", tmp_path / "sdk")
    monkeypatch.setenv("LABD_SDK_DIR", str(tmp_path / "sdk"))
    monkeypatch.setenv("PATH", str(tmp_path))
    source = tmp_path / "scan.ts"
    shutil.copyfile(HERE / "examples" / "assemblyscript" / "scan.ts", source)
    with pytest.raises(ToolchainMissing, match="npm ci"):
        compile_source(source)


def test_an_assemblyscript_abort_is_logged_with_where_it_happened(tmp_path: Path) -> None:
    source = tmp_path / "aborts.ts"
    source.write_text("export function run(): i32 {\n  assert(false, 'no beam');\n  return 0;\n}\n")
    binary = compile_source(source)

    async def main() -> None:
        async with sim_lab() as lab, script_engine(lab) as engine:
            await engine.store.upload("aborts", binary)
            run = engine.start("aborts")
            with pytest.raises(ScriptFailed, match="unreachable") as failed:
                await run.wait()
            assert failed.value.code == "trap"
            assert any("abort: no beam at aborts.ts:2:" in line.text for line in run.log)

    trio.run(main)
