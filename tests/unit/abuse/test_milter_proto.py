"""The milter codec (postroom.abuse.milter.proto): packets, option negotiation, responses.

Byte layouts follow libmilter's mfdef.h as Postfix's milter8.c uses it."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from postroom.abuse.milter import proto
from postroom.abuse.milter.proto import Cmd, Decision, MilterProtocolError, Rsp, Verdict


def unpack(data: bytes) -> list[tuple[bytes, bytes]]:
    d = proto.Decoder()
    d.feed(data)
    out = []
    while (p := d.next()) is not None:
        out.append(p)
    assert d.pending == 0
    return out


def test_packet_layout() -> None:
    assert proto.packet(Cmd.ABORT) == b"\0\0\0\x01A"
    assert proto.helo("mail.example") == b"\0\0\0\x0eHmail.example\0"
    assert proto.optneg() == b"\0\0\0\x0dO" + struct.pack("!III", 6, 0x1FF, int(proto.OFFERED_PROTO))
    assert not proto.OFFERED_PROTO & proto.Proto.RCPT_REJ


def test_connect_families() -> None:
    assert unpack(proto.connect("mx.example", "192.0.2.1", 2525)) == [
        (b"C", b"mx.example\x004" + struct.pack("!H", 2525) + b"192.0.2.1\0")]
    assert unpack(proto.connect("unknown", "2001:db8::1", 1))[0][1].startswith(b"unknown\x006\0\x01")
    assert unpack(proto.connect("unknown", "", 0)) == [(b"C", b"unknown\0U")]


def test_mail_rcpt_macros_header() -> None:
    assert unpack(proto.mail("a@example.test", "SIZE=10", "BODY=8BITMIME")) == [
        (b"M", b"<a@example.test>\0SIZE=10\0BODY=8BITMIME\0")]
    assert unpack(proto.mail("")) == [(b"M", b"<>\0")]
    assert unpack(proto.rcpt("b@example.test")) == [(b"R", b"<b@example.test>\0")]
    assert unpack(proto.macros(Cmd.MAIL, {"i": "Q1", "{auth_authen}": "ann"})) == [
        (b"D", b"Mi\0Q1\0{auth_authen}\0ann\0")]
    assert unpack(proto.header("Subject", "hi\n\tthere")) == [(b"L", b"Subject\0hi\n\tthere\0")]


def test_body_chunks_are_at_most_65535_bytes() -> None:
    body = bytes(range(256)) * 600  # 153600 bytes
    packets = unpack(b"".join(proto.body_chunks(body)))
    assert [len(p) for _, p in packets] == [65535, 65535, 153600 - 2 * 65535]
    assert b"".join(p for _, p in packets) == body
    assert proto.body_chunks(b"") == []


def test_optneg_reply_with_macro_lists() -> None:
    payload = struct.pack("!III", 6, 0x11, 0x1000 | 0x80) + struct.pack("!I", 2) + b"i {auth_type}\0" \
        + struct.pack("!I", 0) + b"j {daemon_name}\0"
    n = proto.parse_optneg(payload)
    assert n.actions == proto.Action.ADDHDRS | proto.Action.CHGHDRS
    assert n.macros == {proto.Stage.MAIL: ("i", "{auth_type}"), proto.Stage.CONNECT: ("j", "{daemon_name}")}
    assert not n.replies(Cmd.CONNECT) and not n.replies(Cmd.HEADER) and n.replies(Cmd.MAIL)
    assert n.replies(Cmd.BODYEOB) and not n.skips(Cmd.HELO)


@pytest.mark.parametrize("payload, why", [
    (b"\0\0\0\x06", "short"),
    (struct.pack("!III", 1, 0, 0), "too old"),
    (struct.pack("!III", 6, 0x200, 0), "actions"),
    (struct.pack("!III", 6, 0, proto.Proto.RCPT_REJ), "protocol steps"),
    (struct.pack("!III", 6, 0, 0) + struct.pack("!I", 9) + b"i\0", "stage"),
    (struct.pack("!III", 6, 0, 0) + struct.pack("!I", 2) + b"i", "macro list"),
])
def test_optneg_errors(payload: bytes, why: str) -> None:
    with pytest.raises(MilterProtocolError, match=why):
        proto.parse_optneg(payload)


@pytest.mark.parametrize("cmd, payload, expected", [
    (b"a", b"", Decision(Verdict.ACCEPT)),
    (b"c", b"", Decision(Verdict.CONTINUE)),
    (b"r", b"", Decision(Verdict.REJECT)),
    (b"t", b"", Decision(Verdict.TEMPFAIL)),
    (b"d", b"", Decision(Verdict.DISCARD)),
    (b"s", b"", Decision(Verdict.SKIP)),
    (b"f", b"", Decision(Verdict.SHUTDOWN)),
    (b"p", b"", proto.Progress()),
    (b"y", b"554 5.7.1 go away\0", Decision(Verdict.REPLY, 554, "5.7.1", ("go away",))),
    (b"y", b"451 try later\0", Decision(Verdict.REPLY, 451, None, ("try later",))),
    (b"y", b"550-5.7.1 first\r\n550 5.7.1 second\0", Decision(Verdict.REPLY, 550, "5.7.1", ("first", "second"))),
    (b"h", b"X-Spam\0yes\0", proto.AddHeader("X-Spam", "yes")),
    (b"i", b"\0\0\0\0DKIM-Signature\0 v=1;\n\tb=x\0", proto.InsHeader(0, "DKIM-Signature", " v=1;\n\tb=x")),
    (b"m", b"\0\0\0\x02Subject\0\0", proto.ChgHeader(2, "Subject", "")),
    (b"+", b"<x@example.test>\0", proto.AddRcpt("x@example.test")),
    (b"2", b"<x@example.test>\0NOTIFY=NEVER\0", proto.AddRcpt("x@example.test", "NOTIFY=NEVER")),
    (b"-", b"<x@example.test>\0", proto.DelRcpt("x@example.test")),
    (b"e", b"<>\0", proto.ChgFrom("")),
    (b"e", b"<a@b.test>\0SIZE=1\0", proto.ChgFrom("a@b.test", "SIZE=1")),
    (b"b", b"new body\r\n", proto.ReplBody(b"new body\r\n")),
    (b"q", b"suspicious\0", proto.Quarantine("suspicious")),
])
def test_responses(cmd: bytes, payload: bytes, expected: object) -> None:
    assert proto.parse_response(cmd, payload) == expected


@pytest.mark.parametrize("cmd, payload, why", [
    (b"Z", b"", "unknown response"),
    (b"O", b"", "out of place"),
    (b"y", b"250 ok\0", "not 4xx or 5xx"),
    (b"y", b"550 no", "NUL"),
    (b"y", b"550-a\r\n450 b\0", "disagree"),
    (b"y", b"\0", "empty"),
    (b"h", b"Bad Name\0v\0", "field name"),
    (b"h", b"X\0", "expected 2"),
    (b"i", b"\0\0", "index"),
    (b"+", b"<a b>\0", "recipient"),
    (b"+", b"\0", "recipient"),
])
def test_bad_responses(cmd: bytes, payload: bytes, why: str) -> None:
    with pytest.raises(MilterProtocolError, match=why):
        proto.parse_response(cmd, payload)


def test_decoder_waits_then_refuses_impossible_lengths() -> None:
    d = proto.Decoder(max_packet=100)
    d.feed(b"\0\0")
    assert d.next() is None
    d.feed(b"\0\x02c")
    assert d.next() is None  # 1 of 2 bytes
    d.feed(b"x")
    assert d.next() == (b"c", b"x")
    d.feed(b"\0\0\0\0")
    with pytest.raises(MilterProtocolError, match="empty"):
        d.next()
    d = proto.Decoder(max_packet=100)
    d.feed(b"\0\0\0\x65")  # 101: refused before its bytes arrive, not waited for
    with pytest.raises(MilterProtocolError, match="limit"):
        d.next()


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(list(Rsp)), st.binary(max_size=300)), max_size=6),
       st.integers(min_value=1, max_value=64))
def test_round_trip_in_any_split(items: list[tuple[Rsp, bytes]], step: int) -> None:
    stream = b"".join(proto.packet(r, p) for r, p in items)
    d = proto.Decoder()
    got = []
    for i in range(0, len(stream), step):
        d.feed(stream[i:i + step])
        while (p := d.next()) is not None:
            got.append(p)
    assert got == [(r.value, p) for r, p in items]


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=200))
def test_garbage_gives_packets_or_a_clear_error(data: bytes) -> None:
    """Any bytes: whole packets, a wait for more (bounded by the length field), or
    MilterProtocolError; and every packet parses or is refused with that error."""
    d = proto.Decoder(max_packet=1000)
    d.feed(data)
    try:
        while (p := d.next()) is not None:
            try:
                rsp = proto.parse_response(*p)
            except MilterProtocolError:
                continue
            assert isinstance(rsp, (Decision, proto.Progress, *proto.NEEDS))
    except MilterProtocolError:
        return
    if d.pending >= 4:
        (length,) = struct.unpack("!I", data[-d.pending:][:4])
        assert d.pending < 4 + length <= 4 + 1000  # a truncated packet, no more than the limit


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=120), st.sampled_from([b"i", b"m", b"h", b"+", b"2", b"-", b"e", b"y", b"q"]))
def test_response_payload_fuzz(payload: bytes, cmd: bytes) -> None:
    try:
        proto.parse_response(cmd, payload)
    except MilterProtocolError:
        pass
