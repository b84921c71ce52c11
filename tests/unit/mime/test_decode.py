"""Decoded headers/body for SEARCH, Date, params, and the email-package cross-check."""

from __future__ import annotations

import email
import email.policy
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from postroom.mime import body_text, decoded_headers, header_date, imap_nstring, imap_quote, parse
from postroom.mime.imapfmt import imap_string_for_humans

DATA = Path(__file__).parent / "data"


def load(name: str) -> bytes:
    return (DATA / f"{name}.eml").read_bytes()


def test_decoded_headers_encoded_words() -> None:
    raw = load("encoded_words")
    h = dict(decoded_headers(raw, parse(raw)))
    assert h["subject"] == "café time"
    assert h["from"] == "Jörg Müller <jm@example.de>"
    assert h["to"] == "Ärger <a@example.de>"


def test_decoded_headers_unfolds_and_keeps_order() -> None:
    raw = load("folded_headers")
    names = [n for n, _ in decoded_headers(raw, parse(raw))]
    assert names == ["subject", "content-type", "content-description"]
    assert dict(decoded_headers(raw, parse(raw)))["subject"] == "a long\tsubject line"


@pytest.mark.parametrize(
    "name,needle",
    [("mixed_attach", "Café olé"), ("eightbit_headers", "Grüße"), ("nested_rfc822", "inner text"),
     ("latin1_header", "\ufffd"), ("no_content_type", "line two")],
)
def test_body_text(name: str, needle: str) -> None:
    raw = load(name)
    assert needle in body_text(raw, parse(raw))


def test_body_text_skips_attachments() -> None:
    raw = load("mixed_attach")
    assert "Hello world" not in body_text(raw, parse(raw))


def test_header_date() -> None:
    p = parse(load("simple_text"))
    assert header_date(p) == datetime(1996, 7, 17, 2, 23, 25, tzinfo=timezone(timedelta(hours=-7)))
    assert header_date(parse(b"Date: not a date\r\n\r\n")) is None
    assert header_date(parse(b"\r\n")) is None


def test_rfc2231_params_decoded_and_wire() -> None:
    p = parse(load("rfc2231"))
    att = p.root.children[0]
    assert att.param("name") == "€ rates.txt"
    assert att.params_wire == (("X-Foo", "Bar"), ("name*", "utf-8''%E2%82%AC rates.txt"))  # as Dovecot: only "%" re-escaped
    assert dict(att.disposition_params)["filename"] == "été.txt"
    assert att.language == ("en", "de")


@pytest.mark.parametrize(
    "value,expected",
    [(b"abc", b'"abc"'), (b'a"b', b'"a\\"b"'), (b"\\\\\\\\\\", b"{5}\r\n\\\\\\\\\\"),
     (b"a\r\nb", b"{4}\r\na\r\nb"), ("é", b"{2}\r\n\xc3\xa9"), (b"", b'""')],
)
def test_imap_quote(value: bytes | str, expected: bytes) -> None:
    assert imap_quote(value) == expected


def test_imap_nstring_and_humans() -> None:
    assert imap_nstring(None) == b"NIL"
    assert imap_string_for_humans(b"  a \r\n\t b ") == b"{3}\r\na b"
    assert imap_string_for_humans(b"plain text") == b'"plain text"'
    assert imap_string_for_humans(b"   ") == b'""'


@pytest.mark.parametrize("name", sorted(p.stem for p in DATA.glob("*.eml")))
def test_cross_check_with_email_package(name: str) -> None:
    """Our tree agrees with the stdlib parser on shape, types and leaf payloads."""
    raw = load(name)
    ours = parse(raw).root
    theirs = email.message_from_bytes(raw, policy=email.policy.compat32)

    def shape(part, msg) -> None:  # type: ignore[no-untyped-def]
        if ours_multipart(part) and msg.is_multipart() and part.children:
            kids = msg.get_payload()
            assert len(part.children) == len(kids)
            for c, m in zip(part.children, kids):
                shape(c, m)
        elif not part.is_multipart and not part.is_message and not msg.is_multipart():
            assert part.type == msg.get_content_maintype() or not part.type
            payload = msg.get_payload(decode=False)
            got = raw[part.body_start:part.body_end].decode("utf-8", "surrogateescape")
            assert got.replace("\r\n", "\n").rstrip("\n") == payload.replace("\r\n", "\n").rstrip("\n")

    def ours_multipart(part) -> bool:  # type: ignore[no-untyped-def]
        return part.is_multipart

    if name in {"header_only_no_blank", "quirky_addresses", "broken_ctype", "latin1_header"}:
        pytest.skip("email and Dovecot disagree on these; we follow Dovecot")
    shape(ours, theirs)
