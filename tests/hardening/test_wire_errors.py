"""What a peer sees when its message is malformed: one typed line, never a traceback.

pycapnp decodes a call's parameters before any server code runs, and its errors used to
reach the peer as a Python traceback with native stack addresses, before unlock too. Each
test here sends one such message over a raw connection (tests/hardening/raw_rpc.py) and
checks the exact ``labd:<code>: <message>`` line, or, where the Cap'n Proto library itself
answers (unknown method, unknown capability), that its one line leaks nothing.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from capabilities import InvalidRequest
from labd.client.blocking import connect_blocking
from labd.contract import errors as wire
from tests.hardening.conftest import LabdProcess, start_labd
from tests.hardening.raw_rpc import (
    LABD,
    Blob,
    Cap,
    EmptyStructs,
    Far,
    Null,
    PointerList,
    RawPeer,
    RawWord,
    Reply,
    Struct,
    Target,
    Text,
    Value,
    call_message,
    envelope,
    error_reason,
    leaks,
    nested,
)


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabdProcess]:
    daemon = start_labd(tmp_path_factory.mktemp("wire-errors"))
    with RawPeer(daemon.socket, timeout=30) as peer:  # the first call of a fresh daemon
        peer.unlock(daemon.token)
    yield daemon
    daemon.stop()
    assert daemon.proc.returncode == 0, daemon.log.read_text()


def typed_error(reply: Reply | None) -> tuple[str, str]:
    """(code, message) of a Return's exception, after checking it is one clean line."""
    reason = error_reason(reply)
    assert leaks(reason) == [], reason
    assert "\n" not in reason.strip(), reason
    parsed = wire.parse_error(reason)
    assert parsed is not None, f"no labd:<code> marker in {reason!r}"
    return parsed


def unlock_with(daemon: LabdProcess, token: Value) -> Reply | None:
    with RawPeer(daemon.socket) as peer:
        question = peer.call(peer.bootstrap(), "Bootstrap", "unlock", Struct(pointers=(token,)))
        return peer.wait_return(question)


def test_invalid_utf8_token_is_an_invalid_request(daemon: LabdProcess) -> None:
    reply = unlock_with(daemon, Text(b"\xff\xfe" + daemon.token.encode()))
    assert typed_error(reply) == (
        "invalid-request",
        "unlock: parameter token is not valid Text (invalid UTF-8 at byte 0)",
    )
    # and the client library raises the class a program catches
    assert isinstance(wire.error_from_code(*typed_error(reply)), InvalidRequest)


def test_list_where_text_is_expected(daemon: LabdProcess) -> None:
    reply = unlock_with(daemon, PointerList((Text(b"a"), Text(b"b"))))
    assert typed_error(reply) == (
        "invalid-request",
        "unlock: parameter token is not valid Text (Schema mismatch:"
        " Message contains list pointer of non-bytes where text was expected)",
    )


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        (Struct(b"\0" * 8), "Message contains non-list pointer where text was expected"),
        (Cap(0), "Message contains non-list pointer where text was expected"),
        (Blob(b"no terminator"), "text is not NUL-terminated"),
        # a text of 2^29 - 1 bytes announced in 4 words of message
        (RawWord(1 | 2 << 32 | (2**29 - 1) << 35), "Message contained out-of-bounds text pointer"),
    ],
    ids=["struct", "capability", "unterminated", "huge"],
)
def test_wrong_pointer_kinds_name_the_parameter(
    daemon: LabdProcess, token: Value, reason: str
) -> None:
    code, message = typed_error(unlock_with(daemon, token))
    assert code == "invalid-request"
    assert message.startswith("unlock: parameter token is not valid Text (")
    assert message.endswith(reason + ")")


def test_far_pointers_decode_like_near_ones(daemon: LabdProcess) -> None:
    token = Text(daemon.token.encode())
    for far in (Far(token), Far(token, double=True)):
        reply = unlock_with(daemon, far)
        assert reply is not None and reply.message.which() == "results", reply


def test_far_pointer_chain_is_refused(daemon: LabdProcess) -> None:
    # A single landing pad must hold the object's pointer, not another far pointer.
    reply = unlock_with(daemon, Far(Far(Text(daemon.token.encode()))))
    assert typed_error(reply) == (
        "invalid-request",
        "unlock: parameter token is not valid Text (Schema mismatch:"
        " Message contains non-list pointer where text was expected)",
    )


def test_malformed_struct_parameter_names_the_field(daemon: LabdProcess) -> None:
    with RawPeer(daemon.socket) as peer:
        lab = peer.unlock(daemon.token)
        question = peer.call(lab, "Lab", "instrument", Struct(pointers=(Text(b"stage"),)))
        stage = Target(question=question, transform=(0,))
        # Restriction.position (pointer 0) is a Range struct; send a text there
        restriction = Struct(b"\0" * 16, (Text(b"0..5"),))
        question = peer.call(stage, "Instrument", "restrict", Struct(pointers=(restriction,)))
        assert typed_error(peer.wait_return(question)) == (
            "invalid-request",
            "restrict: parameter restriction is not valid Restriction (Schema mismatch: Message"
            " contains non-struct pointer where struct pointerwas expected, in"
            " restriction.position)",
        )
        question = peer.call(stage, "Instrument", "share", Struct(pointers=(PointerList(()),)))
        code, message = typed_error(peer.wait_return(question))
        assert (code, message.partition(" (")[0]) == (
            "invalid-request",
            "share: parameter restriction is not valid Restriction",
        )


def test_amplified_list_is_refused_before_it_is_read(daemon: LabdProcess) -> None:
    """2**27 structs of no size: 8 bytes on the wire, within the traversal limit, and
    minutes of the daemon's loop if each element were read."""
    with RawPeer(daemon.socket) as peer:
        lab = peer.unlock(daemon.token)
        engine = Target(question=peer.call(lab, "Lab", "scripts", Struct()), transform=(0,))
        words = LABD.RunRequest.schema.node.struct.dataWordCount
        request = Struct(b"\0" * 8 * words, (Text(b"x"), EmptyStructs(2**27), Null()))
        question = peer.call(engine, "ScriptEngine", "run", Struct(pointers=(request,)))
        assert typed_error(peer.wait_return(question)) == (
            "invalid-request",
            "run: parameter request is not valid RunRequest"
            " (a list of 134217728 structs of no size, in request.args)",
        )


def test_nesting_beyond_the_schema_is_never_read(daemon: LabdProcess) -> None:
    """No type of labd.capnp is recursive: a parameter nested 200 deep is read as deep as
    its type goes (Restriction, then Range) and the rest is ignored, not followed."""
    with RawPeer(daemon.socket) as peer:
        lab = peer.unlock(daemon.token)
        question = peer.call(lab, "Lab", "instrument", Struct(pointers=(Text(b"stage"),)))
        stage = Target(question=question, transform=(0,))
        question = peer.call(stage, "Instrument", "restrict", Struct(pointers=(nested(200),)))
        reply = peer.wait_return(question)
        assert reply is not None and reply.message.which() == "results", reply


def test_invalid_text_after_unlock(daemon: LabdProcess) -> None:
    with RawPeer(daemon.socket) as peer:
        lab = peer.unlock(daemon.token)
        question = peer.call(lab, "Lab", "instrument", Struct(pointers=(Text(b"st\xc3age"),)))
        assert typed_error(peer.wait_return(question)) == (
            "invalid-request",
            "instrument: parameter name is not valid Text (invalid UTF-8 at byte 2)",
        )


def test_errors_raised_by_methods_are_typed_lines(daemon: LabdProcess) -> None:
    with RawPeer(daemon.socket) as peer:
        lab = peer.unlock(daemon.token)
        question = peer.call(lab, "Lab", "instrument", Struct(pointers=(Text(b"nosuch"),)))
        code, message = typed_error(peer.wait_return(question))
        assert code == "unknown-instrument"
        assert "nosuch" in message


def test_lab_methods_before_unlock_are_not_implemented(daemon: LabdProcess) -> None:
    """The Bootstrap is not a Lab: the Cap'n Proto library refuses, in one line."""
    with RawPeer(daemon.socket) as peer:
        question = peer.call(peer.bootstrap(), "Lab", "instruments", Struct())
        reason = error_reason(peer.wait_return(question))
    assert reason.startswith("Requested interface not implemented.")
    assert "\n" not in reason and leaks(reason) == []


def test_unknown_method_is_the_librarys_one_line(daemon: LabdProcess) -> None:
    interface_id = LABD.Bootstrap.schema.node.id
    with RawPeer(daemon.socket) as peer:
        bootstrap = peer.bootstrap()
        question = peer.question()
        peer.send(call_message(question, bootstrap, interface_id, 99, Struct()))
        reason = error_reason(peer.wait_return(question))
    assert reason.startswith("Method not implemented.")
    assert "methodId = 99" in reason
    assert "\n" not in reason and leaks(reason) == []


def test_unknown_and_released_capabilities_end_only_that_connection(daemon: LabdProcess) -> None:
    with RawPeer(daemon.socket) as peer:
        peer.call(Target(imported=12345), "Lab", "instruments", Struct())
        peer.drain(5)
        assert peer.aborted == "Message target is not a current export ID."
    with RawPeer(daemon.socket) as peer:
        lab = peer.unlock(daemon.token)
        reply = peer.returns[lab.question]
        export_id = reply.message.results.capTable[0].senderHosted
        peer.send(envelope(release={"id": export_id, "referenceCount": 1}))
        peer.call(Target(imported=export_id), "Lab", "instruments", Struct())
        peer.drain(5)
        assert peer.aborted == "Message target is not a current export ID."
    with RawPeer(daemon.socket) as peer:
        peer.send(envelope(release={"id": 777, "referenceCount": 1}))
        peer.drain(5)
        assert peer.aborted is not None and leaks(peer.aborted) == [], peer.aborted
    with connect_blocking(daemon.address) as lab:
        assert {info.name for info in lab.instruments()} == {"stage", "meter", "camera"}
