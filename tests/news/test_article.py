"""Article checks and edits (RFC 5536 required headers, RFC 5537 Path/injection): tables."""

from __future__ import annotations

import pytest

from postroom.news.article import header_value, prepare, valid_message_id, with_xref
from postroom.news.records import PostRefused, group_name_problem

HOST = "news.example.org"
NOW = 1_800_000_000.0
FULL = (b"Path: peer.example!poster\r\nFrom: Ann <ann@example.org>\r\nNewsgroups: local.test\r\n"
        b"Subject: hello\r\nDate: Thu, 01 Jan 2026 00:00:00 +0000\r\nMessage-ID: <a1@example.org>\r\n"
        b"\r\nbody\r\n")


def _without(name: bytes) -> bytes:
    return b"".join(line for line in FULL.splitlines(keepends=True) if not line.startswith(name + b":"))


def _replace(name: bytes, value: bytes) -> bytes:
    return b"".join(name + b": " + value + b"\r\n" if line.startswith(name + b":") else line
                    for line in FULL.splitlines(keepends=True))


REFUSED = [
    # (article, local, why)
    (_without(b"From"), True, "Missing From"),
    (_without(b"Subject"), True, "Missing Subject"),
    (_without(b"Newsgroups"), True, "Missing Newsgroups"),
    (_without(b"Message-ID"), False, "Missing Message-ID"),
    (_without(b"Date"), False, "Missing Date"),
    (_without(b"Path"), False, "Missing Path"),
    (_replace(b"Message-ID", b"no-brackets@example.org"), True, "Malformed Message-ID"),
    (_replace(b"Message-ID", b"<no-at-sign>"), True, "Malformed Message-ID"),
    (_replace(b"Message-ID", b"<a b@example.org>"), True, "Malformed Message-ID"),
    (_replace(b"Message-ID", b"<" + b"x" * 250 + b"@y>"), True, "Malformed Message-ID"),
    (_replace(b"Date", b"yesterday"), True, "Malformed Date"),
    (_replace(b"Date", b"Fri, 01 Jan 2100 00:00:00 +0000"), True, "future"),
    (_replace(b"From", b"nobody"), True, "no address"),
    (_replace(b"Newsgroups", b"Bad..Name"), True, "Bad newsgroup name"),
    (_replace(b"Newsgroups", b" , "), True, "names no group"),
    (_replace(b"Newsgroups", ",".join(f"g.n{i}" for i in range(26)).encode()), True, "Too many newsgroups"),
    (FULL.replace(b"Subject: hello\r\n", b"Subject: hello\r\nSubject: again\r\n"), True, "Duplicate Subject"),
    (_replace(b"Path", b""), False, "Empty Path"),
]


@pytest.mark.parametrize(("raw", "local", "why"), REFUSED)
def test_refused(raw: bytes, local: bool, why: str) -> None:
    code = 441 if local else 437
    with pytest.raises(PostRefused) as exc:
        prepare(raw, local=local, path_host=HOST, max_crosspost=25, now=NOW, code=code)
    assert exc.value.code == code
    assert why.lower() in exc.value.text.lower()


def test_local_post_gets_message_id_date_path() -> None:
    raw = b"From: a@example.org\nNewsgroups: local.test\nSubject: s\n\nline\n"
    p = prepare(raw, local=True, path_host=HOST, max_crosspost=25, now=NOW)
    assert valid_message_id(p.message_id) and p.message_id.endswith("@" + HOST + ">")
    assert header_value(p.raw, "Message-ID") == p.message_id
    assert header_value(p.raw, "Path") == HOST + "!not-for-mail"
    assert header_value(p.raw, "Date") == "Fri, 15 Jan 2027 08:00:00 GMT"
    assert b"\n" not in p.raw.replace(b"\r\n", b"")  # CRLF throughout
    assert p.raw.endswith(b"\r\n\r\nline\r\n")
    assert p.newsgroups == ("local.test",) and p.poster == "a@example.org"


def test_relayed_article_keeps_ids_and_prepends_path() -> None:
    p = prepare(FULL + b"", local=False, path_host=HOST, max_crosspost=25, now=NOW, code=437)
    assert p.message_id == "<a1@example.org>"
    assert header_value(p.raw, "Path") == HOST + "!peer.example!poster"
    assert p.raw.endswith(b"\r\n\r\nbody\r\n")


def test_xref_is_dropped_on_input_and_added_on_output() -> None:
    raw = FULL.replace(b"Subject", b"Xref: other.host local.test:99\r\nSubject")
    p = prepare(raw, local=False, path_host=HOST, max_crosspost=25, now=NOW)
    assert header_value(p.raw, "Xref") is None
    out = with_xref(p.raw, HOST, [("local.test", 3), ("local.other", 7)])
    assert header_value(out, "Xref") == f"{HOST} local.test:3 local.other:7"
    assert out.endswith(b"\r\n\r\nbody\r\n")


def test_newsgroups_folded_and_deduplicated() -> None:
    raw = _replace(b"Newsgroups", b"local.a,\r\n local.b, local.a")
    p = prepare(raw, local=True, path_host=HOST, max_crosspost=2, now=NOW)
    assert p.newsgroups == ("local.a", "local.b")


def test_header_only_article() -> None:
    raw = b"From: a@example.org\r\nNewsgroups: local.test\r\nSubject: s\r\n"
    p = prepare(raw, local=True, path_host=HOST, max_crosspost=25, now=NOW)
    assert p.raw.endswith(b"\r\n\r\n") and header_value(p.raw, "Subject") == "s"


def test_control_and_approved_are_seen() -> None:
    raw = FULL.replace(b"Subject", b"Control: cancel <x@y>\r\nApproved: mod@example.org\r\nSubject")
    p = prepare(raw, local=True, path_host=HOST, max_crosspost=25, now=NOW)
    assert p.control == "cancel <x@y>" and p.approved == "mod@example.org"


@pytest.mark.parametrize(("name", "ok"), [
    ("comp.lang.python", True), ("local", True), ("a+b.c_d-e", True),
    ("", False), ("Comp.lang", False), ("comp..lang", False), (".comp", False), ("comp.", False),
    ("comp.all", False), ("ctl.x", False), ("comp.123", False), ("a b", False), ("a*b", False),
    ("x" * 251, False),
])
def test_group_names(name: str, ok: bool) -> None:
    assert (group_name_problem(name) is None) is ok
