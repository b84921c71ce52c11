"""IMAP4rev2 (RFC 9051) beside IMAP4rev1: CAPABILITY lists both, ENABLE IMAP4rev2 switches a
session to rev2's rules (Appendix E), and a session that does not ENABLE it sees IMAP4rev1
exactly as before. Raw transcripts (each case before and after ENABLE) and imaplib (a rev1
client)."""

import base64
import re

from imap_harness import PASSWORD, msg

KEYWORDS = b"$Forwarded $Junk $MDNSent $NotJunk $Phishing"
NFD = "Cafe\u0301"  # "Café" decomposed: not Net-Unicode (RFC 5198 wants NFC)
NFC = "Caf\u00e9"


def login(srv, acc, rev2=False, select=None):
    c = srv.raw()
    assert c.cmd(b"l LOGIN %s %s" % (acc.address.encode(), PASSWORD.encode()))[-1].startswith(b"l OK")
    if rev2:
        assert c.cmd(b"e ENABLE IMAP4rev2") == [b"* ENABLED IMAP4rev2\r\n", b"e OK Enable completed\r\n"]
    if select:
        assert c.cmd(b"s SELECT " + select)[-1].startswith(b"s OK")
    return c


def joined(lines):
    return b"".join(lines)


# -- CAPABILITY and ENABLE (Appendix A, §6.3.1) ------------------------------------------
def test_capability_lists_both_and_enable(srv):
    acc = srv.new_user()
    c = srv.raw()
    before = c.cmd(b"c CAPABILITY")[0].split()
    assert b"IMAP4rev1" in before and b"IMAP4rev2" in before
    c.close()
    c = login(srv, acc)
    assert c.cmd(b"e enable imap4REV2") == [b"* ENABLED IMAP4rev2\r\n", b"e OK Enable completed\r\n"]
    assert c.cmd(b"e ENABLE IMAP4rev2")[0] == b"* ENABLED\r\n"  # already on: not listed again
    # §6.3.1: ENABLE does not change the CAPABILITY list.
    after = c.cmd(b"c CAPABILITY")[0].split()
    assert [w for w in after if not w.startswith(b"AUTH=")] == [w for w in before if not w.startswith(b"AUTH=")
                                                              and w not in (b"LOGINDISABLED", b"STARTTLS")]
    # The base set of Appendix E item 2 (LITERAL- by way of LITERAL+, its superset).
    for cap in (b"NAMESPACE", b"UNSELECT", b"UIDPLUS", b"ESEARCH", b"SEARCHRES", b"ENABLE", b"IDLE",
                b"SASL-IR", b"LIST-EXTENDED", b"LIST-STATUS", b"MOVE", b"LITERAL+", b"BINARY",
                b"SPECIAL-USE", b"STATUS=SIZE"):
        assert cap in after, cap
    c.close()


def test_imaplib_rev1_client_unchanged(srv):
    acc = srv.new_user()
    srv.deliver(acc, msg("one"))
    c = srv.imaplib(acc)
    assert "IMAP4REV1" in c.capabilities and "IMAP4REV2" in c.capabilities
    assert c.PROTOCOL_VERSION == "IMAP4REV1"
    typ, data = c.select("INBOX")
    assert typ == "OK" and data == [b"1"]
    assert c.untagged_responses.get("RECENT") == [b"1"]
    assert c.search(None, "ALL") == ("OK", [b"1"])
    assert c.status("INBOX", "(MESSAGES RECENT)")[0] == "OK"
    c.logout()


# -- SELECT / EXAMINE (§6.3.2; Appendix E items 10-12, 15) ------------------------------
def test_select_rev1_unchanged(srv):
    acc = srv.new_user()
    srv.deliver(acc, msg("one"))
    c = login(srv, acc)
    out = c.cmd(b"s SELECT INBOX")
    assert b"* FLAGS (\\Answered \\Deleted \\Draft \\Flagged \\Seen)\r\n" in out
    assert b"* 1 RECENT\r\n" in out
    assert any(line.startswith(b"* OK [UNSEEN 1]") for line in out)
    assert not any(line.startswith(b"* LIST") for line in out)
    c.close()


def test_select_rev2(srv):
    acc = srv.new_user()
    srv.deliver(acc, msg("one"))
    c = login(srv, acc, rev2=True)
    out = c.cmd(b"s SELECT INBOX")
    assert out[-1].startswith(b"s OK [READ-WRITE]")
    assert b"* 1 EXISTS\r\n" in out
    assert not any(b"RECENT" in line or b"[UNSEEN" in line for line in out)
    assert b'* LIST (\\HasNoChildren) "/" "INBOX"\r\n' in out
    assert b"* FLAGS (" + KEYWORDS + b" \\Answered \\Deleted \\Draft \\Flagged \\Seen)\r\n" in out
    assert any(line.startswith(b"* OK [PERMANENTFLAGS (" + KEYWORDS + b" \\* \\Answered \\Deleted \\Draft "
                                b"\\Flagged \\Seen)]") for line in out)
    assert any(line.startswith(b"* OK [UIDVALIDITY ") for line in out)
    assert any(line.startswith(b"* OK [UIDNEXT 2]") for line in out)
    # §6.3.2: closing the previous mailbox says [CLOSED]; the LIST shows children and special use.
    assert c.cmd(b'c CREATE "Arch/2024"')[-1].startswith(b"c OK")
    assert c.cmd(b"c CREATE Bin (USE (\\Trash))")[-1].startswith(b"c OK")
    out = c.cmd(b"x EXAMINE Arch")
    assert out[0] == b"* OK [CLOSED] Previous mailbox closed\r\n"
    assert b'* LIST (\\HasChildren) "/" "Arch"\r\n' in out
    assert b"* OK [PERMANENTFLAGS ()] Flags permitted\r\n" in out
    assert b'* LIST (\\HasNoChildren \\Trash) "/" "Bin"\r\n' in c.cmd(b"x EXAMINE Bin")
    c.close()


# -- \Recent and RECENT (Appendix E item 12) ---------------------------------------------
def test_no_recent_after_enable(srv):
    acc = srv.new_user()
    srv.deliver(acc, msg("one"))
    c = login(srv, acc, rev2=True, select=b"INBOX")
    assert c.cmd(b"f FETCH 1 FLAGS")[0] == b"* 1 FETCH (FLAGS ())\r\n"
    # A rev2 session claims no \Recent: a rev1 session opening the mailbox afterwards gets it.
    r1 = login(srv, acc)
    out = r1.cmd(b"s SELECT INBOX")
    assert b"* 1 RECENT\r\n" in out
    assert r1.cmd(b"f FETCH 1 FLAGS")[0] == b"* 1 FETCH (FLAGS (\\Recent))\r\n"
    # New mail while selected: EXISTS alone for rev2, EXISTS and RECENT for rev1.
    srv.deliver(acc, msg("two"))
    out = c.cmd(b"n NOOP")
    assert b"* 2 EXISTS\r\n" in out and not any(b"RECENT" in line for line in out)
    assert c.cmd(b"f FETCH 2 FLAGS")[0] == b"* 2 FETCH (FLAGS ())\r\n"
    out = r1.cmd(b"n NOOP")
    assert b"* 2 EXISTS\r\n" in out and b"* 2 RECENT\r\n" in out
    c.close()
    r1.close()


def test_enable_while_selected_drops_recent(srv):
    acc = srv.new_user()
    srv.deliver(acc, msg("one"))
    c = login(srv, acc, select=b"INBOX")
    assert c.cmd(b"f FETCH 1 FLAGS")[0] == b"* 1 FETCH (FLAGS (\\Recent))\r\n"
    c.cmd(b"e ENABLE IMAP4rev2")
    assert c.cmd(b"f FETCH 1 FLAGS")[0] == b"* 1 FETCH (FLAGS ())\r\n"
    assert c.cmd(b"t SEARCH RECENT")[-1].startswith(b"t BAD")
    c.close()


def test_status(srv):
    acc = srv.new_user()
    srv.deliver(acc, msg("one"), flags=frozenset({"\\Deleted"}))
    srv.deliver(acc, msg("two"))
    c = login(srv, acc)
    out = c.cmd(b"t STATUS INBOX (MESSAGES RECENT)")
    assert out[0] == b'* STATUS "INBOX" (MESSAGES 2 RECENT 2)\r\n'  # rev1: as before
    c.cmd(b"e ENABLE IMAP4rev2")
    assert c.cmd(b"t STATUS INBOX (MESSAGES RECENT)")[-1].startswith(b"t BAD")
    assert c.cmd(b'l LIST "" "*" RETURN (STATUS (RECENT))')[-1].startswith(b"l BAD")
    # Appendix E item 3: STATUS SIZE and DELETED.
    out = c.cmd(b"t STATUS INBOX (MESSAGES DELETED SIZE)")
    size = len(msg("one")) + len(msg("two"))
    assert out[0] == b'* STATUS "INBOX" (MESSAGES 2 DELETED 1 SIZE %d)\r\n' % size
    out = c.cmd(b'l LIST "" "INBOX" RETURN (STATUS (DELETED))')
    assert b'* STATUS "INBOX" (DELETED 1)\r\n' in out and out[-1].startswith(b"l OK")
    c.close()


# -- SEARCH answers ESEARCH (§6.4.4, §7.3.4; Appendix E item 4) ---------------------------
def test_search_rev1_unchanged(srv):
    acc = srv.new_user()
    for i in range(3):
        srv.deliver(acc, msg(f"m{i}"))
    c = login(srv, acc, select=b"INBOX")
    assert c.cmd(b"s SEARCH ALL")[0] == b"* SEARCH 1 2 3\r\n"
    assert c.cmd(b"s SEARCH NEW")[0] == b"* SEARCH 1 2 3\r\n"
    assert c.cmd(b"s SEARCH OLD")[0] == b"* SEARCH\r\n"
    c.close()


def test_search_esearch_rev2(srv):
    acc = srv.new_user()
    uids = [srv.deliver(acc, msg(f"m{i}")) for i in range(3)]
    srv.deliver(acc, msg("Grüße"), flags=frozenset({"\\Flagged"}))
    c = login(srv, acc, rev2=True, select=b"INBOX")
    assert c.cmd(b"s1 SEARCH ALL") == [b'* ESEARCH (TAG "s1") ALL 1:4\r\n', b"s1 OK Search completed\r\n"]
    assert c.cmd(b"s2 SEARCH DELETED")[0] == b'* ESEARCH (TAG "s2")\r\n'  # nothing found: still ESEARCH
    assert c.cmd(b"s3 UID SEARCH 2:3")[0] == b'* ESEARCH (TAG "s3") UID ALL %d:%d\r\n' % (uids[1], uids[2])
    assert c.cmd(b"s4 SEARCH RETURN (COUNT MIN) ALL")[0] == b'* ESEARCH (TAG "s4") MIN 1 COUNT 4\r\n'
    # CHARSET stays valid (UTF-8 is assumed without it), unlike under UTF8=ACCEPT alone.
    assert c.cmd('s5 SEARCH CHARSET UTF-8 SUBJECT "Grüße"'.encode())[0] == b'* ESEARCH (TAG "s5") ALL 4\r\n'
    assert c.cmd('s6 SEARCH SUBJECT "grüße"'.encode())[0] == b'* ESEARCH (TAG "s6") ALL 4\r\n'
    assert c.cmd(b"s7 SEARCH CHARSET KOI8-R ALL")[-1].startswith(b"s7 NO [BADCHARSET")
    # §9: RECENT, NEW and OLD are gone from the grammar.
    for key in (b"RECENT", b"NEW", b"OLD", b"NOT (OR RECENT FLAGGED)", b"KEYWORD \\Recent"):
        assert c.cmd(b"s8 SEARCH " + key)[-1].startswith(b"s8 BAD"), key
    # With a MODSEQ key the ESEARCH ends with MODSEQ (RFC 7162 §3.1.5 through RFC 4731 §3.2).
    out = c.cmd(b"s1 SEARCH MODSEQ 1")
    assert re.fullmatch(rb'\* ESEARCH \(TAG "s1"\) ALL 1:4 MODSEQ \d+\r\n', out[-2]), out
    # SAVE works as before; "$" then names the saved messages.
    assert c.cmd(b"s9 SEARCH RETURN (SAVE) FLAGGED") == [b"s9 OK Search completed\r\n"]
    assert c.cmd(b"s0 SEARCH $")[0] == b'* ESEARCH (TAG "s0") ALL 4\r\n'
    c.close()


# -- UTF-8 mailbox names, NFC and OLDNAME (§5.1, §6.3.9.7; Appendix E item 16) -----------
def test_utf8_names(srv):
    acc = srv.new_user()
    c = login(srv, acc)
    assert c.cmd(b'a CREATE "Entw&APw-rfe"')[-1].startswith(b"a OK")
    assert b'"Entw&APw-rfe"' in joined(c.cmd(b'l LIST "" "Entw*"'))  # rev1: modified UTF-7
    c.cmd(b"e ENABLE IMAP4rev2")
    out = joined(c.cmd(b'l LIST "" "Entw*"'))
    assert '"Entwürfe"'.encode() in out and b"&" not in out
    assert c.cmd('s SELECT "Entwürfe"'.encode())[-1].startswith(b"s OK")
    assert c.cmd(b'a CREATE "R&D"')[-1].startswith(b"a OK")  # "&" is just a character now
    assert c.cmd(b'a CREATE "bad\xff"')[-1].startswith(b"a NO [CANNOT]")
    c.close()


def test_denormalized_names_become_nfc(srv):
    acc = srv.new_user()
    c = login(srv, acc, rev2=True)
    out = c.cmd(f'a CREATE "{NFD}"'.encode())
    assert out[0] == f'* LIST (\\HasNoChildren) "/" "{NFC}" ("OLDNAME" ("{NFD}"))\r\n'.encode()
    assert out[-1].startswith(b"a OK")
    assert c.cmd(f'a CREATE "{NFC}"'.encode())[-1].startswith(b"a NO [ALREADYEXISTS]")
    out = c.cmd(f'x SELECT "{NFD}"'.encode())  # the same mailbox, whichever form
    assert f'* LIST (\\HasNoChildren) "/" "{NFC}" ("OLDNAME" ("{NFD}"))\r\n'.encode() in out
    assert out[-1].startswith(b"x OK")
    out = c.cmd(f'x SELECT "{NFC}"'.encode())
    assert f'* LIST (\\HasNoChildren) "/" "{NFC}"\r\n'.encode() in out
    listed = joined(c.cmd(b'l LIST "" "*"'))
    assert NFC.encode() in listed and NFD.encode() not in listed
    assert c.cmd(b"u UNSELECT")[-1].startswith(b"u OK")
    out = c.cmd(f'd DELETE "{NFD}"'.encode())
    assert out[0] == f'* LIST (\\NonExistent) "/" "{NFC}" ("OLDNAME" ("{NFD}"))\r\n'.encode()
    assert out[-1].startswith(b"d OK")
    c.close()


def test_rename_oldname(srv):
    acc = srv.new_user()
    c = login(srv, acc)
    c.cmd(b"a CREATE Old/Kid")
    assert c.cmd(b"r RENAME Old Older") == [b"r OK Rename completed\r\n"]  # rev1: as before
    c.cmd(b"e ENABLE IMAP4rev2")
    out = c.cmd(b"r RENAME Older Newer")
    assert out == [b'* LIST (\\HasChildren) "/" "Newer" ("OLDNAME" ("Older"))\r\n', b"r OK Rename completed\r\n"]
    out = c.cmd(f'r RENAME Newer "{NFD}"'.encode())
    assert out[0] == f'* LIST (\\HasChildren) "/" "{NFC}" ("OLDNAME" ("Newer"))\r\n'.encode()
    out = c.cmd(f'r RENAME "{NFD}" Last'.encode())
    assert out[0] == f'* LIST (\\HasChildren) "/" "Last" ("OLDNAME" ("{NFD}"))\r\n'.encode()
    # RENAME INBOX leaves INBOX in place (§6.3.6): no OLDNAME for it.
    assert c.cmd(b"r RENAME INBOX Saved") == [b"r OK Rename completed\r\n"]
    c.close()


# -- keywords (§2.3.2; Appendix E item 15) ----------------------------------------------
def test_predefined_keywords(srv):
    acc = srv.new_user()
    srv.deliver(acc, msg("phish"))
    c = login(srv, acc, rev2=True, select=b"INBOX")
    out = c.cmd(b"t STORE 1 +FLAGS ($Phishing $Junk)")
    assert out[0] == b"* 1 FETCH (UID 1 FLAGS ($Junk $Phishing))\r\n"  # rev2: UID in STORE's FETCH
    assert c.cmd(b"t SEARCH KEYWORD $Phishing")[0] == b'* ESEARCH (TAG "t") ALL 1\r\n'
    # A new keyword: the untagged FLAGS still lists the predefined ones.
    out = c.cmd(b"t STORE 1 +FLAGS (Custom)")
    assert out[0] == b"* FLAGS (" + KEYWORDS + b" Custom \\Answered \\Deleted \\Draft \\Flagged \\Seen)\r\n"
    assert c.cmd(b"c COPY 1 INBOX")[-1].startswith(b"c OK [COPYUID")
    out = joined(c.cmd(b"f FETCH 2 FLAGS"))
    assert b"$Phishing" in out and b"$Junk" in out and b"Custom" in out  # preserved by COPY
    c.close()


# -- unsolicited FETCH carries UID (§7.5.2; Appendix E item 21) ---------------------------
def test_fetch_responses_carry_uid(srv):
    acc = srv.new_user()
    srv.deliver(acc, msg("one"))
    r1 = login(srv, acc, select=b"INBOX")
    assert r1.cmd(b"t STORE 1 +FLAGS (\\Flagged)")[0] == b"* 1 FETCH (FLAGS (\\Flagged \\Recent))\r\n"
    c = login(srv, acc, rev2=True, select=b"INBOX")
    assert c.cmd(b"t STORE 1 -FLAGS (\\Flagged)")[0] == b"* 1 FETCH (UID 1 FLAGS ())\r\n"
    assert c.cmd(b"t STORE 1 +FLAGS.SILENT (\\Answered)") == [b"t OK Store completed\r\n"]
    out = c.cmd(b"f FETCH 1 BODY[TEXT]")  # \Seen set as a side effect: FLAGS and UID follow
    assert re.search(rb"FLAGS \(\\Answered \\Seen\) UID 1\)", joined(out))
    assert r1.cmd(b"f FETCH 1 BODY[TEXT]")[-1].startswith(b"f OK")  # rev1: unchanged form
    r1.cmd(b"t STORE 1 +FLAGS (\\Draft)")
    assert b"* 1 FETCH (UID 1 FLAGS (\\Answered \\Draft \\Seen))\r\n" in c.cmd(b"n NOOP")
    c.close()
    r1.close()


# -- BINARY (§7.5.2) ------------------------------------------------------------------
TEXT_LF = b"line one\nline two\nende\n"
B64_TEXT = (b"From: a@x.test\r\nTo: b@y.test\r\nSubject: b64\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: multipart/mixed; boundary=\"B\"\r\n\r\n"
            b"--B\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n"
            + base64.b64encode(TEXT_LF) + b"\r\n"
            b"--B\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
            + base64.b64encode(b"a\nb\x00") + b"\r\n--B--\r\n")


def test_binary_text_crlf(srv):
    acc = srv.new_user()
    srv.deliver(acc, B64_TEXT)
    c = login(srv, acc, select=b"INBOX")
    out = joined(c.cmd(b"f FETCH 1 (BINARY.PEEK[1] BINARY.SIZE[1])"))
    assert b"{%d}\r\n" % len(TEXT_LF) + TEXT_LF in out  # rev1: as decoded (unchanged)
    c.cmd(b"e ENABLE IMAP4rev2")
    crlf = TEXT_LF.replace(b"\n", b"\r\n")
    out = joined(c.cmd(b"f FETCH 1 (BINARY.PEEK[1] BINARY.SIZE[1])"))
    assert b"BINARY[1] {%d}\r\n" % len(crlf) + crlf in out
    assert b"BINARY.SIZE[1] %d" % len(crlf) in out  # the size of what BINARY sends
    out = joined(c.cmd(b"f FETCH 1 BINARY.PEEK[1]<0.10>"))
    assert b"{10}\r\n" + crlf[:10] in out
    out = joined(c.cmd(b"f FETCH 1 BINARY.PEEK[2]"))  # not text: bytes as they are, NUL → literal8
    assert b"~{4}\r\na\nb\x00" in out
    c.close()


# -- deprecated commands stay (Appendix E items 17-19) -----------------------------------
def test_lsub_check_rfc822_still_work(srv):
    acc = srv.new_user()
    srv.deliver(acc, msg("one"))
    c = login(srv, acc, rev2=True)
    c.cmd(b"a SUBSCRIBE INBOX")
    assert c.cmd(b'l LSUB "" "*"')[0] == b'* LSUB () "/" "INBOX"\r\n'
    c.cmd(b"s SELECT INBOX")
    assert c.cmd(b"k CHECK")[-1].startswith(b"k OK")
    assert c.cmd(b"f FETCH 1 RFC822.SIZE")[0] == b"* 1 FETCH (RFC822.SIZE %d)\r\n" % len(msg("one"))
    c.close()


def test_unauthenticate_forgets_rev2(srv):
    acc = srv.new_user()
    c = login(srv, acc, rev2=True)
    c.cmd(b'a CREATE "Entw&APw-rfe"')
    assert c.cmd(b"u UNAUTHENTICATE")[-1].startswith(b"u OK")
    assert c.cmd(b"l LOGIN %s %s" % (acc.address.encode(), PASSWORD.encode()))[-1].startswith(b"l OK")
    # Back to rev1: the name created in UTF-8 ("&" literal) is sent in modified UTF-7.
    assert b'"Entw&-APw-rfe"' in joined(c.cmd(b'l LIST "" "Entw*"'))
    out = c.cmd(b"s SELECT INBOX")
    assert b"* 0 RECENT\r\n" in out
    c.close()
