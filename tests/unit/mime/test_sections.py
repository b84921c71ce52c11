"""BODY[section] bytes checked against hand-computed offsets (RFC 9051 §6.4.5)."""

from __future__ import annotations

from pathlib import Path

import pytest

from postroom.mime import parse, section

DATA = Path(__file__).parent / "data"


def load(name: str) -> bytes:
    return (DATA / f"{name}.eml").read_bytes()


NESTED = load("nested_rfc822")
INNER_START = NESTED.index(b"From: Inner")
INNER_BODY = NESTED.index(b"--b2\r\n", INNER_START)

CASES: list[tuple[str, bytes, str, bytes | None]] = [
    ("whole", NESTED, "", NESTED),
    ("header", NESTED, "HEADER", NESTED[: NESTED.index(b"\r\n\r\n") + 4]),
    ("text", NESTED, "TEXT", NESTED[NESTED.index(b"\r\n\r\n") + 4:]),
    ("part1", NESTED, "1", b"see attached"),
    ("part1 mime", NESTED, "1.MIME", b"\r\n"),
    # The CRLF before "--b1--" also ends the nested "--b2--" line, so (as in Dovecot) it stays in part 2.
    ("rfc822 body", NESTED, "2", NESTED[INNER_START: NESTED.index(b"--b1--")]),
    ("rfc822 mime", NESTED, "2.MIME",
     b"Content-Type: message/rfc822\r\nContent-Disposition: attachment\r\n\r\n"),
    ("embedded header", NESTED, "2.HEADER", NESTED[INNER_START:INNER_BODY]),
    ("embedded text", NESTED, "2.TEXT", NESTED[INNER_BODY: NESTED.index(b"--b1--")]),
    ("embedded part", NESTED, "2.1", b"inner text"),
    ("embedded part 2", NESTED, "2.2", b"<b>inner</b>"),
    ("embedded part mime", NESTED, "2.2.MIME", b"Content-Type: text/html\r\n\r\n"),
    ("embedded fields", NESTED, "2.HEADER.FIELDS (subject FROM)",
     b"From: Inner Person <inner@example.com>\r\nSubject: inner\r\n\r\n"),
    ("fields", NESTED, "HEADER.FIELDS (To Subject)", b"To: b@example.org\r\nSubject: Fwd: inner\r\n\r\n"),
    ("fields not", NESTED, "header.fields.not (From To Subject)",
     b"Content-Type: multipart/mixed; boundary=b1\r\n\r\n"),
    ("fields none match", NESTED, "HEADER.FIELDS (X-Nope)", b"\r\n"),
    ("missing part", NESTED, "3", None),
    ("missing nested", NESTED, "1.1", None),
    ("HEADER of non-message part", NESTED, "1.HEADER", None),
    ("part zero", NESTED, "0", None),
    ("garbage spec", NESTED, "BOGUS", None),
    ("fields without list", NESTED, "HEADER.FIELDS", None),
    ("single part 1", load("no_content_type"), "1", b"line one\r\nline two\r\n"),
    ("single part 1.MIME", load("no_content_type"), "1.MIME", b"From: a@example.org\r\nSubject: plain\r\n\r\n"),
    ("single part 2", load("no_content_type"), "2", None),
    ("folded field kept", load("folded_headers"), "HEADER.FIELDS (SUBJECT)",
     b"Subject: a long\r\n\tsubject line\r\n\r\n"),
    ("no blank line header", load("header_only_no_blank"), "HEADER.FIELDS (SUBJECT)",
     b"Subject: no blank line\r\n\r\n"),
    ("no blank line text", load("header_only_no_blank"), "TEXT", b""),
    ("bare lf part", load("bare_lf"), "1", b"line\nline2"),
    ("unterminated last part", load("no_close_delim"), "2", b"second never closed\r\n"),
    ("top-level rfc822 body", load("message_rfc822_top"), "1.1", b"hello\r\n"),
    ("top-level rfc822 header", load("message_rfc822_top"), "1.HEADER", b"Subject: inside\r\n\r\n"),
    ("empty message", b"", "", b""),
    ("empty message text", b"", "TEXT", b""),
]


@pytest.mark.parametrize("raw,spec,expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_section(raw: bytes, spec: str, expected: bytes | None) -> None:
    assert section(raw, parse(raw), spec) == expected


def test_alternative_inside_mixed_offsets() -> None:
    raw = load("alt_in_mixed")
    p = parse(raw)
    assert section(raw, p, "1.1") == b"plain"
    assert section(raw, p, "1.2") == b"<p>html</p>"
    assert section(raw, p, "2") == b"iVBORw0KGgo="
    # The nested multipart keeps its close delimiter and the blank epilogue line.
    assert section(raw, p, "1").endswith(b"--outer-alt--\r\n")
