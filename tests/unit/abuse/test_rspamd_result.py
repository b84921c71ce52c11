"""rspamd's /checkv2 reply and the X-Spam-* fields (postroom.abuse.spamresult), no I/O."""

from __future__ import annotations

import email
import email.policy

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from postroom.abuse.spamresult import (
    ACTIONS,
    BadReply,
    Verdict,
    is_spam_field,
    parse_reply,
    replace_subject,
    spam_headers,
    strip_spam_headers,
)
from postroom.sieve.ext.spamtest import spam_percent
from postroom.sieve.host import spam_score_of

REPLY = {"is_skipped": False, "score": 8.0, "required_score": 15.0, "action": "add header",
         "symbols": {"B": {"name": "B", "score": 1.5}, "A": {"name": "A", "score": 6.5},
                     "NEG": {"name": "NEG", "score": -1.0}},
         "messages": {"smtp_message": "go away\r\nnow"}, "message-id": "1@x"}


def test_parse_full_reply() -> None:
    v = parse_reply(orjson.dumps(REPLY))
    assert v.action == "add header" and v.score == 8.0 and v.required == 15.0 and v.is_spam
    assert v.symbols == (("A", 6.5), ("B", 1.5), ("NEG", -1.0))
    assert v.message == "go away now"  # control characters never reach an SMTP reply
    assert v.subject is None


@pytest.mark.parametrize("body, why", [
    (b"not json", "not JSON"),
    (b"[1]", "not a JSON object"),
    (b'{"error": "Unauthorized"}', "Unauthorized"),
    (b'{"action": "explode", "score": 1}', "unknown action"),
    (b'{"action": "reject"}', "score"),
    (b'{"action": "reject", "score": "9"}', "score"),
    (b'{"action": "reject", "score": true}', "score"),
    (b'{"action": "reject", "score": 1, "required_score": null}', "required_score"),
])
def test_bad_replies(body: bytes, why: str) -> None:
    with pytest.raises(BadReply, match=why):
        parse_reply(body)


def test_subject_only_for_rewrite_subject() -> None:
    v = parse_reply(orjson.dumps({**REPLY, "action": "rewrite subject", "subject": "***SPAM*** hi"}))
    assert v.subject == "***SPAM*** hi"
    assert parse_reply(orjson.dumps({**REPLY, "subject": "x"})).subject is None


def test_headers_as_rspamds_milter_writes_them() -> None:
    v = parse_reply(orjson.dumps(REPLY))
    assert spam_headers(v) == [("X-Spam-Score", "8.00"), ("X-Spam-Status", "Yes, score=8.00 required=15.00"),
                               ("X-Spam-Action", "add header"),
                               ("X-Spam-Symbols", "A(6.50), B(1.50), NEG(-1.00)"), ("X-Spam", "Yes")]
    ham = Verdict("no action", -1.0, 15.0)
    assert ("X-Spam-Status", "No, score=-1.00 required=15.00") in spam_headers(ham)
    assert all(name != "X-Spam" for name, _ in spam_headers(ham))


def test_sieve_reads_our_score() -> None:
    fields = spam_headers(Verdict("add header", 8.0, 15.0))
    msg = email.message_from_bytes("".join(f"{n}: {v}\r\n" for n, v in fields).encode() + b"\r\n",
                                   policy=email.policy.compat32)
    assert spam_score_of(msg) == "8.00"
    assert spam_percent(spam_score_of(msg)) == 80.0


@given(st.dictionaries(st.text(min_size=0, max_size=120),
                       st.fixed_dictionaries({"score": st.floats(allow_nan=True, allow_infinity=True)}),
                       max_size=60),
       st.integers(min_value=40, max_value=2000))
@settings(max_examples=200)
def test_symbols_field_is_bounded_and_one_line(symbols: dict, limit: int) -> None:  # type: ignore[type-arg]
    v = parse_reply(orjson.dumps({"action": "no action", "score": 0.0, "symbols": symbols}))
    for name, value in spam_headers(v, limit):
        assert not any(c in value for c in "\r\n\0")
        if name == "X-Spam-Symbols":
            assert len(value) <= limit
            assert value.isascii()


@given(st.recursive(st.none() | st.booleans() | st.floats() | st.text(max_size=20) | st.integers(),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
                    max_leaves=20))
def test_any_json_is_a_verdict_or_bad_reply(data: object) -> None:
    try:
        body = orjson.dumps(data)
    except TypeError:
        return
    try:
        v = parse_reply(body)
    except BadReply:
        return
    assert v.action in ACTIONS


def test_strip_spam_headers_with_continuations() -> None:
    msg = (b"Received: by x\r\nX-Spam-Status: No, score=-9\r\n\trequired=5\r\nSubject: hi\r\nx-spam: no\r\n"
           b"X-Spamd-Result: default: False [-9.00 / 15.00]\r\nX-Spammer: keep me\r\n\r\n"
           b"X-Spam: in the body stays\r\n")
    out, n = strip_spam_headers(msg)
    assert n == 3
    assert out == (b"Received: by x\r\nSubject: hi\r\nX-Spammer: keep me\r\n\r\nX-Spam: in the body stays\r\n")
    assert strip_spam_headers(b"\r\nX-Spam: body only\r\n") == (b"\r\nX-Spam: body only\r\n", 0)


field_name = st.sampled_from(["Subject", "X-Spam", "X-Spam-Score", "x-spamd-bar", "From", "X-Other", "X-Spamx"])
field_value = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=30)


@given(st.lists(st.tuples(field_name, field_value, st.booleans()), max_size=12),
       st.binary(max_size=60).map(lambda b: b.replace(b"\r\n\r\n", b"")))
def test_strip_keeps_everything_else(fields: list[tuple[str, str, bool]], body: bytes) -> None:
    head = b"".join(f"{n}: {v}\r\n".encode() + (b" folded\r\n" if fold else b"") for n, v, fold in fields)
    out, n = strip_spam_headers(head + b"\r\n" + body)
    assert n == sum(1 for name, _, _ in fields if is_spam_field(name.encode()))
    kept = b"".join(f"{name}: {v}\r\n".encode() + (b" folded\r\n" if fold else b"")
                    for name, v, fold in fields if not is_spam_field(name.encode()))
    assert out == kept + b"\r\n" + body


def test_replace_subject() -> None:
    msg = b"From: a\r\nSubject: old\r\n continued\r\nTo: b\r\nSubject: second\r\n\r\nbody\r\n"
    assert replace_subject(msg, "***SPAM*** old") == b"From: a\r\nSubject: ***SPAM*** old\r\nTo: b\r\n\r\nbody\r\n"
    assert replace_subject(b"From: a\r\n\r\nb\r\n", "new") == b"Subject: new\r\nFrom: a\r\n\r\nb\r\n"
    encoded = replace_subject(b"From: a\r\n\r\nb\r\n", "***SPAM*** Grüße")
    assert encoded.startswith(b"Subject: =?utf-8?") and encoded.isascii()
    parsed = email.message_from_bytes(encoded, policy=email.policy.default)
    assert parsed["Subject"] == "***SPAM*** Grüße"
    assert b"\r\nX" not in replace_subject(b"Subject: a\r\n\r\n", "evil\r\nX-Spam: No")
