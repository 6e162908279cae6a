"""Write small test guests in WAT without repeating import signatures."""

from __future__ import annotations

from labd.scripting import abi

_TYPES = {"i": "i32", "I": "i64", "F": "f64"}


def imports(*names: str) -> str:
    """``(import "labd_v1" …)`` lines for ``names``, each bound to ``$name``."""
    lines = []
    for name in names:
        params, results = abi.IMPORTS[name]
        p = " ".join(_TYPES[c] for c in params)
        r = " ".join(_TYPES[c] for c in results)
        lines.append(f'(import "labd_v1" "{name}" (func ${name} (param {p}) (result {r})))')
    return "\n".join(lines)


def module(*import_names: str, body: str, pages: int = 1, extra: str = "") -> str:
    """A guest whose ``run`` has ``body`` (which must leave an i32 on the stack)."""
    return f"""(module
  {imports(*import_names)}
  (memory (export "memory") {pages})
  {extra}
  (func (export "run") (result i32)
    {body}))"""
