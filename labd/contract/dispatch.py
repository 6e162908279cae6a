"""The dispatch guard: every server method's parameters checked before our code runs.

:func:`guard_servers` (installed on every ``<Interface>.Server`` class when the schema is
loaded, :mod:`labd.contract.schema`) stands between pycapnp and every server method, the
daemon's and a client's sinks alike: it decodes and checks the parameters itself, so a
malformed one (invalid UTF-8, a list where text is expected, a pointer out of bounds) is
refused as ``invalid-request`` naming the parameter, and whatever the method raises
leaves through :func:`~labd.contract.errors.to_wire_error` as a one-line
:class:`~labd.contract.errors.WireError`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

from labd.contract.errors import WireError, to_wire_error

INVALID_REQUEST = "invalid-request"
UNIMPLEMENTED = "capability-missing"

_PRIMITIVE_NAMES = {
    "void": "Void", "bool": "Bool", "int8": "Int8", "int16": "Int16", "int32": "Int32",
    "int64": "Int64", "uint8": "UInt8", "uint16": "UInt16", "uint32": "UInt32",
    "uint64": "UInt64", "float32": "Float32", "float64": "Float64", "text": "Text",
    "data": "Data", "anyPointer": "AnyPointer",
}  # fmt: skip


class _Malformed(Exception):
    """A parameter could not be decoded; ``path`` says where inside it (empty: itself)."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(path, reason)
        self.path = path
        self.reason = reason


Check = Callable[[Any], None]
"""Reads every part of a decoded value that pycapnp decodes lazily; raises on bad input."""


def guard_servers(module: Any) -> None:
    """Install the dispatch guard on every ``<Interface>.Server`` class of a loaded schema.

    pycapnp calls ``<method>_context(context)`` when a server has it and otherwise decodes
    the parameters itself, outside any code of ours, where a decoding error becomes a
    traceback sent to the peer. Defining ``<method>_context`` on the generated base class
    takes that path over for every subclass (Bootstrap, Lab, every capability server, the
    client's sinks) without touching them; a subclass still implements plain ``<method>``.
    """
    for interface_name, interface in _interfaces(module):
        schema = interface.schema
        for method_name, method in schema.methods_inherited.items():
            guard = _dispatch(interface_name, method_name, method)
            setattr(interface.Server, method_name + "_context", guard)


def _interfaces(module: Any) -> Iterator[tuple[str, Any]]:
    for node in module._nodeProto.nestedNodes:
        child = getattr(module, node.name)
        if hasattr(child, "Server"):
            yield node.name, child
        yield from _interfaces(child)


def _dispatch(interface_name: str, method_name: str, method: Any) -> Any:
    params = method.param_type
    fields = [(name, _type_name(params.fields[name]), _field_check(params.fields[name]))
              for name in params.fieldnames]  # fmt: skip
    results = [f.name for f in sorted(method.result_type.node.struct.fields,
                                      key=lambda f: f.codeOrder)]  # fmt: skip

    async def dispatch(server: Any, _context: Any) -> None:
        kwargs: dict[str, Any] = {}
        name, type_name = "", "parameters"
        try:
            decoded = _context.params
            for field in fields:
                name, type_name, check = field
                kwargs[name] = value = getattr(decoded, name)
                if check is not None:
                    check(value)
        except _Malformed as exc:
            reason = f"{exc.reason}, in {name}{exc.path}"
            raise _invalid(method_name, name, type_name, reason) from None
        except Exception as exc:
            raise _invalid(method_name, name, type_name, _reason(exc)) from None
        implementation = getattr(server, method_name, None)
        try:
            if implementation is None:
                raise WireError(
                    UNIMPLEMENTED, f"{interface_name}.{method_name} is not implemented here"
                )
            returned = await implementation(**kwargs, _context=_context)
            _fill_results(_context, results, returned, method_name)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            raise to_wire_error(exc) from None

    dispatch.__name__ = dispatch.__qualname__ = method_name + "_context"
    return dispatch


def _invalid(method_name: str, name: str, type_name: str, reason: str) -> WireError:
    subject = f"parameter {name} is not valid {type_name}" if name else "malformed parameters"
    return WireError(INVALID_REQUEST, f"{method_name}: {subject} ({reason})")


def _fill_results(context: Any, names: list[str], returned: Any, method_name: str) -> None:
    """Set the results from what a method returned, as pycapnp does for plain methods."""
    if returned is None:
        return
    values = returned if isinstance(returned, tuple) else (returned,)
    if len(values) > len(names):
        raise TypeError(f"{method_name} returned {len(values)} values for {len(names)} results")
    results = context.results
    for name, value in zip(names, values, strict=False):
        setattr(results, name, value)


def _reason(exc: BaseException) -> str:
    """One line on why a value does not decode, without KJ's file, assertion and stack."""
    if isinstance(exc, UnicodeDecodeError):
        return f"invalid UTF-8 at byte {exc.start}"
    text = str(getattr(exc, "description", None) or exc)
    text = text.split("stack:")[0]
    if "'\\0'" in text:
        return "text is not NUL-terminated"
    if text.startswith("expected ") or "failed: expected " in text:
        # KJ: "<file>:<line>: failed: expected <condition> [values]; <what is wrong>"
        text = text.partition("; ")[2]
    text = " ".join("".join(c if c.isprintable() else " " for c in text).split())
    first_sentence = text.partition(". ")[0].removesuffix(".")
    return first_sentence[:200] or f"undecodable ({type(exc).__name__})"


def _type_name(field: Any) -> str:
    return _type_text(field.proto.slot.type, field)


def _type_text(type_proto: Any, field: Any) -> str:
    kind = type_proto.which()
    if kind in ("struct", "interface", "enum"):
        return str(_schema_of(field).node.displayName).rpartition(":")[2]
    if kind == "list":
        element = type_proto.list.elementType
        inner = _element_schema(field) if element.which() in ("struct", "list") else None
        return f"List({_type_text(element, inner)})"
    return _PRIMITIVE_NAMES.get(kind, str(kind))


def _schema_of(field: Any) -> Any:
    """The schema of a field, or of a list's element (``field`` is then the list schema)."""
    return field.schema if hasattr(field, "proto") else field


def _element_schema(field: Any) -> Any:
    return _schema_of(field).elementType


def _field_check(field: Any) -> Check | None:
    """What to read of a field beyond pycapnp's own decoding of it (None: nothing)."""
    if field.proto.which() == "group":
        return _struct_check(field.schema)
    return _type_check(field.proto.slot.type, field)


def _type_check(type_proto: Any, field: Any) -> Check | None:
    kind = type_proto.which()
    if kind == "struct":
        return _struct_check(_schema_of(field))
    if kind != "list":
        return None  # scalars, Text, Data, capabilities: decoded (or refused) when read
    element = type_proto.list.elementType
    element_kind = element.which()
    if element_kind in ("struct", "list"):
        inner = _type_check(element, _element_schema(field))
    elif element_kind in ("text", "data", "interface"):
        inner = None
    else:
        return None  # a list of scalars is checked whole when its pointer is read
    return _list_check(inner, structs=element_kind == "struct")


AMPLIFIED_LIST_ELEMENTS = 1024
"""More structs of no size than this in a list parameter are refused: such a list costs
its sender one word whatever length it announces (the traversal limit lets 2**28 of them
through), and reading each element costs the daemon's loop microseconds."""


def _list_check(inner: Check | None, *, structs: bool) -> Check:
    def check(values: Any) -> None:
        count = len(values)
        if structs and count > AMPLIFIED_LIST_ELEMENTS and values[0].total_size.word_count == 0:
            raise _Malformed("", f"a list of {count} structs of no size")
        for index in range(count):
            try:
                value = values[index]  # reading an element decodes it
                if inner is not None:
                    inner(value)
            except _Malformed as exc:
                raise _Malformed(f"[{index}]{exc.path}", exc.reason) from None
            except Exception as exc:
                raise _Malformed(f"[{index}]", _reason(exc)) from None

    return check


class _StructCheck:
    """Reads every field of a struct (its structs, its lists...) so nothing fails later.

    Built once per struct type and filled in after it is registered, so that a recursive
    type refers to its own check instead of building it forever.
    """

    _by_type: ClassVar[dict[int, _StructCheck]] = {}

    @classmethod
    def of(cls, struct_schema: Any) -> _StructCheck:
        type_id = int(struct_schema.node.id)
        if type_id not in cls._by_type:
            check = cls._by_type[type_id] = cls()
            check.fields = [(name, _field_check(struct_schema.fields[name]))
                            for name in struct_schema.non_union_fields]  # fmt: skip
            check.union = {name: _field_check(struct_schema.fields[name])
                           for name in struct_schema.union_fields}  # fmt: skip
        return cls._by_type[type_id]

    def __init__(self) -> None:
        self.fields: list[tuple[str, Check | None]] = []
        self.union: dict[str, Check | None] = {}

    def __call__(self, value: Any) -> None:
        fields = self.fields
        if self.union:
            try:
                active = str(value.which())
            except Exception as exc:
                raise _Malformed(".which()", _reason(exc)) from None
            fields = [*fields, (active, self.union.get(active))]
        for name, check in fields:
            try:
                child = getattr(value, name)
                if check is not None:
                    check(child)
            except _Malformed as exc:
                raise _Malformed(f".{name}{exc.path}", exc.reason) from None
            except Exception as exc:
                raise _Malformed(f".{name}", _reason(exc)) from None


def _struct_check(struct_schema: Any) -> Check:
    return _StructCheck.of(struct_schema)
