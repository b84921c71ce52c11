"""The fast relaxed-canonicalization helpers give exactly dkimpy's output."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from postroom.mailauth import canon

_PIECES = st.sampled_from([b" ", b"  ", b"\t", b" \t ", b"\r\n", b"\r", b"\n", b"a", b"word", b".", b"\xff"])
_BODIES = st.lists(_PIECES, max_size=60).map(b"".join) | st.binary(max_size=200)


@settings(max_examples=500, deadline=None)
@given(_BODIES)
def test_same_output_as_dkimpy(body: bytes) -> None:
    assert canon.compress_whitespace(body) == canon.original_compress_whitespace(body)
    assert canon.strip_trailing_whitespace(body) == canon.original_strip_trailing_whitespace(body)
    assert canon.unfold_header_value(body) == canon.original_unfold_header_value(body)


def test_installed_for_dkimpy() -> None:
    import dkim.canonicalization as dc

    import postroom.mailauth.dkim  # noqa: F401  (installs them)

    assert dc.compress_whitespace is canon.compress_whitespace
    assert dc.Relaxed.canonicalize_body(b"a  b \t\r\nc \r\n\r\n") == b"a b\r\nc\r\n"


_LINES = st.lists(st.sampled_from([b"From: a@b.test", b"Subject: x", b" folded", b"\tmore", b"", b"body",
                                   b"line \t", b"From mbox", b"x\ry", b"bad header"]), max_size=12)
_ENDS = st.lists(st.sampled_from([b"\r\n", b"\n"]), min_size=12, max_size=12)


@settings(max_examples=500, deadline=None)
@given(_LINES, _ENDS, st.binary(max_size=40))
def test_rfc822_parse_as_dkimpy(lines: list[bytes], ends: list[bytes], tail: bytes) -> None:
    import dkim

    message = b"".join(line + end for line, end in zip(lines, ends)) + tail
    try:
        expected = canon._dkim_rfc822_parse(message)
    except (dkim.MessageFormatError, IndexError) as exc:
        try:
            canon.rfc822_parse(message)
        except type(exc):
            return
        raise AssertionError("dkimpy raised, the fast parse did not")
    assert canon.rfc822_parse(message) == expected


_FIELD_PIECES = st.sampled_from([b"b", b"=", b" ", b"\t", b"\r\n", b"\n", b"\r", b";", b"a", b"Z", b"+", b"/",
                                 b"h", b"x", b"0", b"\r\n ", b"\x0b", b"\x0c", b"\xa0", b" b=", b"bh="])


@settings(max_examples=1000, deadline=None)
@given(st.lists(_FIELD_PIECES, max_size=40).map(b"".join) | st.binary(max_size=80))
def test_strip_b_value_as_dkimpy(value: bytes) -> None:
    import dkim

    assert canon.strip_b_value(value) == dkim.RE_BTAG.sub(b"\\1", value)


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from([b"a", b":", b"\r\n", b"\n", b"\r", b" "]), max_size=30).map(b"".join))
def test_header_end_as_split(message: bytes) -> None:
    head = message.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    assert message[:canon.header_end(message)] == head


@settings(max_examples=1000, deadline=None)
@given(st.lists(st.sampled_from([b"a", b":", b"\r\n", b"\n", b"\r", b" ", b"\n\r"]), max_size=30).map(b"".join))
def test_blank_line_as_the_regex(message: bytes) -> None:
    m = canon._BLANK_LINE.search(message)
    assert canon.blank_line(message) == (None if m is None else (m.start(), m.end()))


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from([b"From: a", b"x", b" y", b"\r\n", b"\n", b"\r", b"\r\r\n"]), max_size=20)
       .map(b"".join))
def test_header_lines_split_as_the_regex(block: bytes) -> None:
    assert block.replace(b"\r\n", b"\n").split(b"\n") == canon._EOL.split(block)


# Bodies longer than a header field: compress_whitespace scans them with a pattern instead of ``in``.
_LONG_PIECES = st.sampled_from([b" ", b"  ", b"\t", b" \r\n", b"\t\r\n", b"\r\n", b"\n", b"\r", b"quick brown fox ",
                                b"jumps over the lazy dog, again and again. 0123", b"."])


@settings(max_examples=300, deadline=None)
@given(st.lists(_LONG_PIECES, min_size=20, max_size=200).map(b"".join))
def test_long_bodies_as_dkimpy(body: bytes) -> None:
    assert canon.compress_whitespace(body) == canon.original_compress_whitespace(body)
    assert canon.strip_trailing_whitespace(body) == canon.original_strip_trailing_whitespace(body)


def test_long_body_with_one_change_at_the_end() -> None:
    text = b"The quick brown fox. 0123\r\n" * 400
    for tail in (b"a  b\r\n", b"a\tb\r\n", b"a \r\n", b"a\t\r\n"):
        body = text + tail
        assert canon.compress_whitespace(body) == canon.original_compress_whitespace(body)
        assert canon.strip_trailing_whitespace(body) == canon.original_strip_trailing_whitespace(body)
    assert canon.compress_whitespace(text) is text and canon.strip_trailing_whitespace(text) is text


_TAG_PIECES = st.sampled_from([b"v", b"a", b"bh", b"b", b"d", b"1", b"_x", b"=", b";", b" ", b"\t", b"\r\n ",
                               b"rsa-sha256", b"abc+/=", b"\xc3\xa9", b"-", b"h=from:to", b"\x00"])


def _parsed(parse, value: bytes) -> object:
    import dkim.util

    try:
        return parse(value)
    except dkim.util.InvalidTagValueList as exc:  # the same exception, with the same argument
        return (type(exc), exc.args)


@settings(max_examples=1000, deadline=None)
@given(st.lists(_TAG_PIECES, max_size=30).map(b"".join) | st.binary(max_size=60))
def test_tag_list_as_dkimpy(value: bytes) -> None:
    import dkim.util

    assert _parsed(canon.tag_list, value) == _parsed(dkim.util.parse_tag_value, value)


def test_tag_list_errors() -> None:
    import dkim.util
    import pytest

    assert canon.tag_list(b" v=1; a=rsa-sha256 ;\r\n\tb= x y ;") == {b"v": b"1", b"a": b"rsa-sha256", b"b": b"x y"}
    assert canon.tag_list(b"") == {}
    with pytest.raises(dkim.util.InvalidTagSpec):
        canon.tag_list(b"v=1; novalue")
    with pytest.raises(dkim.util.InvalidTagSpec):
        canon.tag_list(b"1v=1")
    with pytest.raises(dkim.util.DuplicateTag):
        canon.tag_list(b"v=1; v=2")
