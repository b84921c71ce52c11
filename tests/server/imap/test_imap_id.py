"""ID (RFC 2971): the server's name and version in any state; the client's fields logged, bounded."""

import logging

from imap_harness import PASSWORD

from postroom import __version__


def _fields(resp):
    items = resp[0] if isinstance(resp, tuple) and len(resp) == 1 else resp  # imapclient: the parsed list
    return dict(zip(items[::2], items[1::2]))


def test_id_imapclient_before_and_after_login(srv):
    acc = srv.new_user()
    c = srv.imapclient()
    assert b"ID" in c.capabilities()
    info = _fields(c.id_({"name": "pytest", "version": "1.0"}))
    assert info[b"name"] == b"Postroom" and info[b"version"] == __version__.encode()
    c.login(acc.address, PASSWORD)
    assert _fields(c.id_())[b"name"] == b"Postroom"  # ID NIL
    c.select_folder("INBOX")
    assert _fields(c.id_({"name": "again"}))[b"name"] == b"Postroom"
    c.logout()


def test_id_raw_and_logged(srv, caplog):
    r = srv.raw()
    with caplog.at_level(logging.INFO, logger="postroom.imap"):
        got = r.cmd(b'a ID ("name" "evil\\"client" "os" NIL "x-ctl" {9+}\r\nline\r\nfoo)')
    assert got == [b'* ID ("name" "Postroom" "version" "%s")\r\n' % __version__.encode(), b"a OK ID completed\r\n"]
    text = "\n".join(rec.getMessage() for rec in caplog.records if " id " in rec.getMessage())
    assert "'evil\"client'" in text and "'os'=None" in text
    assert "'line\\r\\nfoo'" in text and "\nfoo" not in text  # no forged log lines
    assert r.cmd(b"b ID ()")[-1] == b"b OK ID completed\r\n"
    r.close()


def test_id_malformed_is_bad(srv):
    r = srv.raw()
    too_many = b"(" + b" ".join(b'"f%d" "v"' % i for i in range(31)) + b")"
    for args in (b"", b" ", b' "name" "x"', b' ("name")', b' ("name" "x"', b" (name x)", b" NIL extra",
                 b' ("' + b"f" * 31 + b'" "v")', b' ("f" "' + b"v" * 1025 + b'")', b" " + too_many):
        got = r.cmd(b"t ID" + args)
        assert len(got) == 1 and got[0].startswith(b"t BAD "), (args, got)
    assert r.cmd(b"n NOOP") == [b"n OK NOOP completed\r\n"]
    r.close()
