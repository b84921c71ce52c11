"""The header block a milter edits (postroom.abuse.milter.headers)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from postroom.abuse.milter.headers import Headers, make_field

MSG = (b"Received: from a\r\n\tby b\r\nSubject: one\r\nX-A: 1\r\nsubject: two\r\n\r\n"
       b"body line\r\nX-Not: a header\r\n")


def test_split_fields_and_body() -> None:
    h = Headers.split(MSG)
    assert [f.name for f in h.fields] == ["Received", "Subject", "X-A", "subject"]
    assert h.fields[0].value == " from a\n\tby b"  # folding as LF, as Postfix hands it to milters
    assert h.body == b"body line\r\nX-Not: a header\r\n"
    assert h.join() == MSG


def test_append_insert() -> None:
    h = Headers.split(MSG)
    h.append("X-Spam", "yes")
    h.insert(0, "DKIM-Signature", "v=1; a=rsa-sha256;\n\tb=abc")
    h.insert(99, "X-Last", "z")
    out = h.join()
    assert out.startswith(b"DKIM-Signature: v=1; a=rsa-sha256;\r\n\tb=abc\r\nReceived:")
    assert b"subject: two\r\nX-Spam: yes\r\nX-Last: z\r\n\r\nbody line" in out


def test_change_and_delete_by_occurrence() -> None:
    h = Headers.split(MSG)
    h.change("SUBJECT", 2, "second")  # names compare case-insensitively; the field keeps its spelling
    h.change("Subject", 1, "")  # deleted
    h.change("X-Missing", 1, "added")  # not there: added, as Sendmail and Postfix do
    h.change("X-Missing-Too", 3, "")  # deleting what is not there: nothing
    assert h.join() == (b"Received: from a\r\n\tby b\r\nX-A: 1\r\nsubject: second\r\nX-Missing: added\r\n"
                        b"\r\nbody line\r\nX-Not: a header\r\n")


def test_leading_space_kept_when_negotiated() -> None:
    assert make_field("X", " v", leading_space=True).raw == b"X: v\r\n"
    assert make_field("X", "v", leading_space=True).raw == b"X:v\r\n"


def test_values_cannot_break_out_of_the_field() -> None:
    f = make_field("X-Evil", "a\r\nBcc: victim@example.test\n\r\n\r\nbody")
    assert f.raw == b"X-Evil: a\r\n\tBcc: victim@example.test\r\n\tbody\r\n"
    h = Headers.split(b"A: 1\r\n\r\nb\r\n")
    h.append("X-Evil", "x\n\nInjected: 1")
    assert Headers.split(h.join()).body == b"b\r\n"


def test_messages_without_an_empty_line() -> None:
    assert Headers.split(b"A: 1\r\nB: 2\r\n").body == b""
    h = Headers.split(b"A: 1\r\nnot a field\r\n")
    assert (len(h.fields), h.separator, h.body) == (1, b"", b"not a field\r\n")
    h = Headers.split(b"\r\nonly body\r\n")
    assert (h.fields, h.body) == ([], b"only body\r\n")
    h = Headers.split(b" leading continuation\r\n\r\nx")
    assert h.fields == [] and h.join() == b" leading continuation\r\n\r\nx"


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300))
def test_split_join_round_trips_any_bytes(data: bytes) -> None:
    assert Headers.split(data).join() == data


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.from_regex(r"[A-Za-z][A-Za-z0-9-]{0,10}", fullmatch=True),
                          st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40)),
                max_size=5))
def test_appended_fields_parse_back(fields: list[tuple[str, str]]) -> None:
    h = Headers.split(b"From: a@example.test\r\n\r\nbody\r\n")
    for name, value in fields:
        h.append(name, value)
    again = Headers.split(h.join())
    assert [f.name for f in again.fields] == ["From"] + [n for n, _ in fields]
    assert again.body == b"body\r\n"
