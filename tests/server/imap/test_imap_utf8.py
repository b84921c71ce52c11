"""UTF8=ACCEPT (RFC 6855): ENABLE, UTF-8 mailbox names both ways (no modified UTF-7 after
ENABLE), APPEND's UTF8 data item, SEARCH without CHARSET. Raw transcripts."""

from imap_harness import PASSWORD

NAME = "Entwürfe/日本"
MUTF7 = b"Entw&APw-rfe/&ZeVnLA-"
UTF8_HEADER_MSG = ("From: Jörg <jörg@bücher.example>\r\nTo: b@y.test\r\nSubject: Grüße\r\n"
                   "Date: Mon, 5 Feb 2024 10:11:12 +0100\r\n\r\nHallo\r\n").encode()


def login(srv, acc):
    c = srv.raw()
    assert c.cmd(b"l LOGIN %s %s" % (acc.address.encode(), PASSWORD.encode()))[-1].startswith(b"l OK")
    return c


def test_capability_and_enable(srv):
    acc = srv.new_user()
    c = login(srv, acc)
    caps = b"".join(c.cmd(b"c CAPABILITY"))
    assert b" UTF8=ACCEPT" in caps
    out = c.cmd(b"e ENABLE UTF8=ACCEPT")
    assert out == [b"* ENABLED UTF8=ACCEPT\r\n", b"e OK Enable completed\r\n"]
    assert c.cmd(b"e ENABLE UTF8=ACCEPT")[0] == b"* ENABLED\r\n"  # already on: not listed again
    c.close()


def test_names_utf8_after_enable(srv):
    acc = srv.new_user()
    c = login(srv, acc)
    assert c.cmd(b'a CREATE "' + MUTF7 + b'"')[-1].startswith(b"a OK")
    assert MUTF7 in b"".join(c.cmd(b'l LIST "" "Entw*"'))  # before ENABLE: modified UTF-7
    c.cmd(b"e ENABLE UTF8=ACCEPT")
    out = b"".join(c.cmd(b'l LIST "" "Entw*"'))
    assert NAME.encode() in out and b"&" not in out
    assert b'"' + NAME.encode() + b'"' in out  # a quoted UTF-8 string (RFC 6855 §3)
    out = b"".join(c.cmd('s STATUS "{}" (MESSAGES)'.format(NAME).encode()))
    assert ('* STATUS "%s" (MESSAGES 0)' % NAME).encode() in out
    assert c.cmd('x SELECT "{}"'.format(NAME).encode())[-1].startswith(b"x OK")
    # "&" is an ordinary character now: the modified UTF-7 spelling names another mailbox.
    assert c.cmd(b'x SELECT "' + MUTF7 + b'"')[-1].startswith(b"x NO")
    assert c.cmd(b'a CREATE "R&D"')[-1].startswith(b"a OK")
    assert b'"R&D"' in b"".join(c.cmd(b'l LIST "" "R*"'))
    assert c.cmd(b'a CREATE "bad\xff"')[-1].startswith(b"a NO [CANNOT]")
    assert c.cmd('a CREATE "bad\u0085x"'.encode())[-1].startswith(b"a NO [CANNOT]")  # C1 control
    c.close()
    c = login(srv, acc)  # another session without ENABLE sees modified UTF-7
    out = b"".join(c.cmd(b'l LIST "" "*"'))
    assert MUTF7 in out and b'"R&-D"' in out and NAME.encode() not in out
    c.close()


def test_append_utf8_data_item(srv):
    acc = srv.new_user()
    c = login(srv, acc)
    # Before ENABLE the UTF8 data item is BAD (RFC 6855 §4).
    c.send(b"a APPEND INBOX UTF8 (~{%d+}\r\n" % len(UTF8_HEADER_MSG) + UTF8_HEADER_MSG + b")\r\n")
    assert c.until_tagged(b"a")[-1].startswith(b"a BAD")
    c.cmd(b"e ENABLE UTF8=ACCEPT")
    c.send(b"a APPEND INBOX (\\Seen) UTF8 (~{%d}\r\n" % len(UTF8_HEADER_MSG))
    assert c.line().startswith(b"+ ")
    c.send(UTF8_HEADER_MSG + b")\r\n")
    assert c.until_tagged(b"a")[-1].startswith(b"a OK [APPENDUID")
    c.send(b"b APPEND INBOX UTF8 ({%d+}\r\n" % len(UTF8_HEADER_MSG) + UTF8_HEADER_MSG + b")\r\n")
    assert c.until_tagged(b"b")[-1].startswith(b"b BAD")  # literal8 only
    assert c.cmd(b"s SELECT INBOX")[-1].startswith(b"s OK")
    out = b"".join(c.cmd(b"f FETCH 1 (BODY.PEEK[] FLAGS)"))
    assert UTF8_HEADER_MSG in out and b"\\Seen" in out
    c.close()


def test_search_utf8(srv):
    acc = srv.new_user()
    srv.deliver(acc, UTF8_HEADER_MSG)
    c = login(srv, acc)
    c.cmd(b"e ENABLE UTF8=ACCEPT")
    c.cmd(b"s SELECT INBOX")
    assert c.cmd('f SEARCH SUBJECT "Grüße"'.encode())[0] == b"* SEARCH 1\r\n"
    assert c.cmd(b"f SEARCH CHARSET UTF-8 ALL")[-1].startswith(b"f BAD")  # RFC 6855 §3
    c.close()


def test_envelope_downgraded_without_enable(srv):
    """RFC 6855 §7: a session without UTF8=ACCEPT gets RFC 5322 (ASCII) header text in
    ENVELOPE: encoded words, and an empty group for an address that cannot be ASCII (RFC 6858 §3)."""
    import email.header

    acc = srv.new_user()
    srv.deliver(acc, UTF8_HEADER_MSG)
    c = srv.imapclient(acc, select="INBOX")
    env = c.fetch([1], ["ENVELOPE"])[1][b"ENVELOPE"]
    assert env.subject.isascii() and str(email.header.make_header(email.header.decode_header(
        env.subject.decode()))) == "Grüße"
    group = env.from_[0]
    assert group.host is None and group.mailbox.isascii()  # imapclient: a group start
    assert str(email.header.make_header(email.header.decode_header(group.mailbox.decode()))) \
        == "Jörg <jörg@bücher.example>"
    c.logout()
    c = login(srv, acc)
    c.cmd(b"e ENABLE UTF8=ACCEPT")
    c.cmd(b"s SELECT INBOX")
    out = b"".join(c.cmd(b"f FETCH 1 (ENVELOPE)"))
    assert "Grüße".encode() in out and "jörg".encode() in out and b"=?utf-8?" not in out
    c.close()


def test_sort_keeps_its_charset(srv):
    """Only SEARCH's CHARSET is refused after ENABLE (RFC 6855 §3); SORT's is mandatory."""
    acc = srv.new_user()
    srv.deliver(acc, UTF8_HEADER_MSG)
    c = login(srv, acc)
    c.cmd(b"e ENABLE UTF8=ACCEPT")
    c.cmd(b"s SELECT INBOX")
    out = c.cmd('o SORT (SUBJECT) UTF-8 SUBJECT "Grüße"'.encode())
    assert out[0] == b"* SORT 1\r\n" and out[-1].startswith(b"o OK")
    c.close()
