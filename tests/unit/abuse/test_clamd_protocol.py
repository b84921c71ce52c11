"""clamd's INSTREAM framing and reply parser (postroom.abuse.clamd), without a clamd."""

from __future__ import annotations

import ast
import struct
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from postroom.abuse import clamd
from postroom.abuse.clamd import Status, Verdict


def test_framing_by_hand() -> None:
    wire = clamd.encode(b"abcdefg", chunk=3)
    assert wire == (b"zINSTREAM\0" + b"\0\0\0\3abc" + b"\0\0\0\3def" + b"\0\0\0\1g" + b"\0\0\0\0")
    assert clamd.encode(b"") == b"zINSTREAM\0\0\0\0\0"


@given(st.binary(max_size=5000), st.integers(min_value=1, max_value=700))
def test_framing_round_trips(data: bytes, chunk: int) -> None:
    wire = clamd.encode(data, chunk)
    assert clamd.decode_request(wire) == data
    # Every chunk but the last is full, and none is empty except the end mark.
    pos, sizes = len(clamd.COMMAND), []
    while (size := struct.unpack_from(">I", wire, pos)[0]) != 0:
        sizes.append(size)
        pos += 4 + size
    assert all(s == chunk for s in sizes[:-1]) and all(0 < s <= chunk for s in sizes)


def test_one_write_per_chunk() -> None:
    assert len(list(clamd.frames(b"x" * 10, chunk=100))) == 1  # a typical message: one send
    pieces = list(clamd.frames(b"x" * 10, chunk=4))
    assert [len(p) for p in pieces] == [10 + 4 + 4, 4 + 4, 4 + 2 + 4]


@pytest.mark.parametrize("bad", [b"INSTREAM\0", b"zINSTREAM\0\0\0", b"zINSTREAM\0\0\0\0\5ab",
                                 b"zINSTREAM\0\0\0\0\0extra"])
def test_decode_request_refuses_broken_requests(bad: bytes) -> None:
    with pytest.raises(ValueError):
        clamd.decode_request(bad)


@pytest.mark.parametrize(("raw", "verdict"), [
    (b"stream: OK\0", Verdict(Status.CLEAN)),
    (b"stream: OK\n", Verdict(Status.CLEAN)),
    (b"stream: Eicar-Signature FOUND\0", Verdict(Status.FOUND, "Eicar-Signature")),
    (b"stream: Win.Test.EICAR_HDB-1 FOUND\0", Verdict(Status.FOUND, "Win.Test.EICAR_HDB-1")),
    (b"INSTREAM size limit exceeded. ERROR\0", Verdict(Status.TOO_LARGE, "INSTREAM size limit exceeded.")),
    (b"stream: Can't allocate memory ERROR\0", Verdict(Status.ERROR, "Can't allocate memory")),
    (b"COMMAND READ TIMED OUT ERROR\0", Verdict(Status.ERROR, "COMMAND READ TIMED OUT")),
    (b"UNKNOWN COMMAND\0", Verdict(Status.ERROR, "unexpected reply: UNKNOWN COMMAND")),
    (b"", Verdict(Status.ERROR, "empty reply")),
    (b"stream:  FOUND\0", Verdict(Status.ERROR, "unexpected reply: stream:  FOUND")),
    (b"stream: Evil\r\nName\x1b FOUND\0", Verdict(Status.FOUND, "Evil??Name?")),
])
def test_replies(raw: bytes, verdict: Verdict) -> None:
    assert clamd.parse_reply(raw) == verdict


@given(st.binary(max_size=300))
def test_any_reply_gives_a_verdict_safe_to_echo(raw: bytes) -> None:
    v = clamd.parse_reply(raw)
    assert isinstance(v.status, Status)
    assert len(v.detail) <= clamd.MAX_NAME + len("unexpected reply: ")
    assert all(" " <= c <= "~" for c in v.detail)
    if v.status is Status.FOUND:
        # The name goes into a 550 reply and a log line: one printable ASCII line.
        assert v.detail and all(" " <= c <= "~" for c in v.detail) and len(v.detail) <= clamd.MAX_NAME


@given(st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=60))
def test_found_names_survive(name: str) -> None:
    assert clamd.parse_reply(f"stream: {name} FOUND\0".encode()) == Verdict(Status.FOUND, name)


def test_reply_reader_stops_at_nul_and_bounds_the_reply() -> None:
    r = clamd.ReplyReader()
    assert not r.feed(b"stream: O")
    assert r.feed(b"K\0")
    assert r.verdict() == Verdict(Status.CLEAN)
    r = clamd.ReplyReader()
    with pytest.raises(ValueError):
        for _ in range(100):
            r.feed(b"x" * 100)


def test_the_protocol_module_does_no_io() -> None:
    """GUIDE principle 1: the framing and parser are sans-I/O (postroom.abuse.clamav does the I/O)."""
    tree = ast.parse(Path(clamd.__file__).read_text(encoding="utf-8"))
    names = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    names |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert not names & {"asyncio", "socket", "ssl", "selectors", "subprocess"}, names
