"""Table tests on the stored model: types, offsets, lines, envelopes; purity."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import postroom.mime
from postroom.mime import Address, parse

DATA = Path(__file__).parent / "data"


def load(name: str) -> bytes:
    return (DATA / f"{name}.eml").read_bytes()


@pytest.mark.parametrize(
    "name,shape",
    [
        ("simple_text", "text/plain"),
        ("no_content_type", "text/plain"),
        ("mixed_attach", "multipart/mixed[text/plain,application/pdf]"),
        ("alt_in_mixed", "multipart/mixed[multipart/alternative[text/plain,text/html],image/png]"),
        ("nested_rfc822", "multipart/mixed[text/plain,message/rfc822[multipart/alternative[text/plain,text/html]]]"),
        ("digest", "multipart/digest[message/rfc822[text/plain],text/plain]"),
        ("no_parts", "multipart/mixed[]"),
        ("no_close_delim", "multipart/mixed[text/plain,text/plain]"),
        ("message_rfc822_top", "message/rfc822[text/plain]"),
        ("broken_ctype", "text/"),
        ("empty_message", "text/plain"),
    ],
)
def test_tree_shape(name: str, shape: str) -> None:
    def fmt(p: postroom.mime.Part) -> str:
        s = f"{p.type}/{p.subtype}"
        if p.children or p.is_multipart:
            s += "[" + ",".join(fmt(c) for c in p.children) + "]"
        return s

    assert fmt(parse(load(name)).root) == shape


def test_offsets_and_counts() -> None:
    raw = load("mixed_attach")
    root = parse(raw).root
    assert root.header_start == 0 and root.body_start == raw.index(b"\r\n\r\n") + 4
    assert root.body_end == len(raw)
    text, pdf = root.children
    assert raw[text.body_start:text.body_end] == b"Caf=C3=A9 ol=C3=A9"
    assert (text.size, text.lines, text.encoding, text.charset) == (18, 0, "quoted-printable", "utf-8")
    assert raw[pdf.header_start:pdf.header_start + 13] == b"Content-Type:"
    assert (pdf.content_id, pdf.description, pdf.disposition) == ("<pdf1@example.org>", "The report", "attachment")
    assert pdf.disposition_params == (("filename", "report.pdf"), ("size", "12"))


def test_envelope_model_groups() -> None:
    env = parse(load("groups")).envelope
    assert env.to == (
        Address(None, None, "Friends", None),
        Address(None, None, "b", "example.org"),
        Address("C D", None, "c", "example.org"),
        Address(None, None, None, None),
        Address(None, None, "e", "example.org"),
    )
    assert env.cc == (Address(None, None, "undisclosed-recipients", None), Address(None, None, None, None))


def test_envelope_rfc3501_example() -> None:
    expected = (
        b'("Wed, 17 Jul 1996 02:23:25 -0700 (PDT)" "IMAP4rev1 WG mtg summary and minutes" '
        b'(("Terry Gray" NIL "gray" "cac.washington.edu")) (("Terry Gray" NIL "gray" "cac.washington.edu")) '
        b'(("Terry Gray" NIL "gray" "cac.washington.edu")) ((NIL NIL "imap" "cac.washington.edu")) '
        b'((NIL NIL "minutes" "CNRI.Reston.VA.US")("John Klensin" NIL "KLENSIN" "MIT.EDU")) NIL NIL '
        b'"<B27397-0100000@cac.washington.edu>")'
    )
    assert postroom.mime.envelope(parse(load("simple_text"))) == expected


def test_bodystructure_rfc3501_like() -> None:
    p = parse(load("simple_text"))
    assert postroom.mime.bodystructure(p, extended=False) == b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 55 1)'


def test_eight_bit_header_roundtrip() -> None:
    raw = load("latin1_header")
    env = parse(raw).envelope
    assert env.subject is not None and env.subject.encode("utf-8", "surrogateescape") == b"caf\xe9"
    assert b"{4}\r\ncaf\xe9" in postroom.mime.envelope(parse(raw))


def test_no_asyncio_or_io_imports() -> None:
    """GUIDE principle 1: mime/ is a sans-I/O core."""
    banned = {"asyncio", "socket", "os", "io", "pathlib", "subprocess"}
    for path in Path(postroom.mime.__file__).parent.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for n in names:
                assert n.split(".")[0] not in banned, f"{path.name} imports {n}"
