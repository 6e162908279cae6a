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
    # each prototype takes as many parameters as the import, f64 where the ABI has one
    prototypes = re.findall(r"LABD_IMPORT\((\w+)\) \w+ labd_\w+\(([^)]*)\);", header)
    assert len(prototypes) == len(IMPORTS)
    for name, params in prototypes:
        declared = [p.strip() for p in params.split(",") if p.strip() not in ("", "void")]
        kinds = "".join("F" if p.startswith("double ") and "*" not in p else "i" for p in declared)
        assert kinds == IMPORTS[name][0].replace("I", "i"), name


def test_rust_and_zig_declare_every_import() -> None:
    rust = (SDK / "rust" / "labd.rs").read_text()
    zig = (SDK / "zig" / "labd.zig").read_text()
    assert set(re.findall(r"pub fn (\w+)\(", rust.split('extern "C" {')[1].split("}")[0])) == set(
        IMPORTS
    )
    assert set(re.findall(r'extern "labd_v1" fn (\w+)\(', zig)) == set(IMPORTS)
    for code in Errno:
        assert f"pub const {code.name}: Error = {code.value};" in rust
    for kind in Kind:
        assert f"const {kind.name}: i32 = {kind.value};" in rust
    zig_kinds = re.search(r"pub const Kind = enum\(i32\) \{([^}]*)\}", zig)
    assert zig_kinds is not None
    assert dict(re.findall(r"(\w+) = (\d+)", zig_kinds[1])) == {
        k.name.lower(): str(k.value) for k in Kind
    }


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


def test_abi_v1_numbers_never_change() -> None:
    # v1 only grows at the end: a module built against any v1 SDK keeps its meaning.
    assert {k.name: k.value for k in Kind} == {
        "MOVABLE": 1, "STOPPABLE": 2, "READABLE": 3, "FRAME_PRODUCER": 4,
        "EXPOSURE_CONTROL": 5, "TEMPERATURE_SENSOR": 6, "VOLTAGE_SOURCE": 7,
        "SWITCHABLE": 8, "CONFIGURABLE": 9,
    }  # fmt: skip
    assert [e.value for e in Errno] == list(range(-1, -13, -1))
    assert IMPORTS["param_get_f64"] == ("iiii", "i")
    assert IMPORTS["param_set_f64"] == ("iiiF", "i")
    assert IMPORTS["param_get_text"] == ("iiiii", "i")
    assert IMPORTS["param_set_text"] == ("iiiii", "i")
    assert list(IMPORTS)[-1:] == ["result_row"]  # appended after the parameters
    assert IMPORTS["result_row"] == ("iiii", "i")
