"""Raw transcripts of malformed input: always a clear BAD/NO, never a traceback or a hang."""

from imap_harness import PASSWORD


def login(srv, acc):
    r = srv.raw()
    r.cmd(b'l LOGIN "%s" "%s"' % (acc.address.encode(), PASSWORD.encode()))
    return r


def test_bad_tags_and_commands(srv):
    r = srv.raw()
    assert r.cmd(b"a BOGUS") == [b"a BAD Unknown command\r\n"]
    r.send(b"(bad NOOP\r\n")
    assert r.line() == b"* BAD Invalid tag\r\n"
    r.send(b"onlytag\r\n")
    assert r.line() == b"onlytag BAD Invalid command\r\n"
    r.send(b"\r\n")  # empty lines are ignored
    assert r.cmd(b"b NOOP extra") == [b"b BAD Unexpected extra arguments\r\n"]
    assert r.cmd(b"c LOGIN") == [b"c BAD Expected a space\r\n"]
    assert r.cmd(b'd LOGIN "unterminated') [-1].startswith(b"d BAD")
    assert r.cmd(b"e NOOP") == [b"e OK NOOP completed\r\n"]
    r.close()


def test_literal_limits_before_login(srv):
    r = srv.raw()
    r.send(b"a LOGIN {100000}\r\n")
    assert r.line() == b"a NO [TOOBIG] Literal too large\r\n"
    assert r.cmd(b"b NOOP") == [b"b OK NOOP completed\r\n"]
    # A non-synchronizing literal over the limit is already on its way: hang up.
    r.send(b"c LOGIN {100000+}\r\n")
    assert r.line().startswith(b"* BYE")
    r.close()


def test_line_too_long(srv):
    r = srv.raw()
    r.send(b"a NOOP " + b"x" * 100_000 + b"\r\n")
    assert r.line() == b"* BAD Line too long\r\n"
    assert r.cmd(b"b NOOP") == [b"b OK NOOP completed\r\n"]
    r.close()


def test_garbage_in_selected_state(srv):
    acc = srv.new_user()
    r = login(srv, acc)
    r.cmd(b"s SELECT INBOX")
    for bad in (b"a UID", b"a UID BOGUS 1", b"a STORE 1 +FLAGS", b"a COPY 1", b"a SEARCH", b"a FETCH 1 (BODY[",
                b"a SEARCH CHARSET", b"a FETCH 1:2:3 FLAGS", b"a FETCH 4294967296 FLAGS", b"a SELECT",
                b"a STATUS INBOX ()", b"a APPEND INBOX", b"a LIST", b"a FETCH 1 BODY[]<5>", b"a SEARCH OR"):
        last = r.cmd(bad)[-1]
        assert last.startswith(b"a BAD"), (bad, last)
    assert r.cmd(b"a UID FETCH 1 FLAGS")[-1].startswith(b"a OK")
    assert r.cmd(b"b LOGOUT")[-1] == b"b OK Logout completed\r\n"
    r.close()


def test_binary_junk(srv):
    r = srv.raw()
    r.send(b"\x00\xff\xfe junk\r\n")
    assert r.line() == b"* BAD Invalid tag\r\n"
    r.send(b"a \xff\xfe\r\n")
    assert r.line().startswith(b"a BAD")
    assert r.cmd(b"z NOOP") == [b"z OK NOOP completed\r\n"]
    r.close()
