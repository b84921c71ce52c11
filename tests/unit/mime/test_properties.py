"""Hypothesis properties: parse() never raises, offsets are sane, JSON round-trips."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from postroom.mime import (
    ParsedMessage,
    Part,
    body_text,
    bodystructure,
    decoded_headers,
    envelope,
    header_date,
    parse,
    section,
)

DATA = Path(__file__).parent / "data"
SAMPLES = [p.read_bytes() for p in sorted(DATA.glob("*.eml")) if p.stat().st_size]

# Bytes that steer the parser into its interesting paths.
FRAGMENTS = [b"\r\n", b"\n", b"\r", b"--", b"--b", b"--b--", b":", b";", b"=", b'"', b"\\", b"(", b")",
             b"<", b">", b"@", b",", b" ", b"\t", b"Content-Type: multipart/mixed; boundary=b\r\n",
             b"Content-Type: message/rfc822\r\n", b"name*0*=utf-8''%E2", b"=?utf-8?q?x?=", b"\xff", b"\x00"]


def check(raw: bytes) -> None:
    p = parse(raw)
    assert p.size == len(raw)

    def walk(part: Part, lo: int, hi: int) -> None:
        assert lo <= part.header_start <= part.body_start <= part.body_end <= hi
        prev = part.body_start
        for c in part.children:
            assert c.header_start >= prev  # children in order, not overlapping
            walk(c, part.body_start, part.body_end)
            prev = c.body_end

    walk(p.root, 0, len(raw))
    # The caller's count of the message's line breaks (the delivery path's shortcut) gives
    # the same tree as counting them in the parse.
    assert parse(raw, raw.count(b"\n")) == p
    d = json.loads(json.dumps(p.to_json()))
    assert ParsedMessage.from_json(d) == p
    assert section(raw, p, "") == raw
    assert section(raw, p, "HEADER") is not None
    # Formatting must not raise either, and must be bytes.
    assert isinstance(envelope(p), bytes) and isinstance(bodystructure(p), bytes)
    assert isinstance(bodystructure(p, extended=False), bytes)
    for spec in ("TEXT", "1", "1.MIME", "2.1", "1.HEADER", "HEADER.FIELDS (SUBJECT)"):
        r = section(raw, p, spec)
        assert r is None or isinstance(r, bytes)
    decoded_headers(raw, p)
    body_text(raw, p)
    header_date(p)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2000))
def test_arbitrary_bytes(raw: bytes) -> None:
    check(raw)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(FRAGMENTS) | st.binary(max_size=8), max_size=60))
def test_fragment_soup(chunks: list[bytes]) -> None:
    check(b"".join(chunks))


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(SAMPLES), st.data())
def test_mutated_samples(sample: bytes, data: st.DataObject) -> None:
    raw = bytearray(sample)
    for _ in range(data.draw(st.integers(1, 6))):
        op = data.draw(st.sampled_from(["delete", "insert", "flip", "truncate"]))
        pos = data.draw(st.integers(0, len(raw)))
        if op == "delete" and raw:
            del raw[pos: pos + data.draw(st.integers(1, 20))]
        elif op == "insert":
            raw[pos:pos] = data.draw(st.sampled_from(FRAGMENTS))
        elif op == "flip" and pos < len(raw):
            raw[pos] = data.draw(st.integers(0, 255))
        elif op == "truncate":
            del raw[pos:]
    check(bytes(raw))


def test_deep_nesting_is_bounded() -> None:
    raw = b"Content-Type: message/rfc822\r\n\r\n" * 500 + b"body"
    check(raw)


def test_many_parts_bounded() -> None:
    raw = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n" + b"--b\r\n\r\nx\r\n" * 20000 + b"--b--\r\n"
    p = parse(raw)
    assert len(p.root.children) <= 5000
    check(raw)


def _fields_reference(raw: bytes, start: int, end: int, names: tuple[str, ...]) -> bytes:
    """HEADER.FIELDS as split_header + filter computed it before the one-pass version."""
    from postroom.mime.headers import split_header

    fields, _ = split_header(raw, start, end)
    wanted = {n.lower().encode("ascii", "replace") for n in names}
    out = bytearray()
    for f in fields:
        if f.name.lower() in wanted:
            chunk = raw[f.start:f.end]
            out += chunk if chunk.endswith(b"\n") else chunk + b"\r\n"
    return bytes(out + b"\r\n")


HEADER_FRAGMENTS = [b"\r\n", b"\n", b"\r", b" ", b"\t", b":", b"Subject", b"subject", b"From", b"To ",
                    b"X-A", b"Subject:", b" Subject:", b"From :", b"\tcont", b"\r\n\r\n", b"\n\n", b"\xff"]


@settings(max_examples=1000, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(HEADER_FRAGMENTS) | st.binary(max_size=4), max_size=40), st.data())
def test_header_fields_fast_path_matches_split_header(chunks: list[bytes], data: st.DataObject) -> None:
    from postroom.mime.sections import _filter_fields

    raw = b"".join(chunks)
    start = data.draw(st.integers(0, len(raw)))
    end = data.draw(st.integers(start, len(raw)))
    names = data.draw(st.lists(st.sampled_from(["SUBJECT", "FROM", "TO", "X-A", "NOPE"]), min_size=1, max_size=3))
    assert _filter_fields(raw, start, end, tuple(names), False) == _fields_reference(raw, start, end, tuple(names))


def test_header_fields_fast_path_on_samples() -> None:
    from postroom.mime.sections import _filter_fields

    for sample in SAMPLES:
        p = parse(sample)
        assert _filter_fields(sample, 0, p.root.body_start, ("SUBJECT", "FROM", "TO", "DATE"), False) == \
            _fields_reference(sample, 0, p.root.body_start, ("SUBJECT", "FROM", "TO", "DATE"))
