"""Authentication-Results (RFC 8601): the field we write, and forged ones removed (§5)."""

from __future__ import annotations

import email
import email.policy

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from postroom.mailauth.model import ArcResult, Checks, DkimResult, DmarcResult, SpfResult
from postroom.mailauth.results import authentication_results, authserv_id, comment, strip_forged, value

ID = "mail.example.org"
SPF = SpfResult("pass", "example.com", reason="192.0.2.1 matched ip4:192.0.2.0/24")
DKIM = DkimResult("pass", "example.com", "sel", "rsa-sha256", "abcdefgh")
DMARC = DmarcResult("pass", "example.com", "reject", "reject", "example.com", True, True, "SPF and DKIM aligned")


@pytest.mark.parametrize("checks, expected", [
    (Checks(), "Authentication-Results: mail.example.org; none\r\n"),
    (Checks(spf=SPF, dkim=(DKIM,), dmarc=DMARC, arc=ArcResult("pass")),
     "Authentication-Results: mail.example.org;\r\n"
     "\tspf=pass (192.0.2.1 matched ip4:192.0.2.0/24) smtp.mailfrom=example.com;\r\n"
     "\tdkim=pass header.d=example.com header.s=sel header.a=rsa-sha256\r\n"
     "\theader.b=abcdefgh;\r\n"
     "\tdmarc=pass (p=reject) header.from=example.com;\r\n"
     "\tarc=pass\r\n"),
    # One spf= result: the MAIL FROM one; the HELO one only when there is no other.
    (Checks(spf=SpfResult("fail", "example.com"), helo=SpfResult("pass", "mx.example.com", "helo")),
     "Authentication-Results: mail.example.org;\r\n\tspf=fail smtp.mailfrom=example.com\r\n"),
    (Checks(helo=SpfResult("none", "mx.example.com", "helo")),
     "Authentication-Results: mail.example.org;\r\n\tspf=none smtp.helo=mx.example.com\r\n"),
    (Checks(spf=SpfResult("pass", "mx.example.com", "helo")),  # a bounce: postmaster@HELO
     "Authentication-Results: mail.example.org;\r\n\tspf=pass smtp.helo=mx.example.com\r\n"),
    (Checks(dkim=(DkimResult("fail", "a.example", "s1", "ed25519-sha256", "ab+/cd=", "@a.example", "bad sig"),
                  DkimResult("none"))),
     "Authentication-Results: mail.example.org;\r\n"
     "\tdkim=fail (bad sig) header.d=a.example header.i=@a.example header.s=s1\r\n"
     "\theader.a=ed25519-sha256 header.b=\"ab+/cd=\";\r\n"
     "\tdkim=none\r\n"),
    (Checks(dmarc=DmarcResult("fail", "news.example.com", "quarantine", "reject", "example.com", reason="x")),
     "Authentication-Results: mail.example.org;\r\n"
     "\tdmarc=fail (p=reject policy=quarantine) header.from=news.example.com\r\n"),
    (Checks(dmarc=DmarcResult("none", "example.com", reason="no DMARC record")),
     "Authentication-Results: mail.example.org;\r\n\tdmarc=none (no DMARC record) header.from=example.com\r\n"),
    (Checks(dmarc=DmarcResult("permerror", reason="no From field")),
     "Authentication-Results: mail.example.org;\r\n\tdmarc=permerror (no From field)\r\n"),
    (Checks(arc=ArcResult("fail", 2, "seal (i=2) broken")),
     "Authentication-Results: mail.example.org;\r\n\tarc=fail (i=2; seal \\(i=2\\) broken)\r\n"),
])
def test_authentication_results(checks: Checks, expected: str) -> None:
    assert authentication_results(ID, checks) == expected.encode()


@pytest.mark.parametrize("text, expected", [
    ("plain words", "(plain words)"),
    ("a (nested) b", "(a \\(nested\\) b)"),
    ("back\\slash", "(back\\\\slash)"),
    ("line\r\nbreak\tand\x00nul", "(line break and nul)"),
    ("caf\u00e9 \u2603", "(caf? ?)"),
    ("  \r\n ", ""),
    (")", "(\\))"),
])
def test_comment_is_sanitized(text: str, expected: str) -> None:
    assert comment(text) == expected


@pytest.mark.parametrize("text, expected", [
    ("example.com", "example.com"),
    ("user@example.com", "user@example.com"),
    ("@example.com", "@example.com"),
    ("ab+/cd=", '"ab+/cd="'),
    ('a"b\\c', '"a\\"b\\\\c"'),
    ("two words", '"two words"'),
    ("x;y", '"x;y"'),
    ("b\u00fccher.de\r\n", '"b?cher.de"'),
])
def test_property_values(text: str, expected: str) -> None:
    assert value(text) == expected


def test_hostile_text_stays_in_one_well_formed_field() -> None:
    evil = "x) ; dmarc=pass (\r\nAuthentication-Results: " + ID + "; dkim=pass" + "\u00e9(" * 2000
    checks = Checks(spf=SpfResult("fail", evil, reason=evil), dkim=(DkimResult("fail", evil, evil, evil, evil,
                                                                                evil, evil),),
                    dmarc=DmarcResult("permerror", evil, reason=evil), arc=ArcResult("fail", 1, evil))
    out = authentication_results(ID, checks)
    assert out.isascii() and out.endswith(b"\r\n")
    lines = out.split(b"\r\n")[:-1]
    assert all(len(line) < 998 for line in lines)
    assert all(line.startswith(b"\t") for line in lines[1:])  # every break is a fold
    assert strip_forged(out + b"Subject: x\r\n\r\nbody", ID) == (b"Subject: x\r\n\r\nbody", 1)
    msg = email.message_from_bytes(out + b"\r\nbody\r\n", policy=email.policy.compat32)
    assert len(msg.get_all("Authentication-Results") or []) == 1
    # What a parser finds in it: our id, then exactly the four results.
    unfolded = out.replace(b"\r\n\t", b" ")
    assert authserv_id(unfolded.split(b":", 1)[1]) == ID.encode()
    assert [p.split(b"=")[0].strip() for p in _resinfos(unfolded)] == [b"spf", b"dkim", b"dmarc", b"arc"]


def _resinfos(field: bytes) -> list[bytes]:
    """Split at top-level ";" (outside comments and quoted strings)."""
    parts, cur, depth, quoted, esc = [], bytearray(), 0, False, False
    for c in field.split(b":", 1)[1]:
        ch = bytes([c])
        if esc:
            esc = False
        elif ch == b"\\":
            esc = True
        elif quoted:
            quoted = ch != b'"'
        elif ch == b'"' and not depth:
            quoted = True
        elif ch == b"(":
            depth += 1
        elif ch == b")":
            depth -= 1
        elif ch == b";" and not depth:
            parts.append(bytes(cur))
            cur = bytearray()
            continue
        cur += ch
    parts.append(bytes(cur))
    return [p for p in parts[1:]]


# -- strip_forged ----------------------------------------------------------------------

BODY = b"Authentication-Results: mail.example.org; dmarc=pass\r\n\r\nbody\r\n"


@pytest.mark.parametrize("message, expected, removed", [
    (b"Authentication-Results: mail.example.org; spf=pass\r\nSubject: x\r\n\r\n" + BODY,
     b"Subject: x\r\n\r\n" + BODY, 1),
    # folded, with continuation lines, among other fields
    (b"Received: a\r\nAuthentication-Results: mail.example.org;\r\n\tspf=pass;\r\n  dkim=pass\r\n"
     b"Subject: x\r\n\r\nbody", b"Received: a\r\nSubject: x\r\n\r\nbody", 1),
    # any case of the name and the id, WSP before the colon, comments and folds before the id
    (b"authentication-results: MAIL.Example.ORG; dmarc=pass\r\n"
     b"AUTHENTICATION-RESULTS :  (forged)\r\n (nested (comment))\r\n mail.example.org 1; spf=pass\r\n"
     b"Authentication-Results:\"mail.example.org\"; dkim=pass\r\n"
     b"Authentication-Results: mail.example.org.; arc=pass\r\n"
     b"Subject: x\r\n\r\n", b"Subject: x\r\n\r\n", 4),
    # our id in another server's comment or results is theirs to claim: kept
    (b"Authentication-Results: other.example; spf=pass (mail.example.org) smtp.mailfrom=mail.example.org\r\n"
     b"Authentication-Results: (mail.example.org) other.example; none\r\n"
     b"Authentication-Results: mail.example.org.evil; none\r\n"
     b"Authentication-Results: mail.example.orgx; none\r\n"
     b"X-Authentication-Results: mail.example.org; none\r\n"
     b"ARC-Authentication-Results: i=1; mail.example.org; none\r\n\r\nbody", None, 0),
    # only the header block: a forged field after the empty line is body
    (b"Subject: x\r\n\r\n" + BODY, None, 0),
    # bare LF line endings
    (b"Subject: x\nAuthentication-Results: mail.example.org;\n spf=pass\nTo: y\n\nAuthentication-Results: "
     b"mail.example.org; none\n", b"Subject: x\nTo: y\n\nAuthentication-Results: mail.example.org; none\n", 1),
    # no body, no empty line, no final line break
    (b"Subject: x\r\nAuthentication-Results: mail.example.org; none", b"Subject: x\r\n", 1),
    (b"Authentication-Results: mail.example.org; none\r\n", b"", 1),
    (b"", None, 0),
    # a leading continuation line or a line that is no field is kept as it is
    (b" odd\r\nnot a field\r\nAuthentication-Results: mail.example.org; none\r\n\r\nb",
     b" odd\r\nnot a field\r\n\r\nb", 1),
    # 8-bit octets elsewhere are untouched
    (b"Subject: \xff\xfe\r\nAuthentication-Results: mail.example.org; none\r\n\r\n\xff",
     b"Subject: \xff\xfe\r\n\r\n\xff", 1),
])
def test_strip_forged(message: bytes, expected: bytes | None, removed: int) -> None:
    out, n = strip_forged(message, ID)
    assert (out, n) == (message if expected is None else expected, removed)


def test_strip_forged_our_id_any_case() -> None:
    out, n = strip_forged(b"Authentication-Results: mail.example.org; none\r\n\r\n", "MAIL.EXAMPLE.ORG")
    assert (out, n) == (b"\r\n", 1)


_LINE_PARTS = st.sampled_from([
    "Authentication-Results:", "authentication-results :", " mail.example.org", "MAIL.example.org", ";",
    " none", "(", ")", "\\", '"', "other.example", " ", "\t", "Subject: x", "spf=pass", "\xff", ":",
])
_HEAD_LINE = st.lists(_LINE_PARTS, min_size=1, max_size=6).map("".join).map(lambda s: s.encode("latin-1")) \
    .filter(lambda b: b.strip(b" \t") != b"" or b == b"")


@given(st.lists(_HEAD_LINE.filter(bool), max_size=10), st.sampled_from([b"\r\n", b"\n"]),
       st.binary(max_size=200), st.booleans())
@settings(max_examples=300, deadline=None)
def test_strip_forged_keeps_the_body(lines: list[bytes], eol: bytes, body: bytes, with_body: bool) -> None:
    body = body + b"\r\nAuthentication-Results: mail.example.org; none\r\n"
    message = b"".join(line + eol for line in lines) + (eol + body if with_body else b"")
    out, n = strip_forged(message, ID)
    if with_body:
        assert out.endswith(eol + body)
    assert len(out) <= len(message) and n >= 0
    assert (n == 0) == (out == message)
    assert strip_forged(out, ID) == (out, 0)  # nothing of ours is left to find


@given(st.binary(max_size=500))
@settings(max_examples=300, deadline=None)
def test_strip_forged_never_raises(data: bytes) -> None:
    out, n = strip_forged(data, ID)
    assert strip_forged(out, ID) == (out, 0)
    assert len(out) <= len(data)
