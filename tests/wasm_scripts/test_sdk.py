"""The SDKs say what labd/scripting/abi.py says: same codes, kinds and imports."""

import re
from pathlib import Path

from labd.scripting.abi import IMPORTS, Errno, Kind

SDK = Path(__file__).resolve().parents[2] / "wasm_scripts" / "sdk"


def test_c_header_matches_the_abi() -> None:
    header = (SDK / "c" / "labd.h").read_text()
    codes = {m[0]: int(m[1]) for m in re.findall(r"#define LABD_(E_\w+)\s+\((-\d+)\)", header)}
    assert codes == {e.name: e.value for e in Errno}
    kinds = dict(re.findall(r"#define LABD_(\w+)\s+(\d+)\n", header))
    assert {k.name: str(k.value) for k in Kind}.items() <= kinds.items()
    assert set(re.findall(r"LABD_IMPORT\((\w+)\) int", header)) == set(IMPORTS)


def test_rust_and_zig_declare_every_import() -> None:
    rust = (SDK / "rust" / "labd.rs").read_text()
    zig = (SDK / "zig" / "labd.zig").read_text()
    assert set(re.findall(r"pub fn (\w+)\(", rust.split('extern "C" {')[1].split("}")[0])) == set(
        IMPORTS
    )
    assert set(re.findall(r'extern "labd_v1" fn (\w+)\(', zig)) == set(IMPORTS)
    for code in Errno:
        assert f"pub const {code.name}: Error = {code.value};" in rust


def test_go_and_assemblyscript_declare_every_import() -> None:
    go = (SDK / "go" / "imports.go").read_text()
    assert set(re.findall(r"//go:wasmimport labd_v1 (\w+)\n", go)) == set(IMPORTS)
    for name in IMPORTS:  # each directive sits on the function it imports
        assert f"//go:wasmimport labd_v1 {name}\nfunc {name}(" in go
    go_sdk = (SDK / "go" / "labd.go").read_text()
    for code in Errno:
        assert re.search(rf"\b{code.name.replace('_', '')}\s+Errno = {code.value}\n", go_sdk)
        assert f'"{code.name}"' in go_sdk  # its name in error messages
    for kind in Kind:
        camel = "".join(w.capitalize() for w in kind.name.split("_"))
        assert re.search(rf"kind{camel}\s+= {kind.value}\n", go_sdk)

    ts = (SDK / "assemblyscript" / "labd" / "index.ts").read_text()
    declared = re.findall(r'@external\("labd_v1", "(\w+)"\) export declare function (\w+)\(', ts)
    assert all(a == b for a, b in declared)
    assert {name for name, _ in declared} == set(IMPORTS)
    for code in Errno:
        assert f"export const {code.name}: i32 = {code.value};" in ts
    for kind in Kind:
        assert f"const {kind.name}: i32 = {kind.value};" in ts
