"""METADATA (RFC 5464): GETMETADATA and SETMETADATA over loopback, as raw transcripts and
through imaplib; persistence across sessions and a restart; mailbox DELETE and RENAME;
limits; and, where Dovecot runs here, the same commands answered side by side with it."""

from __future__ import annotations

import imaplib
import re
import sys
from contextlib import closing
from pathlib import Path

import pytest
from imap_harness import PASSWORD, Harness, RawClient, write_config

sys.path.append(str(Path(__file__).resolve().parents[3] / "bench"))  # the Dovecot peer
from dovecot_peer import PASSWORD as DPASS
from dovecot_peer import DovecotPeer, unavailable

# imaplib sends only the commands it knows; these two are valid in its AUTH and SELECTED states.
imaplib.Commands.setdefault("GETMETADATA", ("AUTH", "SELECTED"))
imaplib.Commands.setdefault("SETMETADATA", ("AUTH", "SELECTED"))


def _login(srv, acc=None):
    acc = acc or srv.new_user()
    r = srv.raw()
    assert r.cmd(b'l LOGIN "%s" "%s"' % (acc.address.encode(), PASSWORD.encode()))[-1].startswith(b"l OK")
    return r


def _tagged(out: list[bytes]) -> bytes:
    return out[-1]


_TOKEN = re.compile(rb'\s*(?:(NIL)|"((?:[^"\\]|\\.)*)"|~?\{(\d+)\}\r\n|([^\s()"{]+)|(\()|(\)))')


def metadata(out: list[bytes]) -> dict[str, dict[str, bytes | None]]:
    """The METADATA responses of a transcript as {mailbox: {entry: value}} (literals,
    literal8 and quoted strings alike)."""
    data = b"".join(out)
    found: dict[str, dict[str, bytes | None]] = {}
    pos = 0
    while True:
        start = data.find(b"* METADATA ", pos)
        if start < 0:
            return found
        pos = start + len(b"* METADATA ")
        tokens: list[bytes | None] = []
        depth = 0
        while True:
            m = _TOKEN.match(data, pos)
            assert m, data[pos:pos + 80]
            pos = m.end()
            if m.group(1):
                tokens.append(None)
            elif m.group(2) is not None:
                tokens.append(re.sub(rb"\\(.)", rb"\1", m.group(2)))
            elif m.group(3):
                n = int(m.group(3))
                tokens.append(data[pos:pos + n])
                pos += n
            elif m.group(4):
                tokens.append(m.group(4))
            elif m.group(5):
                depth += 1
            else:
                depth -= 1
                if depth == 0:
                    break
        box = (tokens[0] or b"").decode()
        pairs = tokens[1:]
        entries = found.setdefault(box, {})
        for i in range(0, len(pairs), 2):
            entries[(pairs[i] or b"").decode()] = pairs[i + 1]


def test_capabilities(srv):
    c = srv.imaplib(srv.new_user())
    assert {"METADATA", "METADATA-SERVER"} <= set(c.capabilities)
    c.logout()


def test_set_get_and_remove_on_a_mailbox(srv):
    r = _login(srv)
    assert r.cmd(b'a SETMETADATA INBOX (/private/comment "My comment" /shared/comment "Shared one")') == [
        b"a OK Setmetadata completed\r\n"]
    assert r.cmd(b"b GETMETADATA INBOX (/private/comment /shared/comment)") == [
        b'* METADATA "INBOX" (/private/comment "My comment" /shared/comment "Shared one")\r\n',
        b"b OK Getmetadata completed\r\n"]
    # Entry names are case-insensitive and answered lower-case; one entry needs no parentheses.
    assert r.cmd(b"c GETMETADATA inbox /PRIVATE/Comment")[0] == b'* METADATA "INBOX" (/private/comment "My comment")\r\n'
    # NIL removes; an entry asked for at DEPTH 0 without a value is answered NIL.
    assert _tagged(r.cmd(b"d SETMETADATA INBOX (/private/comment NIL)")) == b"d OK Setmetadata completed\r\n"
    assert r.cmd(b"e GETMETADATA INBOX (/private/comment /shared/comment)")[0] == (
        b'* METADATA "INBOX" (/private/comment NIL /shared/comment "Shared one")\r\n')
    # The empty string is a value, not a removal.
    r.cmd(b'f SETMETADATA INBOX (/shared/comment "")')
    assert r.cmd(b"g GETMETADATA INBOX /shared/comment")[0] == b'* METADATA "INBOX" (/shared/comment "")\r\n'
    # Valid in the selected state too.
    r.cmd(b"h SELECT INBOX")
    assert _tagged(r.cmd(b'i SETMETADATA INBOX (/private/vendor/vendor.postroom/x "1")')).startswith(b"i OK")
    r.close()


def test_depth_and_maxsize(srv):
    r = _login(srv)
    r.cmd(b'a SETMETADATA INBOX (/private/comment "hello world" /private/vendor/v/a "1" '
          b'/private/vendor/v/a/b "22" /private/vendor/v/c "333" /shared/comment "x")')
    out = r.cmd(b"b GETMETADATA (DEPTH infinity) INBOX (/private /shared)")
    assert out[0] == (b'* METADATA "INBOX" (/private/comment "hello world" /private/vendor/v/a "1" '
                      b'/private/vendor/v/a/b "22" /private/vendor/v/c "333" /shared/comment "x")\r\n')
    # DEPTH 1: one level down only; the entry asked for has no value and is not listed.
    assert r.cmd(b"c GETMETADATA (DEPTH 1) INBOX (/private/vendor/v)")[0] == (
        b'* METADATA "INBOX" (/private/vendor/v/a "1" /private/vendor/v/c "333")\r\n')
    assert r.cmd(b"d GETMETADATA (DEPTH 0) INBOX (/private/vendor/v)")[0] == (
        b'* METADATA "INBOX" (/private/vendor/v NIL)\r\n')
    # MAXSIZE: longer values are left out; the tagged OK gives the longest of them.
    out = r.cmd(b"e GETMETADATA (MAXSIZE 2 DEPTH infinity) INBOX /private")
    assert out == [b'* METADATA "INBOX" (/private/vendor/v/a "1" /private/vendor/v/a/b "22")\r\n',
                   b"e OK [METADATA LONGENTRIES 11] Getmetadata completed\r\n"]
    assert r.cmd(b"f GETMETADATA (MAXSIZE 0) INBOX (/private/comment)") == [
        b"f OK [METADATA LONGENTRIES 11] Getmetadata completed\r\n"]
    # The options after the mailbox, where RFC 5464's examples put them before its errata.
    assert r.cmd(b"g GETMETADATA INBOX (DEPTH 1) (/private/vendor/v)")[0] == (
        b'* METADATA "INBOX" (/private/vendor/v/a "1" /private/vendor/v/c "333")\r\n')
    # An entry under two roots asked for is listed once; nothing found: no METADATA response.
    out = r.cmd(b"h GETMETADATA (DEPTH infinity) INBOX (/private/vendor /private/vendor/v/a)")
    assert metadata(out)["INBOX"].keys() == {"/private/vendor/v/a", "/private/vendor/v/a/b", "/private/vendor/v/c"}
    assert out[0].count(b"/private/vendor/v/a ") == 1
    assert r.cmd(b"i GETMETADATA (DEPTH infinity) Sent (/shared)") == [b"i OK Getmetadata completed\r\n"]
    r.close()


def test_server_entries_and_admin(srv):
    r = _login(srv)
    assert r.cmd(b'a GETMETADATA "" /shared/admin')[0] == (
        b'* METADATA "" (/shared/admin "mailto:postmaster@example.test")\r\n')
    assert _tagged(r.cmd(b'b SETMETADATA "" (/shared/admin "mailto:me@x.test")')).startswith(b"b NO [CANNOT]")
    assert _tagged(r.cmd(b'c SETMETADATA "" (/private/comment "server note" /shared/comment "motd")')).startswith(
        b"c OK")
    out = r.cmd(b'd GETMETADATA (DEPTH infinity) "" (/private /shared)')
    assert metadata(out) == {"": {"/private/comment": b"server note", "/shared/admin": b"mailto:postmaster@example.test",
                                  "/shared/comment": b"motd"}}
    # Server entries are not the INBOX's, and another account has its own.
    assert r.cmd(b"e GETMETADATA INBOX /shared/comment")[0] == b'* METADATA "INBOX" (/shared/comment NIL)\r\n'
    other = _login(srv)
    assert metadata(other.cmd(b'f GETMETADATA "" (/shared/comment)')) == {"": {"/shared/comment": None}}
    other.close()
    r.close()


def test_specialuse_is_read_only(srv):
    r = _login(srv)
    assert r.cmd(b"a GETMETADATA Sent /private/specialuse")[0] == b'* METADATA "Sent" (/private/specialuse "\\\\Sent")\r\n'
    out = r.cmd(b"b GETMETADATA (DEPTH 1) Trash (/private)")
    assert metadata(out) == {"Trash": {"/private/specialuse": b"\\Trash"}}
    assert _tagged(r.cmd(b'c SETMETADATA Sent (/private/specialuse "\\\\Junk")')).startswith(b"c NO [CANNOT]")
    assert _tagged(r.cmd(b"d SETMETADATA INBOX (/private/specialuse NIL)")).startswith(b"d NO [CANNOT]")
    assert r.cmd(b"e GETMETADATA INBOX /private/specialuse")[0] == b'* METADATA "INBOX" (/private/specialuse NIL)\r\n'
    r.close()


MALFORMED = [
    b'SETMETADATA INBOX (/private/a* "x")',
    b'SETMETADATA INBOX (/private/a%b "x")',
    b'SETMETADATA INBOX (/private//a "x")',
    b'SETMETADATA INBOX (/private/a/ "x")',
    b'SETMETADATA INBOX (/foo/a "x")',
    b'SETMETADATA INBOX (comment "x")',
    b'SETMETADATA INBOX (/private "x")',
    b'SETMETADATA INBOX ("/private/caf\xc3\xa9" "x")',
    b"SETMETADATA INBOX ()",
    b"SETMETADATA INBOX (/private/a)",
    b"SETMETADATA INBOX (/private/a x)",
    b"SETMETADATA INBOX /private/a \"x\"",
    b'SETMETADATA (/private/a "x")',
    b"GETMETADATA INBOX (/private/a*)",
    b"GETMETADATA INBOX ()",
    b"GETMETADATA INBOX",
    b"GETMETADATA (DEPTH 2) INBOX /private",
    b"GETMETADATA (DEPTH 1 DEPTH 0) INBOX /private",
    b"GETMETADATA (FOO 1) INBOX /private",
    b"GETMETADATA (MAXSIZE -1) INBOX /private",
    b"GETMETADATA (MAXSIZE 99999999999) INBOX /private",
    b"GETMETADATA () INBOX /private",
    b"GETMETADATA INBOX /private/comment extra",
    b"GETMETADATA INBOX /private/" + b"a" * 1100,
]


def test_malformed_is_bad_and_the_session_goes_on(srv):
    r = _login(srv)
    for command in MALFORMED:
        out = r.cmd(b"x " + command)
        assert len(out) == 1 and out[0].startswith(b"x BAD "), (command, out)
        assert r.cmd(b"y NOOP") == [b"y OK NOOP completed\r\n"]
    # Nothing of it was stored.
    assert r.cmd(b"z GETMETADATA (DEPTH infinity) INBOX (/private /shared)") == [b"z OK Getmetadata completed\r\n"]
    r.close()


def test_before_login_is_bad(srv):
    r = srv.raw()
    assert r.cmd(b"a GETMETADATA INBOX /private/comment")[-1].startswith(b"a BAD")
    assert r.cmd(b'b SETMETADATA INBOX (/private/comment "x")')[-1].startswith(b"b BAD")
    r.close()


def test_nonexistent_mailbox(srv):
    r = _login(srv)
    assert _tagged(r.cmd(b"a GETMETADATA Nope /private/comment")).startswith(b"a NO [NONEXISTENT]")
    assert _tagged(r.cmd(b'b SETMETADATA Nope (/private/comment "x")')).startswith(b"b NO [NONEXISTENT]")
    r.close()


def test_binary_values(srv):
    r = _login(srv)
    value = b"a\x00b\r\n\xff"
    r.send(b"a SETMETADATA INBOX (/private/vendor/v/bin ~{%d}\r\n" % len(value))
    assert r.line().startswith(b"+ ")
    r.send(value + b" /private/vendor/v/text {5}\r\n")
    assert r.line().startswith(b"+ ")
    r.send(b"caf\xc3\xa9)\r\n")
    assert r.until_tagged(b"a") == [b"a OK Setmetadata completed\r\n"]
    r.send(b"b GETMETADATA (DEPTH 1) INBOX /private/vendor/v\r\n")
    out = r.until_tagged(b"b")
    data = b"".join(out)
    # A NUL needs literal8 (RFC 5464 §5 value); 8-bit text goes as a plain literal.
    assert data.startswith(b'* METADATA "INBOX" (/private/vendor/v/bin ~{6}\r\n' + value
                           + b" /private/vendor/v/text {5}\r\ncaf\xc3\xa9)\r\n")
    assert metadata(out) == {"INBOX": {"/private/vendor/v/bin": value, "/private/vendor/v/text": b"caf\xc3\xa9"}}
    # LITERAL+ (non-synchronizing) literal8 too.
    assert r.cmd(b"c SETMETADATA INBOX (/private/vendor/v/bin ~{2+}\r\n\x00\x00)") == [b"c OK Setmetadata completed\r\n"]
    assert metadata(r.cmd(b"d GETMETADATA INBOX /private/vendor/v/bin")) == {"INBOX": {"/private/vendor/v/bin": b"\0\0"}}
    r.close()


def test_limits(srv):
    r = _login(srv)
    big = 64 * 1024 + 1
    r.send(b"a SETMETADATA INBOX (/private/vendor/v/big {%d+}\r\n" % big + b"x" * big + b")\r\n")
    assert r.until_tagged(b"a") == [b"a NO [METADATA MAXSIZE 65536] Metadata value too large\r\n"]
    assert r.cmd(b"b GETMETADATA INBOX /private/vendor/v/big")[0].endswith(b"NIL)\r\n")
    # 1000 entries on one mailbox; the 1001st is refused, and the whole command with it.
    for batch in range(10):
        pairs = b" ".join(b'/private/vendor/v/e%d "%d"' % (batch * 100 + i, i) for i in range(100))
        assert _tagged(r.cmd(b"c SETMETADATA INBOX (" + pairs + b")")).startswith(b"c OK")
    out = r.cmd(b'd SETMETADATA INBOX (/private/vendor/v/e0 NIL /private/vendor/v/more "1" /private/vendor/v/more2 "2")')
    assert out == [b"d NO [METADATA TOOMANY] Too many metadata entries, or too much metadata, for this account\r\n"]
    assert b"/private/vendor/v/e0 " in r.cmd(b"e GETMETADATA INBOX /private/vendor/v/e0")[0]  # not removed either
    # Replacing or removing is fine; another mailbox still has room.
    assert _tagged(r.cmd(b'f SETMETADATA INBOX (/private/vendor/v/e0 "new" /private/vendor/v/e1 NIL)')).startswith(b"f OK")
    assert _tagged(r.cmd(b'g SETMETADATA Sent (/private/comment "fine")')).startswith(b"g OK")
    r.close()


def test_account_size_limit(srv):
    r = _login(srv)
    chunk = b"y" * (64 * 1024)
    answers = []
    for i in range(65):  # 65 x 64 KiB is over the account's 4 MiB
        r.send(b"a SETMETADATA Archive (/private/vendor/v/%d {%d+}\r\n" % (i, len(chunk)) + chunk + b")\r\n")
        answers.append(r.until_tagged(b"a")[-1])
    assert answers[:63] == [b"a OK Setmetadata completed\r\n"] * 63
    assert answers[-1].startswith(b"a NO [METADATA TOOMANY]")
    r.close()


def test_imaplib_second_session_and_mailbox_delete_rename(srv):
    acc = srv.new_user()
    c = srv.imaplib(acc)
    c.create("Projects")
    typ, _ = c._simple_command("SETMETADATA", "Projects", '(/private/comment "work stuff")')
    assert typ == "OK"
    # Seen by another session at once (committed before the OK).
    d = srv.imaplib(acc)
    typ, data = d._untagged_response(*d._simple_command("GETMETADATA", "Projects", "/private/comment"), "METADATA")
    assert (typ, data) == ("OK", [b'"Projects" (/private/comment "work stuff")'])
    # RENAME keeps the entries (they belong to the mailbox, whatever its name).
    assert c.rename("Projects", "Work")[0] == "OK"
    typ, data = d._untagged_response(*d._simple_command("GETMETADATA", "Work", "/private/comment"), "METADATA")
    assert data == [b'"Work" (/private/comment "work stuff")']
    # DELETE drops them: a new mailbox of the same name starts without.
    assert c.delete("Work")[0] == "OK"
    c.create("Work")
    typ, data = d._untagged_response(*d._simple_command("GETMETADATA", "Work", "/private/comment"), "METADATA")
    assert data == [b'"Work" (/private/comment NIL)']
    typ, data = d._simple_command("GETMETADATA", "Projects", "/private/comment")
    assert typ == "NO"
    # RENAME INBOX (its messages go to a new mailbox): the new one gets a copy of INBOX's
    # entries and INBOX keeps them (RFC 5464 §4.1).
    c._simple_command("SETMETADATA", "INBOX", '(/private/comment "in" /shared/vendor/v.x/a "b")')
    assert c.rename("INBOX", "Old-Inbox")[0] == "OK"
    for box in ("INBOX", "Old-Inbox"):
        typ, data = d._untagged_response(*d._simple_command("GETMETADATA", "(DEPTH infinity)", box,
                                                              "(/private /shared)"), "METADATA")
        assert data == [b'"%s" (/private/comment "in" /shared/vendor/v.x/a "b")' % box.encode()]
    c.logout()
    d.logout()


def test_entries_survive_a_restart(tmp_path):
    cfg = write_config(tmp_path)
    with closing(Harness(cfg)) as h:
        acc = h.new_user()
        r = _login(h, acc)
        assert _tagged(r.cmd(b'a SETMETADATA "" (/private/vendor/v/x "kept")')).startswith(b"a OK")
        assert _tagged(r.cmd(b'b SETMETADATA INBOX (/shared/comment "kept too")')).startswith(b"b OK")
        r.close()
    with closing(Harness(cfg)) as h:
        r = _login(h, acc)
        assert metadata(r.cmd(b'c GETMETADATA "" /private/vendor/v/x')) == {"": {"/private/vendor/v/x": b"kept"}}
        assert metadata(r.cmd(b"d GETMETADATA INBOX /shared/comment")) == {"INBOX": {"/shared/comment": b"kept too"}}
        r.close()


# -- side by side with Dovecot ------------------------------------------------------------

# Commands both servers must answer alike (status, response code of a NO, the entries).
SAME = [
    (b'SETMETADATA INBOX (/private/comment "hello world" /shared/comment "x" /private/vendor/a/b "1" '
     b'/private/vendor/a/b/c "22" /private/vendor/a/d "333")'),
    b"GETMETADATA (DEPTH infinity) INBOX (/private /shared)",
    b"GETMETADATA (DEPTH 1) INBOX (/private/vendor/a)",
    b"GETMETADATA (DEPTH 0) INBOX (/private/vendor)",
    b"GETMETADATA (DEPTH infinity MAXSIZE 2) INBOX (/private)",
    b"GETMETADATA (MAXSIZE 2) INBOX (/private/comment /shared/comment)",
    b"GETMETADATA INBOX (/PRIVATE/COMMENT /shared/nothere)",
    b'SETMETADATA INBOX (/private/comment "")',
    b"GETMETADATA INBOX /private/comment",
    b"GETMETADATA (DEPTH 1) Sent (/private)",
    b'SETMETADATA Sent (/private/specialuse "\\\\Junk")',
    b'SETMETADATA "" (/shared/admin "mailto:x@y.test")',
    b'SETMETADATA INBOX (/private/a* "x")',
    b'SETMETADATA INBOX (/private//a "x")',
    b'SETMETADATA INBOX (/private/a/ "x")',
    b'SETMETADATA INBOX (/foo/a "x")',
    b"GETMETADATA INBOX (/private/a%b)",
    b"GETMETADATA (DEPTH 3) INBOX (/private)",
    b"GETMETADATA (FOO 3) INBOX (/private)",
    b'SETMETADATA Nope (/private/comment "x")',
    b"GETMETADATA Nope /private/comment",
]
# Where we answer differently on purpose (docs/imap.md, "Differences from Dovecot").
KNOWN = {
    b"GETMETADATA Nope /private/comment": "NO [NONEXISTENT] (RFC 5530) where Dovecot says NO without a code",
    b'SETMETADATA Nope (/private/comment "x")': "the same",
}


def _status(tagged: bytes) -> tuple[bytes, bytes | None]:
    words = tagged.split(b" ", 3)
    code = words[2] if words[1] == b"NO" and words[2].startswith(b"[") else None
    if code is not None and not code.endswith(b"]"):
        code = tagged.split(b"[", 1)[1].split(b"]", 1)[0]
    return words[1], code


@pytest.mark.slow
@pytest.mark.skipif(unavailable() is not None, reason=str(unavailable()))
def test_answers_match_dovecot(srv):
    with DovecotPeer(users=["md"], imap_port=0, metadata=True, mailboxes={"Sent": "\\Sent"}) as d:
        ours = _login(srv)
        theirs = RawClient("127.0.0.1", d.imap_port)
        assert theirs.cmd(b"l LOGIN md %s" % DPASS.encode())[-1].startswith(b"l OK")
        for i, command in enumerate(SAME):
            tag = b"t%d" % i
            a, b = ours.cmd(tag + b" " + command), theirs.cmd(tag + b" " + command)
            sa, sb = _status(a[-1]), _status(b[-1])
            if command in KNOWN:
                assert sa[0] == sb[0], (command, a, b)
                continue
            assert sa[0] == sb[0], (command, a, b)
            if sa[0] == b"NO":
                assert sa[1] == sb[1], (command, a, b)
            if sa[0] == b"OK":
                # Entry order is free (§4.2); mailbox names are compared without quotes.
                assert metadata(a) == metadata(b), (command, a, b)
                assert (b"LONGENTRIES" in a[-1]) == (b"LONGENTRIES" in b[-1]), (command, a, b)
                if b"LONGENTRIES" in a[-1]:
                    assert a[-1].split(b"]")[0] == b[-1].split(b"]")[0], (command, a, b)
        ours.close()
        theirs.close()


def test_admin_contact_setting(tmp_path):
    from postroom.config import load
    from postroom.imap.settings import read_settings

    def settings(extra: str) -> tuple[str, list[str]]:
        d = tmp_path / str(len(list(tmp_path.iterdir())))
        d.mkdir()
        problems: list[str] = []
        got = read_settings(load(write_config(d, "allow_plaintext_auth = true\n" + extra)), problems)
        return got.admin_contact, problems

    assert settings("") == ("mailto:postmaster@example.test", [])  # the first of `domains`
    assert settings('admin_contact = "tel:+1-555-0100"') == ("tel:+1-555-0100", [])
    assert settings('admin_contact = ""') == ("", [])  # no /shared/admin at all
    _, problems = settings('admin_contact = "postmaster at example"')
    assert [p for p in problems if p.startswith("imap.admin_contact: must be a URI")]
