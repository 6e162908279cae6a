"""Each capability is declared once (capabilities/declarations.py); everything that is not
derived from the declaration is checked against it here: the wire schema, the script ABI's
kinds (and through tests/wasm_scripts/test_sdk.py every SDK), the GUI."""

from __future__ import annotations

import inspect
import re

import pytest

from capabilities import CAPABILITIES
from capabilities.declarations import CapabilityDecl, camel, declared
from labd.contract import schema
from labd.contract.restriction import RANGED_QUANTITIES
from labd.rpc.capability_servers import CUSTOM_SERVERS
from labd.scripting.abi import Kind

_s = schema.load()
DECLS = declared()


def wire_methods(interface: object) -> dict[str, list[str]]:
    methods = interface.schema.methods  # type: ignore[attr-defined]
    return {name: list(method.param_type.fieldnames) for name, method in methods.items()}


@pytest.mark.parametrize("decl", DECLS, ids=[d.name for d in DECLS])
def test_the_schema_has_the_declared_interface_method_for_method(decl: CapabilityDecl) -> None:
    interface = getattr(_s, decl.name)
    declared_methods = {}
    for method in decl.methods:
        signature = inspect.signature(getattr(decl.protocol, method.name))
        declared_methods[method.wire] = [camel(p) for p in signature.parameters if p != "self"]
    on_the_wire = wire_methods(interface)
    if decl.name in CUSTOM_SERVERS:  # hand-written: it may take and offer more
        for name, params in declared_methods.items():
            assert on_the_wire[name][: len(params)] == params
    else:
        assert on_the_wire == declared_methods


def test_the_capabilities_struct_has_one_field_per_capability_in_declaration_order() -> None:
    fields = _s.Capabilities.schema.fields
    ordered = sorted(fields.values(), key=lambda f: f.proto.ordinal.explicit)
    assert [f.proto.name for f in ordered] == [d.wire_field for d in DECLS]
    assert list(CAPABILITIES) == [d.name for d in DECLS]
    assert "Movable" in CAPABILITIES and "TemperatureController" in CAPABILITIES


def test_every_ranged_set_point_is_a_field_of_the_wire_restriction() -> None:
    assert set(RANGED_QUANTITIES) <= set(_s.Restriction.schema.fieldnames)
    assert RANGED_QUANTITIES == ("position", "voltage", "current")


def test_every_script_kind_is_a_declared_capability_named_after_it() -> None:
    by_kind = {d.abi_kind: d for d in DECLS if d.abi_kind is not None}
    assert sorted(by_kind) == sorted(int(k) for k in Kind)
    for kind in Kind:
        decl = by_kind[int(kind)]
        assert kind.name == re.sub(r"(?<!^)(?=[A-Z])", "_", decl.name).upper()
        assert kind.protocol is decl.protocol


def test_every_capability_has_a_section_in_the_gui() -> None:
    from gui.controls import unknown_capabilities

    assert unknown_capabilities(CAPABILITIES) == []
    assert unknown_capabilities(["Movable", "FromTheFuture"]) == ["FromTheFuture"]


def test_a_method_name_is_one_capability_s_alone() -> None:
    names = [m.name for d in DECLS for m in d.methods]
    assert len(names) == len(set(names))


def test_mutating_methods_are_marked_and_queries_are_not() -> None:
    """A method that changes the instrument must say so: a read-only share relies on it."""
    for decl in DECLS:
        for method in decl.methods:
            looks_like_a_change = re.match(r"(set_|move_|inject_|arm$|trigger$|stop$)", method.name)
            assert method.mutates == bool(looks_like_a_change), f"{decl.name}.{method.name}"
