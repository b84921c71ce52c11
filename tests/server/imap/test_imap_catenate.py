"""CATENATE (RFC 4469): APPEND built from TEXT literals and IMAP URLs (RFC 5092) of the user's own
mailboxes; anything else is NO [BADURL]. Raw transcripts: imaplib cannot send these."""

import re

from imap_harness import PASSWORD, msg

LIMITS = 'message_size = "4k"'

BODY = b"Subject: part\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\n\r\nfirst part\r\n--B--\r\n"


def _login(srv, acc):
    r = srv.raw()
    r.cmd(b'l LOGIN "%s" "%s"' % (acc.address.encode(), PASSWORD.encode()))
    return r


def _uidvalidity(srv, acc, mailbox="INBOX"):
    return srv.call(srv.store.get_mailbox(acc.id, mailbox)).uidvalidity


def _messages(srv, acc, mailbox="Drafts"):
    mb = srv.call(srv.store.get_mailbox(acc.id, mailbox))
    return [srv.call(srv.store.read_message(m)) for m in srv.call(srv.store.list_messages(mb.id))]


def test_text_and_urls_make_one_message(srv):
    acc = srv.new_user()
    uid = srv.deliver(acc, BODY)
    uv = _uidvalidity(srv, acc)
    r = _login(srv, acc)
    head = b"Subject: forward\r\n\r\n"
    url_whole = b"/INBOX;UIDVALIDITY=%d/;UID=%d" % (uv, uid)
    url_part = b"/inbox;UIDVALIDITY=%d/;UID=%d/;SECTION=1" % (uv, uid)
    url_partial = b"imap://%s@%s/INBOX;UIDVALIDITY=%d/;UID=%d/;SECTION=HEADER/;PARTIAL=0.8" % (
        acc.address.replace("@", "%40").encode(), srv.server.ctx.config.hostname.encode(), uv, uid)
    r.send(b"t APPEND Drafts (\\Draft) CATENATE (TEXT {%d}\r\n" % len(head))
    assert r.line().startswith(b"+ ")
    r.send(head + b' URL "%s" URL %s URL "%s" TEXT {2+}\r\n!!)\r\n' % (url_whole, url_part, url_partial))
    out = r.until_tagged(b"t")
    assert re.match(rb"t OK \[APPENDUID \d+ 1\] ", out[-1]), out
    assert _messages(srv, acc) == [head + BODY + b"first part" + b"Subject:" + b"!!"]
    r.close()


def test_catenate_inside_multiappend(srv):
    acc = srv.new_user()
    uid = srv.deliver(acc, msg("orig"))
    uv = _uidvalidity(srv, acc)
    r = _login(srv, acc)
    a = msg("plain")
    out = r.cmd(b'm APPEND Drafts {%d+}\r\n%s CATENATE (URL "/INBOX;UIDVALIDITY=%d/;UID=%d")\r\n'
                % (len(a), a, uv, uid))
    assert re.match(rb"m OK \[APPENDUID \d+ 1:2\] ", out[-1]), out
    assert _messages(srv, acc) == [a, msg("orig")]
    r.close()


def test_bad_urls_are_badurl_and_store_nothing(srv):
    acc = srv.new_user()
    other = srv.new_user()
    uid = srv.deliver(acc, msg("mine"))
    ouid = srv.deliver(other, msg("secret"))
    uv, ouv = _uidvalidity(srv, acc), _uidvalidity(srv, other)
    host = srv.server.ctx.config.hostname.encode()
    r = _login(srv, acc)
    bad = [
        # another user's mailbox, by absolute URL (with the other's UIDVALIDITY and UID)
        b"imap://%s@%s/INBOX;UIDVALIDITY=%d/;UID=%d" % (other.address.replace("@", "%40").encode(), host, ouv, ouid),
        # our own name but another server
        b"imap://%s@elsewhere.test/INBOX;UIDVALIDITY=%d/;UID=%d" % (acc.address.encode(), uv, uid),
        b"imap://%s/INBOX;UIDVALIDITY=%d/;UID=%d" % (host, uv, uid),  # anonymous
        b"/INBOX;UIDVALIDITY=%d/;UID=%d" % (uv + 1, uid),  # wrong UIDVALIDITY
        b"/INBOX/;UID=%d" % uid,  # no UIDVALIDITY
        b"/INBOX;UIDVALIDITY=%d/;UID=%d" % (uv, uid + 5),  # no such message
        b"/Nowhere;UIDVALIDITY=%d/;UID=%d" % (uv, uid),
        b"/INBOX;UIDVALIDITY=%d/;UID=%d/;SECTION=7" % (uv, uid),  # no such part
        b"/INBOX;UIDVALIDITY=%d/;UID=%d/;URLAUTH=anonymous" % (uv, uid),
        b"/INBOX?SUBJECT%20x",
        b"not a url",
        b"/INBOX;UIDVALIDITY=%d/;UID=%d/;SECTION=%%ZZ" % (uv, uid),
    ]
    for i, url in enumerate(bad):
        tag = b"b%d" % i
        out = r.cmd(tag + b' APPEND Drafts CATENATE (TEXT {3+}\r\nabc URL "%s")\r\n' % url.replace(b'"', b""))
        assert out[-1].startswith(tag + b" NO [BADURL "), (url, out)
        assert b"secret" not in b"".join(out)
    # the echo is safe: no "]", CR or LF from a URL sent as a literal
    out = r.cmd(b"x APPEND Drafts CATENATE (URL {5+}\r\na]b\r\n)\r\n")
    assert out[-1].startswith(b"x NO [BADURL a%5Db%0D%0A]"), out
    # a bad URL after a good MULTIAPPEND message: nothing stored
    a = msg("a")
    out = r.cmd(b'y APPEND Drafts {%d+}\r\n%s CATENATE (URL "/INBOX;UIDVALIDITY=%d/;UID=99")\r\n' % (len(a), a, uv))
    assert out[-1].startswith(b"y NO [BADURL")
    assert _messages(srv, acc) == []
    assert r.cmd(b"n NOOP")[-1].startswith(b"n OK")
    r.close()


def test_catenated_size_is_bounded_and_syntax_checked(srv):
    acc = srv.new_user()
    uid = srv.deliver(acc, b"Subject: big\r\n\r\n" + b"x" * 3000 + b"\r\n")
    uv = _uidvalidity(srv, acc)
    r = _login(srv, acc)
    url = b'URL "/INBOX;UIDVALIDITY=%d/;UID=%d"' % (uv, uid)
    out = r.cmd(b"t APPEND Drafts CATENATE (%s %s)" % (url, url))  # 6 KB > message_size 4k
    assert out[-1].startswith(b"t NO [TOOBIG]")
    assert r.cmd(b"u APPEND Drafts CATENATE ()")[-1].startswith(b"u BAD")
    assert r.cmd(b"v APPEND Drafts CATENATE (FOO x)")[-1].startswith(b"v BAD")
    assert r.cmd(b"w APPEND Drafts CATENATE (TEXT {0+}\r\n)\r\n")[-1] == b"w NO Empty message\r\n"
    assert _messages(srv, acc) == []
    r.close()
