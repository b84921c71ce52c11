"""RFC 5293 editheader: addheader/deleteheader, what later tests see, Result.edited,
protected fields, name validation and RFC 2047 encoding of added values."""

from __future__ import annotations

import email
import email.policy

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sieve_helpers import message, run

from postroom.sieve import SieveRuntimeError, SieveSyntaxError, compile_script
from postroom.sieve.api import AddHeader, DeleteHeader, Discard, FileInto, Keep
from postroom.sieve.ext.editheader import (
    MAX_ADDED,
    PROTECTED,
    encode_value,
    valid_field_name,
)

MSG = message("Received: from a by b; Fri, 13 Mar 2009 19:35:00 -0700",
              "Received: from c by d; Fri, 13 Mar 2009 19:30:00 -0700",
              "From: alice@example.com", "To: bob@example.org", "Subject: Hello",
              "X-Tag: one", "X-Tag: two", "X-Tag: =?utf-8?q?dr=C3=A9i?=", "Auto-Submitted: no",
              body="Body line\r\n")
REQ = 'require ["editheader", "variables", "fileinto", "relational", "comparator-i;ascii-numeric", "index"];\n'


def headers(raw: bytes) -> list[tuple[str, str]]:
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    return [(k, str(v)) for k, v in msg.items()]


def test_addheader_first_and_last() -> None:
    res = run(REQ + 'addheader "X-First" "1"; addheader :last "X-Last" "2";', msg=MSG)
    assert res.edited is not None
    names = [k for k, _ in headers(res.edited)]
    assert names[0] == "X-First" and names[-1] == "X-Last"
    assert res.edited.endswith(b"\r\n\r\nBody line\r\n")
    assert res.actions == [AddHeader("X-First", "1"), AddHeader("X-Last", "2", last=True), Keep(implicit=True)]


def test_unchanged_message_has_no_edited() -> None:
    res = run(REQ + 'deleteheader "X-Absent"; if header "subject" "hello" { keep; }', msg=MSG)
    assert res.edited is None


def test_edits_visible_to_later_tests() -> None:
    script = REQ + '''
    addheader "X-Sieve" "seen";
    if header "x-sieve" "seen" { fileinto "a"; }
    deleteheader "subject";
    if not exists "subject" { fileinto "b"; }
    addheader :last "Subject" "New";
    if header :is "subject" "New" { fileinto "c"; }
    if header :count "eq" :comparator "i;ascii-numeric" "x-tag" "3" { fileinto "d"; }
    deleteheader :index 1 "x-tag";
    if header :count "eq" :comparator "i;ascii-numeric" "x-tag" "2" { fileinto "e"; }
    if header :index 1 "x-tag" "two" { fileinto "f"; }
    '''
    res = run(script, msg=MSG)
    assert [a.mailbox for a in res.actions if isinstance(a, FileInto)] == list("abcdef")


@pytest.mark.parametrize("command,left", [
    ('deleteheader "X-Tag";', []),
    ('deleteheader :index 2 "X-Tag";', ["one", "dréi"]),
    ('deleteheader :index 1 :last "X-Tag";', ["one", "two"]),
    ('deleteheader :index 4 "X-Tag";', ["one", "two", "dréi"]),
    ('deleteheader "X-Tag" "two";', ["one", "dréi"]),
    ('deleteheader "X-Tag" ["ONE", "dréi"];', ["two"]),
    ('deleteheader :comparator "i;octet" "X-Tag" "ONE";', ["one", "two", "dréi"]),
    ('deleteheader :contains "X-Tag" "r";', ["one", "two"]),
    ('deleteheader :matches "X-Tag" "t*";', ["one", "dréi"]),
    ('deleteheader :index 1 "X-Tag" "two";', ["one", "two", "dréi"]),  # 1st field is not "two"
    ('deleteheader :index 2 "X-Tag" "two";', ["one", "dréi"]),
    ('deleteheader :value "gt" "X-Tag" "p";', ["one", "dréi"]),
])
def test_deleteheader(command: str, left: list[str]) -> None:
    res = run(REQ + command + ' if header :matches "x-tag" "*" { }', msg=MSG)
    after = res.edited or MSG
    assert [v for k, v in headers(after) if k.lower() == "x-tag"] == left


def test_deleteheader_keeps_match_variables() -> None:
    res = run(REQ + 'if header :matches "subject" "H*" { deleteheader :matches "x-tag" "t*"; fileinto "${1}"; }',
              msg=MSG)
    assert FileInto("ello") in res.actions


def test_protected_fields_are_ignored() -> None:
    res = run(REQ + 'deleteheader "Received"; deleteheader "auto-submitted"; addheader "Received" "x";'
                    'addheader "Auto-Submitted" "auto-replied";', msg=MSG)
    assert res.edited is None
    assert sum("cannot be changed" in line for line in res.log) == 4
    assert res.actions == [Keep(implicit=True)]


def test_subject_can_always_change() -> None:
    res = run(REQ + 'deleteheader "subject"; addheader "Subject" "[tag] Hello";', msg=MSG)
    assert ("Subject", "[tag] Hello") in headers(res.edited or b"")
    assert DeleteHeader("subject") in res.actions


def test_non_ascii_value_is_rfc2047_encoded() -> None:
    res = run(REQ + 'addheader "X-Note" "Grüße — ünïcödé";', msg=MSG)
    raw = res.edited or b""
    line = raw.split(b"\r\n")[0]
    assert line.startswith(b"X-Note: =?utf-8?") and line.isascii()
    assert ("X-Note", "Grüße — ünïcödé") in headers(raw)
    # and later tests see the decoded text
    res = run(REQ + 'addheader "X-Note" "Grüße"; if header "x-note" "grüße" { discard; }', msg=MSG)
    assert Discard() in res.actions


def test_line_breaks_cannot_inject_fields() -> None:
    res = run(REQ + 'addheader "X-Evil" "a\r\nBcc: victim@example.net\r\n\r\nbody";', msg=MSG)
    names = [k.lower() for k, _ in headers(res.edited or b"")]
    assert "bcc" not in names
    assert ("X-Evil", "a Bcc: victim@example.net  body") in headers(res.edited or b"")


def test_variables_in_names_and_values() -> None:
    res = run(REQ + 'set "n" "X-Dyn"; set "v" "val"; addheader "${n}" "${v}-1"; '
                    'if header "x-dyn" "val-1" { deleteheader "${n}"; }', msg=MSG)
    assert res.edited is not None
    assert "X-Dyn" not in dict(headers(res.edited))


def test_bad_name_at_runtime() -> None:
    with pytest.raises(SieveRuntimeError, match="not a valid header field name"):
        run(REQ + 'set "n" "Bad Name"; addheader "${n}" "x";', msg=MSG)


def test_added_fields_are_bounded() -> None:
    from postroom.sieve import Limits, SieveLimitError

    lines = "".join(f'addheader "X-N{i}" "v";' for i in range(MAX_ADDED + 1))
    with pytest.raises(SieveLimitError):
        run(REQ + lines, msg=MSG, limits=Limits(max_steps=10_000))


@pytest.mark.parametrize("script,msg", [
    ('addheader "X" "y";', 'needs require "editheader"'),
    (REQ + 'addheader "Bad Name" "x";', "not a valid header field name"),
    (REQ + 'addheader "X:Y" "x";', "not a valid header field name"),
    (REQ + 'addheader "" "x";', "not a valid header field name"),
    (REQ + 'addheader "X";', "positional"),
    (REQ + 'deleteheader "Bad Name";', "not a valid header field name"),
    (REQ + 'deleteheader ["a", "b"];', "must be one string"),
    (REQ + 'deleteheader :last "X";', "needs :index"),
    (REQ + 'deleteheader :index 0 "X";', "counts from 1"),
    (REQ + 'deleteheader :count "eq" "X" "1";', ":count cannot be used"),
    (REQ + 'addheader :index 1 "X" "y";', "unknown tag"),
])
def test_compile_errors(script: str, msg: str) -> None:
    with pytest.raises(SieveSyntaxError, match=msg):
        compile_script(script)


def test_ihave_editheader() -> None:
    res = run('require ["ihave"]; if ihave "editheader" { addheader "X-Y" "z"; }', msg=MSG)
    assert res.edited is not None and b"X-Y: z\r\n" in res.edited


# ------------------------------------------------------------------ properties

_NAMES = st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x2FF), min_size=0, max_size=20)


@settings(max_examples=300, deadline=None)
@given(_NAMES)
def test_field_name_validation_matches_rfc5322(name: str) -> None:
    expected = bool(name) and all(33 <= ord(c) <= 126 and c != ":" for c in name)
    assert valid_field_name(name) is expected
    quoted = name.replace("\\", "\\\\").replace('"', '\\"')
    script = f'require "editheader"; addheader "{quoted}" "v";'  # no variables: the name is literal
    if expected and name.lower() in PROTECTED:  # valid, but never added (RFC 5293 §6)
        assert run(script, msg=MSG).edited is None
    elif expected:
        res = run(script, msg=MSG)
        assert res.edited is not None and res.edited.startswith(name.encode() + b": v\r\n")
    else:
        with pytest.raises(SieveSyntaxError):
            compile_script(script)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_any_value_round_trips_as_one_field(value: str) -> None:
    """Whatever the value: one well-formed ASCII field whose decoded value is the text
    with line breaks flattened and control characters dropped."""
    raw = encode_value("X-Prop", value)
    assert raw.isascii()
    for line in raw.split(b"\r\n")[1:]:
        assert line[:1] in (b" ", b"\t")  # continuation lines only
    assert b"\n" not in raw.replace(b"\r\n", b"") and b"\r" not in raw.replace(b"\r\n", b"")
    msg = email.message_from_bytes(b"X-Prop: " + raw + b"\r\n\r\n", policy=email.policy.default)
    import re

    want = re.sub(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]", "", re.sub(r"[ \t]*(\r\n|\r|\n)[ \t]*", " ", value))
    got = str(msg["X-Prop"])
    assert " ".join(got.split()) == " ".join(want.split())
