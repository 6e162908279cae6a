from pathlib import Path

import pytest

from labd.scripting.compile import CompileError, ToolchainMissing, compile_source


def test_wat_and_wasm_pass_through(tmp_path: Path) -> None:
    wat = tmp_path / "x.wat"
    wat.write_text(
        '(module (memory (export "memory") 1) (func (export "run") (result i32) (i32.const 0)))'
    )
    binary = compile_source(wat)
    assert binary[:4] == b"\0asm"
    wasm = tmp_path / "x.wasm"
    wasm.write_bytes(binary)
    assert compile_source(wasm) == binary


def test_compiler_errors_are_reported_with_the_compilers_output(tmp_path: Path) -> None:
    source = tmp_path / "broken.c"
    source.write_text('#include "labd.h"\nint32_t run(void) { return undefined_thing; }\n')
    with pytest.raises(CompileError, match="undefined_thing"):
        compile_source(source)


def test_unsupported_extension_lists_what_is_supported(tmp_path: Path) -> None:
    source = tmp_path / "scan.py"
    source.write_text("print('hi')")
    with pytest.raises(CompileError, match=r"cannot compile \.py; supported: \.wat, \.wasm, \.c"):
        compile_source(source)


def test_missing_sdk_is_a_toolchain_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABD_SDK_DIR", str(tmp_path / "nowhere"))
    source = tmp_path / "scan.zig"
    source.write_text("")
    with pytest.raises(ToolchainMissing, match="set LABD_SDK_DIR"):
        compile_source(source)
