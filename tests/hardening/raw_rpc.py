"""A raw Cap'n Proto RPC peer, for sending what no honest client would.

pycapnp only builds well-formed messages, so this module builds the parts an attacker
controls word by word: the parameter struct of a call (:class:`Value` trees: invalid UTF-8,
a list where text is expected, far pointers, pointers out of bounds, deep nesting) and the
framing (segment table lies, truncation). The envelope around the parameters (``Message``,
``Call``, ``MessageTarget``, ``Payload`` of ``capnp/rpc.capnp``) is built with pycapnp's
own schema, and every reply is decoded with it, so a test sees exactly what a peer sees.
"""

from __future__ import annotations

import os
import re
import socket
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import capnp

from labd.contract import schema

REPO = Path(__file__).resolve().parents[2]
_CAPNP_DIR = os.path.dirname(capnp.__file__)
RPC: Any = capnp.load(os.path.join(_CAPNP_DIR, "rpc.capnp"), imports=[os.path.dirname(_CAPNP_DIR)])
LABD: Any = schema.load()

INTERFACES = (
    "Bootstrap", "Lab", "Instrument", "Movable", "Stoppable", "Readable", "Triggerable",
    "FrameProducer", "ExposureControl", "RoiSelectable", "Cooled", "TemperatureSensor",
    "VoltageSource", "Switchable", "FaultInjectable", "BatchSink", "StateWatcher",
    "Subscription", "Revoker", "ScriptEngine", "ScriptRun", "LogSink", "ReplayCursor",
)  # fmt: skip
"""Every interface of labd.capnp."""

READ_LIMIT_WORDS = 1 << 24
"""How big a reply this peer decodes (128 MiB); the daemon never sends more to it."""

# ---------------------------------------------------------------- what crosses the wire


_LEAKS = (
    ("a Python traceback", re.compile(r"Traceback|File \"|line \d+, in ")),
    ("a native stack", re.compile(r"stack:")),
    ("an address", re.compile(r"\b0x[0-9a-fA-F]{8,}\b|\b(?=[0-9]*[a-f])[0-9a-f]{12}\b")),
    (
        "a source path",
        re.compile(re.escape(str(REPO)) + r"|site-packages|\.pyx?\b[\":]|\.c\+\+:\d"),
    ),
)


def leaks(text: str) -> list[str]:
    """What in ``text`` must never reach a peer (empty: nothing)."""
    return [what for what, pattern in _LEAKS if pattern.search(text)]


# ---------------------------------------------------------------- the parameter struct


class Value:
    """Something a pointer of the parameter struct can point at (or be)."""


@dataclass(frozen=True)
class Null(Value):
    pass


@dataclass(frozen=True)
class Text(Value):
    """A byte list; an honest Text is UTF-8 and ends with one NUL (``terminated``)."""

    raw: bytes
    terminated: bool = True


@dataclass(frozen=True)
class Blob(Value):
    """A Data field: a byte list without terminator."""

    raw: bytes


@dataclass(frozen=True)
class Struct(Value):
    data: bytes = b""
    pointers: tuple[Value, ...] = ()


@dataclass(frozen=True)
class StructList(Value):
    elements: tuple[Struct, ...]


@dataclass(frozen=True)
class EmptyStructs(Value):
    """A list of ``count`` structs of no size: one tag word on the wire, whatever ``count``."""

    count: int


@dataclass(frozen=True)
class PointerList(Value):
    items: tuple[Value, ...]


@dataclass(frozen=True)
class PrimitiveList(Value):
    """A list announcing ``count`` elements of size code ``size`` (0 void ... 5 eight
    bytes), of which only the bytes of ``raw`` follow."""

    size: int
    count: int
    raw: bytes = b""


@dataclass(frozen=True)
class Cap(Value):
    """A capability pointer: an index into the call's cap table."""

    index: int


@dataclass(frozen=True)
class Far(Value):
    """``target`` placed in a segment of its own, reached through a landing pad."""

    target: Value
    double: bool = False


@dataclass(frozen=True)
class RawWord(Value):
    """Any 64-bit pointer word as it is: out-of-bounds offsets, huge lists, reserved kinds."""

    word: int


@dataclass(frozen=True)
class Nested(Value):
    """A struct whose first pointer holds a struct ... ``depth`` levels deep."""

    depth: int

    def expand(self) -> Struct:
        value = Struct()
        for _ in range(self.depth - 1):
            value = Struct(pointers=(value,))
        return value


def nested(depth: int) -> Nested:
    return Nested(depth)


_BYTES_PER_ELEMENT = {0: 0, 1: 1 / 8, 2: 1, 3: 2, 4: 4, 5: 8}


@dataclass
class Segments:
    """A message under construction: segments of 64-bit words."""

    words: list[list[int]] = field(default_factory=lambda: [[]])

    def alloc(self, seg: int, count: int) -> int:
        start = len(self.words[seg])
        self.words[seg].extend([0] * count)
        return start

    def put_bytes(self, seg: int, start: int, raw: bytes) -> None:
        raw = raw + b"\0" * (-len(raw) % 8)
        for i in range(len(raw) // 8):
            self.words[seg][start + i] = int.from_bytes(raw[8 * i : 8 * i + 8], "little")

    def new_segment(self) -> int:
        self.words.append([])
        return len(self.words) - 1

    def to_bytes(self) -> list[bytes]:
        return [b"".join(w.to_bytes(8, "little") for w in seg) for seg in self.words]


def encode(value: Value, msg: Segments, seg: int, at: int) -> None:
    """Write ``value`` as the pointer at word ``at`` of segment ``seg``, content after it."""
    if isinstance(value, Null):
        return
    if isinstance(value, Cap):
        msg.words[seg][at] = 3 | (value.index & 0xFFFFFFFF) << 32
        return
    if isinstance(value, RawWord):
        msg.words[seg][at] = value.word & 0xFFFFFFFFFFFFFFFF
        return
    if isinstance(value, Far):
        msg.words[seg][at] = _far(value, msg)
        return
    if isinstance(value, Nested):
        value = value.expand()
    template, start = _content(value, msg, seg)
    msg.words[seg][at] = template | ((start - at - 1) & 0x3FFFFFFF) << 2


def _far(value: Far, msg: Segments) -> int:
    pad_seg = msg.new_segment()
    if isinstance(value.target, Nested):
        value = Far(value.target.expand(), value.double)
    if not value.double:
        pad = msg.alloc(pad_seg, 1)
        encode(value.target, msg, pad_seg, pad)
        return 2 | pad << 3 | pad_seg << 32
    # Double landing pad: a far pointer to the content's start, then a tag word that looks
    # like a pointer to it with offset 0.
    pad = msg.alloc(pad_seg, 2)
    content_seg = msg.new_segment()
    if isinstance(value.target, Null | Cap | RawWord | Far):
        encode(value.target, msg, pad_seg, pad + 1)
        return 2 | 1 << 2 | pad << 3 | pad_seg << 32
    template, start = _content(value.target, msg, content_seg)
    msg.words[pad_seg][pad] = 2 | start << 3 | content_seg << 32
    msg.words[pad_seg][pad + 1] = template
    return 2 | 1 << 2 | pad << 3 | pad_seg << 32


def _content(value: Value, msg: Segments, seg: int) -> tuple[int, int]:
    """Place the content of ``value`` in ``seg``: (pointer word without offset, start)."""
    if isinstance(value, Text | Blob):
        raw = value.raw + (b"\0" if isinstance(value, Text) and value.terminated else b"")
        start = msg.alloc(seg, (len(raw) + 7) // 8)
        msg.put_bytes(seg, start, raw)
        return 1 | 2 << 32 | len(raw) << 35, start
    if isinstance(value, Struct):
        data_words = (len(value.data) + 7) // 8
        start = msg.alloc(seg, data_words + len(value.pointers))
        msg.put_bytes(seg, start, value.data)
        for i, child in enumerate(value.pointers):
            encode(child, msg, seg, start + data_words + i)
        return data_words << 32 | len(value.pointers) << 48, start
    if isinstance(value, StructList):
        data_words = max([(len(e.data) + 7) // 8 for e in value.elements], default=0)
        pointers = max([len(e.pointers) for e in value.elements], default=0)
        size = data_words + pointers
        tag = msg.alloc(seg, 1 + size * len(value.elements))
        msg.words[seg][tag] = len(value.elements) << 2 | data_words << 32 | pointers << 48
        for n, element in enumerate(value.elements):
            base = tag + 1 + n * size
            msg.put_bytes(seg, base, element.data)
            for i, child in enumerate(element.pointers):
                encode(child, msg, seg, base + data_words + i)
        return 1 | 7 << 32 | (size * len(value.elements)) << 35, tag
    if isinstance(value, EmptyStructs):
        tag = msg.alloc(seg, 1)
        msg.words[seg][tag] = (value.count & 0x3FFFFFFF) << 2
        return 1 | 7 << 32, tag
    if isinstance(value, PointerList):
        start = msg.alloc(seg, len(value.items))
        for i, child in enumerate(value.items):
            encode(child, msg, seg, start + i)
        return 1 | 6 << 32 | len(value.items) << 35, start
    if isinstance(value, PrimitiveList):
        # only what ``raw`` holds is sent, whatever ``count`` announces
        nbytes = min(len(value.raw), int(-(-value.count * _BYTES_PER_ELEMENT[value.size] // 1)))
        start = msg.alloc(seg, (nbytes + 7) // 8)
        msg.put_bytes(seg, start, value.raw[:nbytes])
        return 1 | value.size << 32 | value.count << 35, start
    raise TypeError(f"not a pointer value: {value!r}")


# ---------------------------------------------------------------- the RPC envelope


@dataclass(frozen=True)
class Target:
    """Whom a call is for: an imported capability, or a promised answer's field."""

    imported: int | None = None
    question: int = 0
    transform: tuple[int, ...] = ()  # pointer field indexes


@dataclass(frozen=True)
class CapDescriptor:
    """One entry of the call's cap table: ``kind`` is a CapDescriptor union member."""

    kind: str = "none"
    id: int = 0


def _slot(struct_module: Any, name: str) -> int:
    return int(struct_module.schema.fields[name].proto.slot.offset)


def _follow(words: list[int], at: int, slot: int) -> int:
    """The index of pointer ``slot`` of the struct the pointer at ``at`` points to."""
    word = words[at]
    assert word & 3 == 0 and word != 0, f"not a struct pointer at word {at}"
    offset = (word >> 2) & 0x3FFFFFFF
    offset -= (offset & 0x20000000) << 1
    data_words = (word >> 32) & 0xFFFF
    return at + 1 + offset + data_words + slot


def call_message(
    question: int,
    target: Target,
    interface_id: int,
    method_id: int,
    params: Value,
    cap_table: Sequence[CapDescriptor] = (),
) -> Segments:
    """A ``Message.call`` whose ``params.content`` is ``params``, encoded word by word."""
    message = RPC.Message.new_message()
    call = message.init("call")
    call.questionId = question
    if target.imported is not None:
        call.target.importedCap = target.imported
    else:
        promised = call.target.init("promisedAnswer")
        promised.questionId = target.question
        ops = promised.init("transform", len(target.transform))
        for op, index in zip(ops, target.transform, strict=True):
            op.getPointerField = index
    call.interfaceId = interface_id
    call.methodId = method_id
    table = call.params.init("capTable", len(cap_table))
    for entry, descriptor in zip(table, cap_table, strict=True):
        if descriptor.kind == "none":
            entry.none = None
        elif descriptor.kind == "receiverAnswer":
            entry.init("receiverAnswer").questionId = descriptor.id
        else:
            setattr(entry, descriptor.kind, descriptor.id)
    segments = message.to_segments()
    assert len(segments) == 1
    seg0 = segments[0]
    msg = Segments([[int.from_bytes(seg0[i : i + 8], "little") for i in range(0, len(seg0), 8)]])
    at = _follow(msg.words[0], 0, _slot(RPC.Message, "call"))
    at = _follow(msg.words[0], at, _slot(RPC.Call, "params"))
    at = _follow(msg.words[0], at, _slot(RPC.Payload, "content"))
    encode(params, msg, 0, at)
    return msg


def envelope(**kwargs: Any) -> Segments:
    """Any other Message (``bootstrap={"questionId": 0}``, ``finish=...``, ``release=...``)."""
    message = RPC.Message.new_message(**kwargs)
    segments = message.to_segments()
    return Segments([
        [int.from_bytes(seg[i : i + 8], "little") for i in range(0, len(seg), 8)]
        for seg in segments
    ])  # fmt: skip


def frame(segments: Sequence[bytes]) -> bytes:
    """The standard stream framing: segment count - 1, sizes in words, padding, segments."""
    table = struct.pack(f"<I{len(segments)}I", len(segments) - 1, *(len(s) // 8 for s in segments))
    table += b"\0" * (-len(table) % 8)
    return table + b"".join(segments)


def method(interface: str, name: str) -> tuple[int, int, Any]:
    """(interface id, method id, method schema) of ``interface.name`` in labd.capnp."""
    iface = getattr(LABD, interface).schema
    names = list(iface.methods)
    return iface.node.id, names.index(name), iface.methods[name]


# ---------------------------------------------------------------- a connection


class PeerGone(Exception):
    """The daemon closed the connection (after an Abort, or without one)."""


@dataclass
class Reply:
    """One message from the daemon, decoded."""

    kind: str
    message: Any
    texts: list[str]
    """Every error text in it (abort reason, exception reason and trace)."""


class RawPeer:
    """One connection to the daemon, spoken to in raw RPC messages."""

    def __init__(self, path: Path | str, timeout: float = 5.0) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(str(path))
        self._buffer = bytearray()
        self.replies: list[Reply] = []
        self.returns: dict[int, Reply] = {}
        self.aborted: str | None = None
        self._next_question = 0

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RawPeer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def question(self) -> int:
        self._next_question += 1
        return self._next_question - 1

    def send(self, msg: Segments | bytes) -> None:
        data = msg if isinstance(msg, bytes) else frame(msg.to_bytes())
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise PeerGone(str(exc)) from None

    # ---- receiving

    def _fill(self, size: int, deadline: float) -> bool:
        while len(self._buffer) < size:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(1 << 20)
            except TimeoutError:
                return False
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                raise PeerGone("the daemon closed the connection")
            self._buffer += chunk
        return True

    def receive(self, timeout: float) -> Reply | None:
        """The next message from the daemon, or None if none came within ``timeout``."""
        deadline = time.monotonic() + timeout
        if not self._fill(4, deadline):
            return None
        count = int.from_bytes(self._buffer[:4], "little") + 1
        assert count <= 512, f"the daemon announced {count} segments"
        header = 4 + 4 * count + (4 if count % 2 == 0 else 0)
        if not self._fill(header, deadline):
            raise AssertionError("the daemon sent half a segment table")
        sizes = struct.unpack_from(f"<{count}I", self._buffer, 4)
        total = header + 8 * sum(sizes)
        assert total <= 8 * READ_LIMIT_WORDS, f"the daemon announced {total} bytes"
        if not self._fill(total, deadline + 5):
            raise AssertionError("the daemon sent half a message")
        segments, offset = [], header
        for size in sizes:
            segments.append(bytes(self._buffer[offset : offset + 8 * size]))
            offset += 8 * size
        del self._buffer[:total]
        reply = decode(segments)
        self.replies.append(reply)
        if reply.kind == "return":
            self.returns[reply.message.answerId] = reply
        elif reply.kind == "abort":
            self.aborted = reply.texts[0]
        return reply

    def wait_until(self, done: Callable[[], bool], timeout: float) -> bool:
        """Receive until ``done()`` (True) or for ``timeout`` (False); raises PeerGone."""
        deadline = time.monotonic() + timeout
        while not done():
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self.receive(remaining) is None:
                return False
        return True

    def wait_return(self, question: int, timeout: float = 5.0) -> Reply | None:
        """The Return for ``question`` (None: none within ``timeout``); raises PeerGone."""
        self.wait_until(lambda: question in self.returns, timeout)
        return self.returns.get(question)

    def drain(self, timeout: float) -> None:
        """Read whatever comes within ``timeout``, until the daemon hangs up (no error)."""
        deadline = time.monotonic() + timeout
        try:
            while (remaining := deadline - time.monotonic()) > 0:
                if self.receive(remaining) is None:
                    return
        except PeerGone:
            return

    # ---- conversations

    def bootstrap(self) -> Target:
        """Ask for the Bootstrap capability; returns the target that reaches it."""
        question = self.question()
        self.send(envelope(bootstrap={"questionId": question}))
        return Target(question=question)

    def call(
        self,
        target: Target,
        interface: str,
        name: str,
        params: Value,
        cap_table: Sequence[CapDescriptor] = (),
    ) -> int:
        interface_id, method_id, _ = method(interface, name)
        question = self.question()
        self.send(call_message(question, target, interface_id, method_id, params, cap_table))
        return question

    def unlock(self, token: str) -> Target:
        """Bootstrap, then unlock with ``token``; returns the target of the Lab."""
        bootstrap = self.bootstrap()
        question = self.call(
            bootstrap, "Bootstrap", "unlock", Struct(pointers=(Text(token.encode()),))
        )
        reply = self.wait_return(question)
        assert reply is not None and reply.message.which() == "results", reply
        return Target(question=question, transform=(0,))


def decode(segments: list[bytes]) -> Reply:
    """A daemon's message, decoded with rpc.capnp; its error texts collected."""
    message = RPC.Message.from_segments(segments, traversal_limit_in_words=READ_LIMIT_WORDS)
    kind = message.which()
    texts: list[str] = []
    if kind == "abort":
        texts += [message.abort.reason, message.abort.trace]
    elif kind == "return" and getattr(message, "return").which() == "exception":
        exception = getattr(message, "return").exception
        texts += [exception.reason, exception.trace]
    return Reply(kind, getattr(message, kind), texts)


def error_reason(reply: Reply | None) -> str:
    """The exception text of a Return (AssertionError if it is not an exception)."""
    assert reply is not None, "no answer"
    assert reply.message.which() == "exception", f"not an exception: {reply.message}"
    return str(reply.message.exception.reason)


def texts_in(value: Any, struct_schema: Any) -> list[str]:
    """Every Text inside a decoded struct of ``struct_schema`` (reading all of it).

    Capability fields are skipped: a message decoded outside an RPC system has no cap table.
    """
    texts: list[str] = []
    names = list(struct_schema.non_union_fields)
    if struct_schema.union_fields:
        names.append(value.which())
    for name in names:
        field = struct_schema.fields[name]
        if field.proto.which() == "group":
            texts += texts_in(getattr(value, name), field.schema)
            continue
        kind = field.proto.slot.type.which()
        if kind == "text":
            texts.append(getattr(value, name))
        elif kind == "struct":
            texts += texts_in(getattr(value, name), field.schema)
        elif kind == "list":
            element = field.proto.slot.type.list.elementType.which()
            if element == "text":
                texts += list(getattr(value, name))
            elif element == "struct":
                for item in getattr(value, name):
                    texts += texts_in(item, field.schema.elementType)
    return texts
