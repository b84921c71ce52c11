"""Sans-I/O reply parsing and EHLO capabilities (xtext and dot-stuffing live in postroom.wire)."""

import pytest

from postroom.outbound.reply import Reply, ReplyError, ReplyParser, parse_ehlo


@pytest.mark.parametrize("chunks, expected", [
    ([b"220 mx ready\r\n"], [(220, ("mx ready",))]),
    ([b"250-mx\r\n250-PIPELINING\r\n250 SIZE 100\r\n"], [(250, ("mx", "PIPELINING", "SIZE 100"))]),
    ([b"25", b"0 o", b"k\r\n"], [(250, ("ok",))]),  # split anywhere
    ([b"250 a\r\n354 go\r\n"], [(250, ("a",)), (354, ("go",))]),  # pipelined replies
    ([b"250\r\n"], [(250, ("",))]),  # RFC 5321 §4.2: text is optional
    ([b"550 5.1.1 no\n"], [(550, ("5.1.1 no",))]),  # bare LF tolerated
])
def test_parser(chunks, expected):
    p = ReplyParser()
    out = []
    for c in chunks:
        out += p.feed(c)
    assert [(r.code, r.lines) for r in out] == expected
    assert not p.pending


@pytest.mark.parametrize("bad", [b"abc\r\n", b"25\r\n", b"250x\r\n", b"999 no\r\n", b"250-a\r\n251 b\r\n",
                                 b"2" * 5000])
def test_parser_rejects(bad):
    with pytest.raises(ReplyError):
        ReplyParser().feed(bad)


def test_enhanced_status():
    assert Reply(550, ("5.1.1 user unknown",)).enhanced == "5.1.1"
    assert Reply(550, ("4.1.1 mismatched class",)).enhanced is None
    assert Reply(451, ("try later",)).status("3.0") == "4.3.0"
    assert Reply(250, ("ok",)).ok and Reply(451, ("x",)).transient and Reply(554, ("x",)).permanent


def test_ehlo_capabilities():
    caps = parse_ehlo(Reply(250, ("mx.example greets you", "PIPELINING", "SIZE 1000", "8BITMIME",
                                  "auth PLAIN LOGIN", "DSN", "SMTPUTF8", "STARTTLS")))
    assert caps.has("pipelining") and caps.has("DSN") and caps.has("STARTTLS")
    assert caps.size_limit == 1000
    assert caps.auth_mechanisms == ("PLAIN", "LOGIN")
    assert parse_ehlo(Reply(250, ("x", "SIZE"))).size_limit is None
    assert parse_ehlo(Reply(250, ("x", "SIZE 0"))).size_limit is None


def test_size_keyword_with_non_ascii_digits_means_no_limit():
    """A remote EHLO "SIZE ²": no limit known (int("²") would raise although "²".isdigit())."""
    from postroom.outbound.reply import Reply, parse_ehlo

    assert parse_ehlo(Reply(250, ("mx.example", "SIZE ²"))).size_limit is None
    assert parse_ehlo(Reply(250, ("mx.example", "SIZE 1000"))).size_limit == 1000
