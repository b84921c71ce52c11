"""The fast paths of the delivery stage against the general ones they stand in for:
vacation replies written without the email package (``vacation.plain_text_message``),
the header index split without ``split_header``'s pattern (``message._index_block``) and
``:matches`` with literal pieces compared in C (``match.glob_match``)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from email.message import EmailMessage

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from postroom.mime.headers import split_header
from postroom.sieve import match as M
from postroom.sieve import vacation as V
from postroom.sieve.match import glob_match
from postroom.sieve.message import _index_block


def _email_package(head: list[tuple[str, str]], text: str) -> bytes:
    """What vacation_reply wrote before the fast path (and still writes without it)."""
    msg = EmailMessage()
    for name, value in head:
        msg[name] = value
    msg.set_content(text, charset="utf-8", cte="quoted-printable" if not text.isascii() else "7bit")
    return V._render(msg)


_atom = st.one_of(*[st.from_regex(r"[a-zA-Z0-9]{1,6}(?:[._+-][a-zA-Z0-9]{1,6})?", fullmatch=True)] * 3,
                  st.text(alphabet="abcXYZ019._+-", min_size=1, max_size=12))
_odd = st.text(alphabet='ab "<>()@,;:\\.é\t', max_size=16)
# Mostly what replies carry (the fast path's cases), and now and then what it must decline.
_address = st.one_of(*[st.builds(lambda a, b: f"{a}@{b}", _atom, _atom)] * 3, _odd)
_msgid = st.one_of(*[st.builds(lambda a, b: f"<{a}@{b}>", _atom, _atom)] * 3, _odd, st.just(""))
_subject = st.one_of(*[st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7e), max_size=40)] * 3,
                     st.text(alphabet=st.characters(max_codepoint=0x7f) | st.sampled_from("é=?~ "), max_size=90))
_when = st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2100, 1, 1))
_zone = st.one_of(st.none(), st.builds(lambda m: timezone(timedelta(minutes=m)), st.integers(-720, 720)))
_text = st.one_of(*[st.text(alphabet=st.sampled_from("ab \t\r\n.\x00x-"), max_size=60)] * 3,
                  st.text(alphabet=st.sampled_from("ab \r\n.é"), max_size=20))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_address, _address, _subject, _when, _zone, _msgid, st.lists(_msgid, max_size=3), _text)
def test_plain_replies_are_the_email_packages_octets(frm, to, subject, when, zone, mid, refs, text) -> None:
    head = [("From", frm), ("To", to), ("Subject", V._one_line(subject, 998)),
            ("Date", V.format_datetime(when.replace(tzinfo=zone))), ("Message-ID", mid or "<x@y>"),
            ("Auto-Submitted", "auto-replied (vacation)")]
    if mid:
        head.append(("In-Reply-To", mid))
    joined = " ".join(r for r in refs if r)
    if joined:
        head.append(("References", joined))
    fast = V.plain_text_message(head, text)
    if fast is not None:
        assert fast == _email_package(head, text)


_plain_address = st.from_regex(r"[a-zA-Z0-9]{1,6}(?:[._+-][a-zA-Z0-9]{1,6})?@[a-z0-9]{1,8}(?:\.[a-z0-9-]{0,6}[a-z0-9])?",
                               fullmatch=True)
_plain_id = st.from_regex(r"<[a-zA-Z0-9.$_+-]{1,12}@[a-zA-Z0-9._-]{1,12}>", fullmatch=True)
# ("=?" starts an RFC 2047 encoded word, which the email package would decode: declined.)
_plain_subject = st.from_regex(r"[!-~]{1,10}(?: [!-~]{1,10}){0,3}", fullmatch=True).filter(lambda v: "=?" not in v)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_plain_address, _plain_address, _plain_subject, _when, _zone, _plain_id, st.lists(_plain_id, max_size=2),
       st.text(alphabet=st.characters(max_codepoint=0x7f), max_size=80))
def test_plain_replies_take_the_fast_path(frm, to, subject, when, zone, mid, refs, text) -> None:
    head = [("From", frm), ("To", to), ("Subject", subject), ("Date", V.format_datetime(when.replace(tzinfo=zone))),
            ("Message-ID", mid), ("Auto-Submitted", "auto-replied (vacation)"), ("In-Reply-To", mid)]
    if refs:
        head.append(("References", " ".join(refs)))
    fast = V.plain_text_message(head, text)
    assert fast is not None
    assert fast == _email_package(head, text)


def test_the_usual_reply_takes_the_fast_path() -> None:
    head = [("From", "me@example.test"), ("To", "friend8@personal.example"), ("Subject", "Out of office"),
            ("Date", "Tue, 03 Mar 2026 10:00:00 +0000"), ("Message-ID", "<0a1b@mail.example.test>"),
            ("Auto-Submitted", "auto-replied (vacation)"), ("In-Reply-To", "<bench-8-1@bench.example>"),
            ("References", "<bench-8-1@bench.example>")]
    text = "I am away until next month\nand will read your message when I am back."
    fast = V.plain_text_message(head, text)
    assert fast is not None and fast == _email_package(head, text)
    # Anything the email package would encode or fold goes its way.
    assert V.plain_text_message(head, "déjà") is None
    assert V.plain_text_message([*head[:2], ("Subject", "x" * 80)], text) is None
    assert V.plain_text_message([("To", '"A B" <a@b.example>')], text) is None


def _general_index(raw: bytes, start: int) -> dict[str, list[bytes]]:
    out: dict[str, list[bytes]] = {}
    for f in split_header(raw, start, len(raw))[0]:
        out.setdefault(f.name.decode("utf-8", "replace").lower(), []).append(f.value)
    return out


_header_bits = st.sampled_from([b"a", b"B", b"X-Y", b":", b": ", b" ", b"\t", b"\r", b"\n", b"\r\n", b"\r\n ",
                                b"\n\t", b"Subject: hi", b"\xc3\xa9", b"\xff", b"\r\n\r\n", b"body"])


@settings(max_examples=800, deadline=None)
@given(st.lists(_header_bits, max_size=24), st.integers(0, 40))
def test_header_index_agrees_with_split_header(bits: list[bytes], start: int) -> None:
    raw = b"".join(bits)
    start = min(start, len(raw))
    assert _index_block(raw, start) == _general_index(raw, start)


def _general_glob(value: str, pattern: str, fold: bool) -> list[str] | None:
    """glob_match with every piece compared octet by octet (``_at``/``_find``), as it was
    before literal pieces were compared with ``startswith``/``find``."""
    planned = M._plan
    M._plan = lambda p, f: tuple((piece, None) for piece in M.compiled_pattern(p, f))  # type: ignore[assignment]
    try:
        return M.glob_match(value, pattern, fold)
    finally:
        M._plan = planned  # type: ignore[assignment]


@settings(max_examples=800, deadline=None)
@given(st.text(alphabet="ab*?\\.é", max_size=8), st.text(alphabet="abAB.\\*?é", max_size=10), st.booleans())
def test_literal_pieces_match_as_the_general_matcher(pattern: str, value: str, fold: bool) -> None:
    assert glob_match(value, pattern, fold) == _general_glob(value, pattern, fold)


def test_literal_pieces_examples() -> None:
    assert glob_match("Re: meeting", "re: *", True) == ["Re: meeting", "meeting"]
    assert glob_match("Dev <dev.lists.example.org>", "*<*.*>*", True) == [
        "Dev <dev.lists.example.org>", "Dev ", "dev", "lists.example.org", ""]
    assert glob_match("abc", "abc", False) == ["abc"] and glob_match("abC", "abc", False) is None
    assert glob_match("xay", "x?y", False) == ["xay", "a"]


# ------------------------------------------------------------ header :value, compiled

_relop = st.sampled_from(["eq", "ne", "gt", "ge", "lt", "le"])
_comparator = st.sampled_from(["i;ascii-numeric", "i;ascii-casemap", "i;octet"])
_number_ish = st.one_of(st.integers(-5, 120).map(str), st.text(alphabet="0123456789 aZ.-", max_size=5))


@settings(max_examples=300, deadline=None)
@given(_relop, _comparator, st.lists(_number_ish, min_size=1, max_size=3),
       st.lists(_number_ish, max_size=3), st.booleans())
def test_compiled_header_value_runs_like_the_interpreter(op: str, comparator: str, keys: list[str],
                                                         values: list[str], two_names: bool) -> None:
    from test_sieve_compiled import compiled, interpreted, outcome

    from postroom.sieve import Limits, compile_script

    quoted = ", ".join(f'"{k}"' for k in keys)
    names = '["X-Score", "x-other"]' if two_names else '"x-score"'
    script = compile_script(
        'require ["relational", "comparator-i;ascii-numeric", "fileinto"];\n'
        f'if header :value "{op}" :comparator "{comparator}" {names} [{quoted}] {{ fileinto "hit"; }}\n'
        'else { fileinto "miss"; }\n')
    raw = "".join(f"X-Score: {v}\r\n" for v in values).encode() + b"X-Other: 7\r\nSubject: s\r\n\r\nbody\r\n"
    limits = Limits()
    assert outcome(compiled, script, raw, limits) == outcome(interpreted, script, raw, limits)
    test = program_test(script)
    assert test.__name__ == "header_value"  # the fast path, not the registered function


def program_test(script: object) -> object:
    """The compiled closure of the script's first test (the if of its first chain)."""
    from postroom.sieve.compiled import _header_value
    from postroom.sieve.registry import REGISTRY

    node = script.commands[1].tests[0]  # type: ignore[attr-defined]
    made = _header_value(node, REGISTRY)
    assert made is not None
    return made


@pytest.mark.parametrize("raw", [
    b"A: 1\r\nB: 2\r\n\r\nbody\r\n",  # the CRLF empty line
    b"A: 1\nB: 2\n\nC: 3\r\n\r\nbody",  # an LF empty line first: C is body
    b"A: 1\r\n\nC: 3\r\n\r\n",  # a CRLF line then an LF empty line
    b"A: 1\r\n folded\n\tmore\r\n\r\nB: body",  # continuation lines
    b"\r\nA: 1\r\n\r\n", b"\nA: 1\r\n\r\n",  # empty header
    b"A: 1\nB: 2\n\nbody\n",  # no CRLF empty line at all
    b"A: 1\r\nB: 2",  # all header
])
def test_header_index_ends_where_split_header_ends(raw: bytes) -> None:
    for start in (0, 1):
        assert _index_block(raw, start) == _general_index(raw, start)
