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
