"""The extensions of issue #14 through real client libraries (imapclient, imaplib), as clients
use them; the other test files are mostly raw transcripts. CONDSTORE and QRESYNC (RFC 7162),
SORT and THREAD (RFC 5256), ESORT (RFC 5267), WITHIN (RFC 5032), MULTIAPPEND (RFC 3502).
COMPRESS has no client in either library (test_imap_compress.py uses zlib on a raw socket)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from imap_harness import msg


def _fill(srv, acc, n: int = 4) -> None:
    for i in range(n):
        srv.deliver(acc, msg(f"m{i}", frm=f"S{i} <s{3 - i}@outside.test>"))


def test_condstore_with_imapclient(srv):
    acc = srv.new_user()
    _fill(srv, acc)
    c = srv.imapclient(acc)
    assert c.enable("CONDSTORE") == [b"CONDSTORE"]
    info = c.select_folder("INBOX")
    hms = info[b"HIGHESTMODSEQ"]
    assert c.folder_status("INBOX", ["HIGHESTMODSEQ"])[b"HIGHESTMODSEQ"] == hms
    modseqs = {n: d[b"MODSEQ"][0] for n, d in c.fetch(range(1, 5), ["MODSEQ"]).items()}
    assert sorted(modseqs) == [1, 2, 3, 4] and max(modseqs.values()) == hms
    c.add_flags([2], [b"\\Flagged"])
    changed = c.fetch(range(1, 5), ["FLAGS"], modifiers=[f"CHANGEDSINCE {hms}"])
    assert list(changed) == [2] and b"\\Flagged" in changed[2][b"FLAGS"] and changed[2][b"MODSEQ"][0] > hms
    assert c.search(["MODSEQ", hms + 1]) == [2]
    assert c.fetch(range(1, 5), ["FLAGS"], modifiers=["CHANGEDSINCE 99999999"]) == {}
    c.logout()


def test_unchangedsince_conflict_with_imaplib(srv):
    acc = srv.new_user()
    _fill(srv, acc, 2)
    c = srv.imaplib(acc)
    typ, data = c.enable("CONDSTORE")
    assert typ == "OK"
    c.select("INBOX")
    _, data = c.fetch("1:2", "(MODSEQ)")
    base = max(int(x.split(b"MODSEQ (")[1].split(b")")[0]) for x in data)  # the mailbox's HIGHESTMODSEQ
    assert c.store("1", "+FLAGS", "(\\Answered)")[0] == "OK"  # message 1 changes after base
    typ, data = c.store("1:2", f"(UNCHANGEDSINCE {base}) +FLAGS", "(\\Seen)")
    assert typ == "OK"
    assert c.untagged_responses.pop("MODIFIED") == [b"1"]  # RFC 7162 §3.1.3: left alone, named
    _, data = c.fetch("1:2", "(FLAGS)")
    assert b"\\Seen" not in data[0] and b"\\Seen" in data[1]
    c.logout()


def test_qresync_with_imaplib(srv):
    acc = srv.new_user()
    _fill(srv, acc)
    c = srv.imaplib(acc)
    assert c.enable("QRESYNC")[0] == "OK"
    c.select("INBOX")
    uidvalidity = int(c.untagged_responses["UIDVALIDITY"][0])
    hms = int(c.untagged_responses["HIGHESTMODSEQ"][0])
    c.logout()
    other = srv.imaplib(acc, select="INBOX")  # another session changes and expunges
    other.store("1", "+FLAGS", "(\\Flagged)")
    other.store("3", "+FLAGS", "(\\Deleted)")
    other.expunge()
    other.logout()
    c = srv.imaplib(acc)
    c.enable("QRESYNC")
    typ, _ = c._simple_command("SELECT", "INBOX", f"(QRESYNC ({uidvalidity} {hms} 1:4))")
    assert typ == "OK"
    assert c.untagged_responses.pop("VANISHED") == [b"(EARLIER) 3"]
    fetched = c.untagged_responses.pop("FETCH")
    assert len(fetched) == 1 and fetched[0].startswith(b"1 (UID 1 ") and b"\\Flagged" in fetched[0]
    c.logout()


def test_sort_thread_esort_with_clients(srv):
    acc = srv.new_user()
    for i, (subject, refs) in enumerate([("Plan", ""), ("Re: Plan", "<Plan@outside.test>"), ("Other", ""),
                                         ("Re: Re: Plan", "<Plan@outside.test> <Re:.Plan@outside.test>")]):
        srv.deliver(acc, msg(subject, frm=f"S{i} <s{3 - i}@outside.test>",
                             extra=f"References: {refs}\r\n" if refs else ""))
    c = srv.imapclient(acc, select="INBOX")
    assert c.sort(["FROM"]) == [4, 3, 2, 1]  # s3, s2, s1, s0 by the sender's local part
    assert c.sort(["REVERSE", "FROM"]) == [1, 2, 3, 4]
    assert c.sort(["SUBJECT", "ARRIVAL"], ["NOT", "SUBJECT", "Other"]) == [1, 2, 4]
    assert c.thread("REFERENCES") == ((1, 2, 4), (3,))
    assert c.thread("ORDEREDSUBJECT") == ((1, (2,), (4,)), (3,))  # RFC 5256 §3: siblings under the first
    c.logout()
    c = srv.imaplib(acc, select="INBOX")  # ESORT: imaplib keeps the * ESEARCH line
    typ, _ = c._simple_command("SORT", "RETURN (MIN MAX COUNT)", "(FROM)", "UTF-8", "ALL")
    assert typ == "OK"
    (line,) = c.untagged_responses.pop("ESEARCH")
    assert line.endswith(b"MIN 4 MAX 1 COUNT 4")
    c.logout()


def test_within_and_multiappend_with_imapclient(srv):
    acc = srv.new_user()
    c = srv.imapclient(acc)
    now = datetime.now(UTC)
    c.append("INBOX", msg("old"), msg_time=now - timedelta(days=10))
    result = c.multiappend("INBOX", [msg("new1"), {"msg": msg("new2"), "flags": [b"\\Seen"]}])
    assert result[0] == "OK" and b"[APPENDUID " in result[1][0]  # one command (RFC 3502, RFC 4315)
    assert result[1][0].split()[2] == b"2:3]"  # consecutive UIDs
    c.select_folder("INBOX")
    assert c.search(["YOUNGER", 3600]) == [2, 3]
    assert c.search(["OLDER", 3600]) == [1]
    assert c.search(["SEEN", "YOUNGER", 3600]) == [3]
    c.logout()
