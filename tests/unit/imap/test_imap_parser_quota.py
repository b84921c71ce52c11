"""Table tests for the RFC 9208 command arguments (imap/parser/quota.py)."""

from __future__ import annotations

import pytest

from postroom.imap.errors import ParseError
from postroom.imap.parser.base import Reader
from postroom.imap.parser.quota import SetQuotaArgs, getquotaroot, quota_root, setquota


@pytest.mark.parametrize("raw, want", [
    (b" INBOX", "INBOX"),
    (b" inbox", "INBOX"),
    (b' "Sent"', "Sent"),
    (b" {5}\r\nDraft", "Draft"),
])
def test_getquotaroot(raw: bytes, want: str) -> None:
    assert getquotaroot(Reader(raw)) == want


@pytest.mark.parametrize("raw, want", [
    (b' "User quota"', "User quota"),
    (b' ""', ""),
    (b" root", "root"),
])
def test_getquota(raw: bytes, want: str) -> None:
    assert quota_root(Reader(raw)) == want


@pytest.mark.parametrize("raw, want", [
    (b' "User quota" ()', SetQuotaArgs("User quota", ())),
    (b' "" (storage 512)', SetQuotaArgs("", (("STORAGE", 512),))),
    (b' x (STORAGE 512 MESSAGE 9223372036854775807)',
     SetQuotaArgs("x", (("STORAGE", 512), ("MESSAGE", 2**63 - 1)))),
])
def test_setquota(raw: bytes, want: SetQuotaArgs) -> None:
    assert setquota(Reader(raw)) == want


@pytest.mark.parametrize("parse, raw", [
    (getquotaroot, b""),
    (getquotaroot, b" INBOX extra"),
    (quota_root, b" (x)"),
    (setquota, b' "r" (STORAGE)'),
    (setquota, b' "r" (STORAGE -1)'),
    (setquota, b' "r" (STORAGE 9223372036854775808)'),
    (setquota, b' "r" STORAGE 1'),
    (setquota, b' "r" (STORAGE 1'),
])
def test_malformed(parse, raw: bytes) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ParseError):
        parse(Reader(raw))
