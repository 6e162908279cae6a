"""A structure-aware fuzzer of raw Cap'n Proto RPC messages against a real ``labd serve``.

Each example opens a raw connection (tests/hardening/raw_rpc.py), reaches a capability the
way a client would (the Bootstrap; after unlocking with the real token the Lab, an
instrument, one of its capabilities, the script engine) and sends one call built from
labd.capnp's own schema: the right interface and method most of the time, parameters laid
out as the method's parameter struct with each field filled by a value of its type or,
often, by anything else (invalid UTF-8, a list where text is expected, far pointers,
pointers out of bounds, deep nesting, huge list announcements), a cap table with bogus
entries, and sometimes bytes flipped or the framing lying about segments and sizes.

After every example: the daemon is alive, every message it sent decodes with rpc.capnp
(results with the method's result struct), no text in them carries a traceback, a native
stack, an address or a source path, and a fresh honest client still lists the
instruments. ``LABD_FUZZ_EXAMPLES`` (default 150 per test, the file well under a minute)
runs more (with ``--timeout=0``: pytest-timeout stops a test at 120 s).
"""

from __future__ import annotations

import os
import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labd.client.blocking import connect_blocking
from tests.hardening.conftest import LabdProcess, start_labd
from tests.hardening.raw_rpc import (
    INTERFACES,
    LABD,
    Blob,
    Cap,
    CapDescriptor,
    EmptyStructs,
    Far,
    Null,
    PeerGone,
    PointerList,
    PrimitiveList,
    RawPeer,
    RawWord,
    Struct,
    StructList,
    Target,
    Text,
    Value,
    call_message,
    frame,
    leaks,
    nested,
    texts_in,
)

EXAMPLES = int(os.environ.get("LABD_FUZZ_EXAMPLES", "150"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
REPLY_TIMEOUT_S = 1.0
"""How long an example waits for its answer: a call may rightly run longer (a wait for a
move), and closing the connection cancels it."""
INSTRUMENTS = {"stage", "meter", "camera"}


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabdProcess]:
    daemon = start_labd(tmp_path_factory.mktemp("fuzz"))
    with RawPeer(daemon.socket, timeout=30) as peer:  # the first call of a fresh daemon
        peer.unlock(daemon.token)
    yield daemon
    assert daemon.proc.poll() is None, daemon.log.read_text()
    daemon.stop()
    assert daemon.proc.returncode == 0, daemon.log.read_text()


# ---------------------------------------------------------------- values of any kind

UTF8_TRAPS = [
    b"\xff", b"\xfe\xff", b"\xc3", b"\xc3\x28", b"\xe2\x82", b"\xed\xa0\x80", b"\xc0\xaf",
    b"\xf4\x90\x80\x80", b"\0", b"a\0b", b"stage", "µm".encode(),
]  # fmt: skip
text_bytes = st.one_of(
    st.text(max_size=16).map(str.encode),
    st.binary(max_size=24),
    st.lists(st.sampled_from(UTF8_TRAPS) | st.binary(max_size=3), max_size=4).map(b"".join),
)
OFFSETS = st.integers(-(2**29), 2**29 - 1) | st.sampled_from([-1, 0, 1, 2**29 - 1, -(2**29)])
evil_words = st.one_of(
    st.builds(
        lambda kind, offset, high: RawWord(kind | (offset & 0x3FFFFFFF) << 2 | high << 32),
        st.integers(0, 3),
        OFFSETS,
        st.integers(0, 2**32 - 1) | st.sampled_from([0xFFFFFFFF, 0x7 | (2**29 - 1) << 3]),
    ),
    st.integers(0, 2**64 - 1).map(RawWord),
)
leaves = st.one_of(
    st.just(Null()),
    st.builds(Text, text_bytes, st.booleans()),
    st.builds(Blob, st.binary(max_size=32)),
    st.builds(Cap, st.integers(0, 4) | st.integers(0, 2**32 - 1)),
    evil_words,
    st.builds(EmptyStructs, st.integers(0, 2000) | st.just(2**27)),
    st.builds(
        PrimitiveList,
        st.integers(0, 5),
        st.integers(0, 64) | st.just(2**29 - 1),
        st.binary(max_size=64),
    ),
)
any_value: st.SearchStrategy[Value] = st.one_of(
    st.recursive(
        leaves,
        lambda children: st.one_of(
            st.builds(Struct, st.binary(max_size=24), st.lists(children, max_size=4).map(tuple)),
            st.builds(
                StructList,
                st.lists(
                    st.builds(
                        Struct, st.binary(max_size=16), st.lists(children, max_size=2).map(tuple)
                    ),
                    max_size=3,
                ).map(tuple),
            ),
            st.builds(PointerList, st.lists(children, max_size=4).map(tuple)),
            st.builds(Far, children, st.booleans()),
        ),
        max_leaves=12,
    ),
    st.integers(40, 120).map(nested),
)


# ---------------------------------------------------------------- values of a schema's types

FLOATS = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from(
    [0.0, -0.0, 1e308, -1e308, 5e-324, 2.0**53, 1e9, -1.0, 0.5]
)
_SCALARS: dict[str, tuple[str, st.SearchStrategy[Any]]] = {
    "int8": ("<b", st.integers(-(2**7), 2**7 - 1)),
    "int16": ("<h", st.integers(-(2**15), 2**15 - 1)),
    "int32": ("<i", st.integers(-(2**31), 2**31 - 1)),
    "int64": ("<q", st.integers(-(2**63), 2**63 - 1)),
    "uint8": ("<B", st.integers(0, 2**8 - 1)),
    "uint16": ("<H", st.integers(0, 2**16 - 1)),
    "uint32": ("<I", st.integers(0, 10) | st.integers(0, 2**32 - 1)),
    "uint64": ("<Q", st.integers(0, 10) | st.integers(0, 2**64 - 1)),
    "float32": ("<f", st.floats(width=32, allow_nan=True, allow_infinity=True)),
    "float64": ("<d", FLOATS),
    "enum": ("<H", st.integers(0, 8) | st.integers(0, 2**16 - 1)),
}


@st.composite
def like(draw: st.DrawFn, struct_schema: Any, depth: int = 0) -> Struct:
    """A struct laid out as ``struct_schema``, each field of its type or often not."""
    node = struct_schema.node.struct
    data = bytearray(draw(st.binary(min_size=8 * node.dataWordCount,
                                    max_size=8 * node.dataWordCount)))  # fmt: skip
    pointers: list[Value] = [Null()] * node.pointerCount
    for name in struct_schema.fieldnames:
        field = struct_schema.fields[name]
        if field.proto.which() != "slot":
            continue
        slot = field.proto.slot
        kind = slot.type.which()
        if kind == "bool":
            byte, bit = divmod(slot.offset, 8)
            data[byte] = data[byte] & ~(1 << bit) | draw(st.booleans()) << bit
        elif kind in _SCALARS:
            fmt, values = _SCALARS[kind]
            struct.pack_into(fmt, data, slot.offset * struct.calcsize(fmt), draw(values))
        elif kind != "void":
            pointers[slot.offset] = draw(pointer_of(kind, slot.type, field, depth))
    # the struct itself bigger or smaller than the schema says
    if draw(st.integers(0, 9)) == 0:
        data = data[: draw(st.integers(0, len(data)))] + draw(st.binary(max_size=16))
    if draw(st.integers(0, 9)) == 0:
        pointers = pointers[: draw(st.integers(0, len(pointers)))]
        pointers += draw(st.lists(any_value, max_size=2))
    return Struct(bytes(data), tuple(pointers))


def pointer_of(kind: str, type_proto: Any, field: Any, depth: int) -> st.SearchStrategy[Value]:
    """A value for a pointer field of type ``kind``: mostly right, sometimes anything."""
    right: st.SearchStrategy[Value]
    if kind == "text":
        right = st.builds(Text, text_bytes, st.booleans() | st.just(True))
    elif kind == "data":
        right = st.builds(Blob, st.binary(max_size=64))
    elif kind == "struct" and depth < 3:
        right = like(field.schema, depth + 1)
    elif kind == "list":
        element = type_proto.list.elementType.which()
        if element == "text":
            right = st.builds(PointerList, st.lists(st.builds(Text, text_bytes), max_size=4)
                              .map(tuple))  # fmt: skip
        elif element == "struct" and depth < 3:
            right = st.builds(StructList, st.lists(like(field.schema.elementType, depth + 1),
                                                   max_size=3).map(tuple))  # fmt: skip
        else:
            right = any_value
    elif kind == "interface":
        right = st.builds(Cap, st.integers(0, 3)) | st.just(Null())
    else:
        right = any_value
    return st.one_of(right, right, right, any_value)


# ---------------------------------------------------------------- calls and their framing


@dataclass(frozen=True)
class Mutation:
    """What happens to the message's bytes on the way out."""

    flips: tuple[tuple[float, int], ...] = ()
    """(where, as a fraction of the segments' bytes; xor mask)"""
    segment_count: int | None = None
    segment_sizes: tuple[tuple[int, int], ...] = ()
    """(segment index, size in words announced instead)"""
    truncate: float | None = None
    trailing: bytes = b""

    @property
    def framing(self) -> bool:
        """The framing lies: what follows cannot be read as the message it was."""
        return (
            self.segment_count is not None
            or bool(self.segment_sizes)
            or (self.truncate is not None)
        )

    def apply(self, segments: list[bytes]) -> bytes:
        body = bytearray(b"".join(segments))
        for where, mask in self.flips:
            if body:
                body[int(where * (len(body) - 1))] ^= mask
        sizes = [len(s) // 8 for s in segments]
        for index, size in self.segment_sizes:
            sizes[index % len(sizes)] = size
        count = len(sizes) if self.segment_count is None else self.segment_count
        table = struct.pack("<I", (count - 1) & 0xFFFFFFFF)
        table += struct.pack(f"<{len(sizes)}I", *sizes)
        table += b"\0" * (-len(table) % 8)
        data = table + bytes(body)
        if self.truncate is not None:
            data = data[: int(self.truncate * len(data))]
        return data + self.trailing


mutations = st.one_of(
    st.just(None),
    st.just(None),
    st.builds(
        Mutation,
        flips=st.lists(st.tuples(st.floats(0, 1), st.integers(1, 255)), min_size=1, max_size=4).map(
            tuple
        ),
    ),
    st.builds(
        Mutation,
        segment_count=st.none() | st.integers(0, 3) | st.just(2**31),
        segment_sizes=st.lists(
            st.tuples(st.integers(0, 3), st.integers(0, 64) | st.integers(0, 2**32 - 1)),
            max_size=2,
        ).map(tuple),
        truncate=st.none() | st.floats(0, 1),
        trailing=st.binary(max_size=24),
    ),
)

cap_tables = st.lists(
    st.builds(
        CapDescriptor,
        st.sampled_from(
            ["none", "senderHosted", "senderPromise", "receiverHosted", "receiverAnswer"]
        ),
        st.integers(0, 4) | st.integers(0, 2**32 - 1),
    ),
    max_size=3,
).map(tuple)


@dataclass(frozen=True)
class Call:
    """One attacking call: to which capability, which method, what parameters."""

    reach: str
    """bootstrap | lab | instrument | capability | engine | import | question"""
    interface: str | None
    """labd.capnp interface whose method is called; None: ``interface_id``"""
    method_id: int
    interface_id: int
    params: Value
    cap_table: tuple[CapDescriptor, ...]
    mutation: Mutation | None
    instrument: str = "stage"
    capability: int = 0
    import_id: int = 0


TOKEN_METHODS = {("Bootstrap", "unlock"), ("Bootstrap", "redeem")}
"""Their wrong tokens cost up to 10 s each after the first ten a minute (docs/security.md),
so the fuzzer sends them rarely and malformed tokens (refused before the check) often."""
INVALID_UTF8 = [b"\xff", b"\xfe", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80"]
malformed_tokens: st.SearchStrategy[Value] = st.one_of(
    st.builds(
        Text,
        st.tuples(st.binary(max_size=8), st.sampled_from(INVALID_UTF8), st.binary(max_size=8)).map(
            b"".join
        ),
        st.booleans(),
    ),
    st.builds(Text, st.binary(min_size=1, max_size=16), st.just(False)),
    st.builds(Blob, st.binary(min_size=1, max_size=16)),
    any_value.filter(lambda v: not isinstance(v, Text | Null | Far)),
)
token_params = st.one_of(
    *[st.builds(lambda token: Struct(pointers=(token,)), malformed_tokens)] * 19,
    st.builds(lambda token: Struct(pointers=(token,)), st.builds(Text, text_bytes)),
)

CAPABILITY_FIELDS = list(LABD.Capabilities.schema.fieldnames)
REACHED = {
    "bootstrap": "Bootstrap", "lab": "Lab", "instrument": "Instrument",
    "engine": "ScriptEngine", "import": "Lab", "question": "Lab",
}  # fmt: skip


@st.composite
def calls(draw: st.DrawFn, reaches: list[str]) -> Call:
    reach = draw(st.sampled_from(reaches))
    capability = draw(st.integers(0, len(CAPABILITY_FIELDS) - 1))
    if reach == "capability":
        natural = CAPABILITY_FIELDS[capability][0].upper() + CAPABILITY_FIELDS[capability][1:]
    else:
        natural = REACHED[reach]
    interface = draw(st.sampled_from([natural] * 6 + list(INTERFACES)) | st.none())
    if interface is None:
        interface_id = draw(st.integers(0, 2**64 - 1))
        method_id = draw(st.integers(0, 12) | st.integers(0, 2**16 - 1))
        params = draw(any_value)
    else:
        schema = getattr(LABD, interface).schema
        interface_id = schema.node.id
        names = list(schema.methods)
        method_id = draw(st.integers(0, len(names) - 1) | st.integers(len(names), len(names) + 2))
        if (interface, names[method_id % len(names)]) in TOKEN_METHODS:
            params = draw(token_params)
        elif method_id < len(names):
            params = draw(like(schema.methods[names[method_id]].param_type) | any_value)
        else:
            params = draw(any_value)
    return Call(
        reach=reach,
        interface=interface,
        method_id=method_id,
        interface_id=interface_id,
        params=params,
        cap_table=draw(cap_tables),
        mutation=draw(mutations),
        instrument=draw(st.sampled_from(sorted(INSTRUMENTS)) | st.text(max_size=8)),
        capability=capability,
        import_id=draw(st.integers(0, 8) | st.integers(0, 2**32 - 1)),
    )


# ---------------------------------------------------------------- one example


def reach(peer: RawPeer, call: Call, lab: Target | None) -> tuple[Target, dict[int, Any]]:
    """The target the call goes to, pipelined from the Lab; (question -> method) asked."""
    asked: dict[int, Any] = {}

    def ask(target: Target, interface: str, name: str, params: Value) -> Target:
        question = peer.call(target, interface, name, params)
        asked[question] = getattr(LABD, interface).schema.methods[name]
        return Target(question=question, transform=(0,))

    if call.reach == "import":
        return Target(imported=call.import_id), asked
    if call.reach == "question":
        return Target(question=call.import_id, transform=(0,)), asked
    if call.reach == "lab" and lab is None:  # pipelined on an unlock that fails
        token = Struct(pointers=(Text(b"\xff"),))  # refused at once: no wrong-token delay
        return ask(peer.bootstrap(), "Bootstrap", "unlock", token), asked
    if call.reach == "bootstrap" or lab is None:
        return peer.bootstrap(), asked
    if call.reach == "lab":
        return lab, asked
    if call.reach == "engine":
        return ask(lab, "Lab", "scripts", Struct()), asked
    name = Text(call.instrument.encode())
    instrument = ask(lab, "Lab", "instrument", Struct(pointers=(name,)))
    if call.reach == "instrument":
        return instrument, asked
    capabilities = ask(instrument, "Instrument", "capabilities", Struct())
    return Target(question=capabilities.question, transform=(0, call.capability)), asked


def attack(daemon: LabdProcess, call: Call, unlocked: bool) -> None:
    with RawPeer(daemon.socket, timeout=REPLY_TIMEOUT_S) as peer:
        try:
            lab = peer.unlock(daemon.token) if unlocked else None
            asked = {}
            if lab is not None:
                asked[lab.question] = LABD.Bootstrap.schema.methods["unlock"]
            target, more = reach(peer, call, lab)
            asked |= more
            question = peer.question()
            message = call_message(
                question, target, call.interface_id, call.method_id, call.params, call.cap_table
            )
            if (
                call.interface is not None
                and call.interface_id == getattr(LABD, call.interface).schema.node.id
            ):
                methods = list(getattr(LABD, call.interface).schema.methods.values())
                if call.method_id < len(methods):
                    asked[question] = methods[call.method_id]
            segments = message.to_bytes()
            if call.mutation is None:
                peer.send(frame(segments))
            else:
                peer.send(call.mutation.apply(segments))
            if call.mutation is not None and call.mutation.framing:
                peer.sock.shutdown(socket.SHUT_WR)
                peer.drain(REPLY_TIMEOUT_S)
            else:  # a flipped byte may have changed the question id: any new answer ends it
                earlier = range(question)
                peer.wait_until(
                    lambda: any(q not in earlier for q in peer.returns), REPLY_TIMEOUT_S
                )
        except PeerGone:
            pass  # the daemon hung up on a malformed message: allowed, checked below
        check_replies(peer, asked)


def check_replies(peer: RawPeer, asked: dict[int, Any]) -> None:
    for reply in peer.replies:
        for text in reply.texts:
            assert leaks(text) == [], f"{leaks(text)} in a {reply.kind}: {text!r}"
        if reply.kind != "return" or reply.message.which() != "results":
            continue
        method = asked.get(reply.message.answerId)
        if method is None:
            continue
        results = reply.message.results.content.as_struct(method.result_type)
        for text in texts_in(results, method.result_type):
            assert leaks(text) == [], f"{leaks(text)} in results: {text!r}"


def still_serving(daemon: LabdProcess) -> None:
    assert daemon.proc.poll() is None, f"the daemon died:\n{daemon.log.read_text()[-4000:]}"
    with connect_blocking(daemon.address) as lab:
        assert {info.name for info in lab.instruments()} == INSTRUMENTS


# ---------------------------------------------------------------- the tests


@FUZZ
@given(call=calls(["bootstrap", "bootstrap", "bootstrap", "lab", "import", "question"]))
def test_fuzz_before_unlock(daemon: LabdProcess, call: Call) -> None:
    """Unauthenticated: only the Bootstrap is reachable; "lab" pipelines on a failed unlock."""
    attack(daemon, call, unlocked=False)
    still_serving(daemon)


@FUZZ
@given(call=calls(["lab", "lab", "instrument", "capability", "capability", "engine", "import"]))
def test_fuzz_after_unlock(daemon: LabdProcess, call: Call) -> None:
    attack(daemon, call, unlocked=True)
    still_serving(daemon)
