"""DMARC's From scan (dmarc._from_values) finds what a parse of every header field found."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from postroom.mailauth import dmarc


def _every_field(message: bytes) -> list[tuple[bytes, bytes]]:
    """The former dmarc._header_fields: (lower-case name, unfolded value) of every field."""
    fields: list[tuple[bytes, bytes]] = []
    end = message.find(b"\n\r\n")
    lf = message.find(b"\n\n", 0, end if end >= 0 else len(message))
    end = lf if lf >= 0 else end
    for line in (message if end < 0 else message[:end]).split(b"\n"):
        if line.endswith(b"\r"):
            line = line[:-1]
        if not line:
            break
        if line[:1] in (b" ", b"\t"):
            if fields:
                fields[-1] = (fields[-1][0], fields[-1][1] + line)
            continue
        name, colon, value = line.partition(b":")
        fields.append((name.rstrip(b" \t").lower(), value) if colon else (b"", b""))
    return fields


_PIECES = st.sampled_from([b"From: a@b.example", b"FROM :x@y", b"from\t: <c@d>", b"Subject: s", b"From x",
                           b" folded", b"\tmore", b"DKIM-Signature: v=1;", b"\r\n", b"\n", b"\r", b":", b""])


@settings(max_examples=1000, deadline=None)
@given(st.lists(_PIECES, max_size=25).map(b"".join))
def test_from_values_as_every_field(message: bytes) -> None:
    expected = tuple(v for n, v in _every_field(message) if n == b"from")
    assert dmarc._from_values(message) == expected


def test_folded_from_after_a_folded_signature() -> None:
    message = (b"DKIM-Signature: v=1; a=rsa-sha256;\r\n\tb=abc\r\n def\r\n"
               b"From: Someone\r\n <someone@example.org>\r\nSubject: x\r\n\r\nFrom: body@example.net\r\n")
    assert dmarc._from_values(message) == (b" Someone <someone@example.org>",)
