import os
import stat

import pytest
import wasmtime

from labd.scripting import ScriptInvalid, ScriptStore, UnknownScript
from tests.labd.scripting.wat import module

OK = module("log", body="(i32.const 0)")


def test_versions_count_up_and_latest_is_default() -> None:
    store = ScriptStore()
    v1 = store.upload_sync("scan", OK)
    v2 = store.upload_sync("scan", wasmtime.wat2wasm(module(body="(i32.const 1)")))
    assert (v1.version, v2.version) == (1, 2)
    assert store.get("scan") is v2
    assert store.get("scan", 1) is v1
    assert store.names() == ["scan"]
    assert [v.version for v in store.versions("scan")] == [1, 2]
    assert v1.imports == ("log",) and not v1.uses_wasi


def test_unknown_names_and_versions_say_what_exists() -> None:
    store = ScriptStore()
    store.upload_sync("scan", OK)
    with pytest.raises(UnknownScript, match=r"no script named 'sweep'; known: scan"):
        store.get("sweep")
    with pytest.raises(UnknownScript, match="has no version 3; it has versions 1 to 1"):
        store.get("scan", 3)


def test_unknown_import_is_refused_at_upload_naming_it() -> None:
    wat = """(module (import "labd_v1" "frobnicate" (func (param i32) (result i32)))
             (memory (export "memory") 1) (func (export "run") (result i32) (i32.const 0)))"""
    with pytest.raises(ScriptInvalid, match=r"labd_v1\.frobnicate, which ABI v1 does not have"):
        ScriptStore().upload_sync("bad", wat)


def test_import_from_another_module_is_refused() -> None:
    wat = """(module (import "env" "system" (func (param i32) (result i32)))
             (memory (export "memory") 1) (func (export "run") (result i32) (i32.const 0)))"""
    with pytest.raises(ScriptInvalid, match=r"imports env\.system: a script may import only"):
        ScriptStore().upload_sync("bad", wat)


def test_wrong_import_signature_is_refused() -> None:
    wat = """(module (import "labd_v1" "sleep_ms" (func (param f64) (result i32)))
             (memory (export "memory") 1) (func (export "run") (result i32) (i32.const 0)))"""
    with pytest.raises(
        ScriptInvalid,
        match=r"sleep_ms with signature \(f64\) -> \(i32\), but ABI v1 defines \(i32\)",
    ):
        ScriptStore().upload_sync("bad", wat)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (b"\x00asm\x01\x00\x00\x00\xff", "not valid WebAssembly"),
        (b"\xff\xfe garbage", "nor WAT text"),
        ("(module (func", "WAT text does not parse"),
        ('(module (memory (export "memory") 1))', r"must export a function run\(\) -> i32"),
        (
            '(module (func (export "run") (result i32) (i32.const 0)))',
            "must export its linear memory",
        ),
    ],
)
def test_modules_that_cannot_run_are_refused_with_the_reason(
    source: bytes | str, message: str
) -> None:
    with pytest.raises(ScriptInvalid, match=message):
        ScriptStore().upload_sync("bad", source)


def test_bad_names_are_refused() -> None:
    with pytest.raises(ScriptInvalid, match="is not valid: use a letter"):
        ScriptStore().upload_sync("../etc", OK)


def test_compiled_cache_is_private_and_reused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    cache = tmp_path / "cache"
    first = ScriptStore(cache).upload_sync("scan", OK)
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700
    (artifact,) = cache.iterdir()
    assert stat.S_IMODE(artifact.stat().st_mode) == 0o600
    assert artifact.read_bytes() == first.artifact
    # A damaged artifact is recompiled, not loaded.
    artifact.write_bytes(b"not an artifact")
    again = ScriptStore(cache).upload_sync("scan", OK)
    assert again.sha256 == first.sha256
    assert artifact.read_bytes() == again.artifact != b"not an artifact"


def test_a_cache_others_can_read_is_refused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    cache = tmp_path / "open"
    cache.mkdir()
    os.chmod(cache, 0o755)
    with pytest.raises(PermissionError, match="chmod 700"):
        ScriptStore(cache)
