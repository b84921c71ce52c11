"""Content-Transfer-Encoding removal for IMAP BINARY (RFC 3516, RFC 2045 §6): total on garbage,
equal to what Python's email package decodes for well-formed parts."""

from __future__ import annotations

import base64
import email
import email.policy
import quopri

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from postroom.mime import UnknownCte, binary_section, decode_transfer, parse

ENCODINGS = ["base64", "quoted-printable", "7bit", "8bit", "binary", None, "BASE64", " Quoted-Printable"]


@pytest.mark.parametrize("body,enc,expected", [
    (b"aGVsbG8=\r\n", "base64", b"hello"),
    (b"aGVs\r\nbG8\r\n", "base64", b"hello"),  # missing padding tolerated
    (b"aGV!s bG8=", "Base64", b"hello"),  # RFC 2045 §6.8: characters outside the alphabet ignored
    (b"AAEC", "base64", b"\x00\x01\x02"),
    (b"a=3Db=3db\r\n", "quoted-printable", b"a=b=b\r\n"),
    (b"soft=\r\nbreak", "quoted-printable", b"softbreak"),
    (b"trail  \r\nx", "quoted-printable", b"trail\r\nx"),  # §6.7 rule 3: transport padding removed
    (b"=ZZ=4", "quoted-printable", b"=ZZ=4"),  # malformed "=" kept
    (b"\x00\xff\r\n", "binary", b"\x00\xff\r\n"),
    (b"as is", None, b"as is"),
    (b"as is", "8bit", b"as is"),
])
def test_decode_table(body, enc, expected):
    assert decode_transfer(body, enc) == expected


@pytest.mark.parametrize("enc", ["x-uuencode", "uuencode", "foo", "7-bit"])
def test_unknown_cte(enc):
    with pytest.raises(UnknownCte):
        decode_transfer(b"data", enc)


@given(st.binary(max_size=400), st.sampled_from(ENCODINGS))
@settings(max_examples=400)
def test_garbage_never_raises(body, enc):
    assert isinstance(decode_transfer(body, enc), bytes)


@given(st.lists(st.sampled_from([b"=", b"==", b"=\r\n", b"\r\n", b"\n", b" ", b"\t", b"A", b"z9", b"/+",
                                 b"=4", b"=4G", b"=0a", b"\x00", b"\xff", b"-"]), max_size=60),
       st.sampled_from(["base64", "quoted-printable"]))
def test_tricky_fragments_never_raise(parts, enc):
    assert isinstance(decode_transfer(b"".join(parts), enc), bytes)


def _part_message(payload: bytes, enc: str) -> bytes:
    return (b"From: a@x.test\r\nSubject: t\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: multipart/mixed; boundary=\"XX\"\r\n\r\n"
            b"--XX\r\nContent-Type: text/plain\r\n\r\nfirst\r\n"
            b"--XX\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: " + enc.encode()
            + b"\r\n\r\n" + payload + b"\r\n--XX--\r\n")


def _email_decoded(raw: bytes) -> bytes:
    m = email.message_from_bytes(raw, policy=email.policy.compat32)
    part = m.get_payload()[1]
    return part.get_payload(decode=True)  # type: ignore[no-any-return]


@given(st.binary(max_size=600))
@settings(max_examples=300)
def test_base64_equals_email_package(data):
    raw = _part_message(base64.encodebytes(data).replace(b"\n", b"\r\n").rstrip(b"\r\n"), "base64")
    ours = binary_section(raw, parse(raw), "2")
    assert ours == data == _email_decoded(raw)


@given(st.binary(max_size=600))
@settings(max_examples=300)
def test_quoted_printable_equals_email_package(data):
    # quopri keeps "\n" in the data as line breaks; on the wire they are CRLF (RFC 2045 §6.7).
    enc = quopri.encodestring(data).replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    raw = _part_message(enc.rstrip(b"\r\n") if not enc.endswith(b"=\r\n") else enc[:-3], "quoted-printable")
    ours = binary_section(raw, parse(raw), "2")
    assert ours == _email_decoded(raw)


def test_binary_section_sections():
    raw = _part_message(b"AAECAw==", "base64")
    p = parse(raw)
    assert binary_section(raw, p, "") == raw  # the whole message, as it is
    assert binary_section(raw, p, "1") == b"first"
    assert binary_section(raw, p, "2") == b"\x00\x01\x02\x03"
    assert binary_section(raw, p, "3") is None
    assert binary_section(raw, p, "2.TEXT") is None
    bad = _part_message(b"begin 644 x", "x-uuencode")
    with pytest.raises(UnknownCte):
        binary_section(bad, parse(bad), "2")


# -- RFC 6858 §3 ENVELOPE downgrade (used for sessions without UTF8=ACCEPT) --------------
from email.header import decode_header, make_header  # noqa: E402

from postroom.mime.envelope import downgraded, encoded_words  # noqa: E402
from postroom.mime.model import Address, Envelope  # noqa: E402


@given(st.text(min_size=1, max_size=300).filter(lambda s: s.strip() == s and "\x00" not in s))
def test_encoded_words_round_trip(s):
    enc = encoded_words(s)
    assert enc.isascii() and all(len(w) <= 75 for w in enc.split(" "))
    assert str(make_header(decode_header(enc))) == s


def test_downgraded_envelope():
    env = Envelope(subject="Grüße", from_=(Address("Jörg", None, "j", "x.test"),),
                   to=(Address(None, None, "jörg", "bücher.example"), Address(None, None, "a", "b.test")))
    d = downgraded(env)
    assert d.subject == encoded_words("Grüße")
    assert d.from_ == (Address(encoded_words("Jörg"), None, "j", "x.test"),)
    assert d.to == (Address(None, None, encoded_words("jörg@bücher.example"), None), Address(None, None, None, None),
                    Address(None, None, "a", "b.test"))
    ascii_env = Envelope(subject="plain", from_=(Address(None, None, "a", "b"),))
    assert downgraded(ascii_env) is ascii_env
    raw8 = Envelope(subject=b"caf\xe9".decode("utf-8", "surrogateescape"))  # not UTF-8: no charset to name
    assert downgraded(raw8) is raw8
