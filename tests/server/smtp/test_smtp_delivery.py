"""MAIL/RCPT/DATA/BDAT into the store: several local users, aliases, subaddresses, trace
headers, SIZE, 8BITMIME, SMTPUTF8, DSN parameters handed to the outbound queue."""

import re
import smtplib

import pytest

from conftest import DOMAIN, PASSWORD, Raw, client_tls

MSG = (b"From: Someone <someone@remote.example>\r\nTo: joe@example.test\r\nSubject: hello\r\n"
       b"Date: Mon, 23 Nov 2026 10:00:00 +0000\r\nMessage-ID: <m1@remote.example>\r\n\r\n"
       b"Hello.\r\n.leading dot\r\n")


def count(srv, *users):
    return {u: len(srv.inbox(u)) for u in users}


def test_several_local_users_and_an_alias(smtp_server):
    before = count(smtp_server, "joe", "ann", "bob")
    with smtplib.SMTP("127.0.0.1", smtp_server.ports["smtp"]) as c:
        refused = c.sendmail("someone@remote.example", ["joe@example.test", "team@example.test",
                                                         "sales@example.test"], MSG)
        assert refused == {}
    after = count(smtp_server, "joe", "ann", "bob")
    # joe is named directly, through team and through sales→team: one copy each.
    assert after == {u: before[u] + 1 for u in before}
    stored = smtp_server.inbox("bob")[-1]
    assert stored.startswith(b"Return-Path: <someone@remote.example>\r\nReceived: from ")
    assert stored.endswith(MSG)  # smtplib stuffed the dot line, the server un-stuffed it
    assert b"\tfor <" not in stored  # several recipients: no "for" clause


def test_trace_headers(smtp_server):
    with smtplib.SMTP("127.0.0.1", smtp_server.ports["smtp"]) as c:
        c.ehlo("client.example")
        c.sendmail("someone@remote.example", ["carl@example.test"], MSG)
    stored = smtp_server.inbox("carl")[-1]
    head = stored.split(b"\r\n\r\n")[0].decode()
    m = re.match(r"Return-Path: <someone@remote.example>\r\n"
                 r"Received: from client.example \(\[127.0.0.1\]\)\r\n"
                 rf"\tby mx.{DOMAIN} \(Postroom\) with ESMTP id ([0-9A-F]+)\r\n"
                 r"\tfor <carl@example.test>; \w{3}, \d+ \w{3} \d{4} [\d:]{8} [+-]\d{4}\r\n", head)
    assert m, head


def test_subaddress_and_unknown_user(smtp_server):
    before = len(smtp_server.inbox("dora"))
    with smtplib.SMTP("127.0.0.1", smtp_server.ports["smtp"]) as c:
        c.ehlo()
        assert c.mail("someone@remote.example")[0] == 250
        assert c.rcpt("dora+lists@example.test")[0] == 250
        assert c.rcpt("nobody@example.test") == (550, b"5.1.1 No such user here")
        assert c.rcpt("loop1@example.test")[0] == 550  # an alias loop delivers nowhere
        assert c.data(MSG)[0] == 250
    assert len(smtp_server.inbox("dora")) == before + 1


def test_alias_forwarding_off_site_goes_to_queue(smtp_server):
    n = len(smtp_server.queue.items)
    with smtplib.SMTP("127.0.0.1", smtp_server.ports["smtp"]) as c:
        c.sendmail("someone@remote.example", ["outside@example.test"], MSG)
    env, raw = smtp_server.queue.items[n]
    assert env.sender == "someone@remote.example"
    assert [r.address for r in env.recipients] == ["friend@remote.example"]
    assert raw.startswith(b"Received: ") and raw.endswith(b"leading dot\r\n")


def test_size_extension(smtp_server):
    with smtplib.SMTP("127.0.0.1", smtp_server.ports["smtp"]) as c:
        c.ehlo()
        assert c.esmtp_features["size"] == "204800"
        code, text = c.mail("someone@remote.example", ["SIZE=300000"])
        assert (code, text) == (552, b"5.3.4 Message size exceeds fixed maximum message size")
        # Too big without SIZE: refused after the data, and the session stays usable.
        c.mail("someone@remote.example")
        c.rcpt("joe@example.test")
        big = b"Subject: big\r\n\r\n" + (b"x" * 998 + b"\r\n") * 300
        assert c.data(big)[0] == 552
        assert c.noop()[0] == 250


def test_8bitmime_and_smtputf8(smtp_server):
    body = "From: ü@remote.example\r\nSubject: grüße\r\n\r\nÄÖÜ\r\n".encode()
    before = len(smtp_server.inbox("ann"))
    with smtplib.SMTP("127.0.0.1", smtp_server.ports["smtp"]) as c:
        c.ehlo()
        assert c.has_extn("smtputf8") and c.has_extn("8bitmime")
        c.sendmail("üser@remote.example", ["ann@example.test"], body,
                   mail_options=["BODY=8BITMIME", "SMTPUTF8"])
        c.ehlo()
        code, _ = c.mail("üser@remote.example")
        assert code == 553  # non-ASCII address without SMTPUTF8
    stored = smtp_server.inbox("ann")
    assert len(stored) == before + 1 and stored[-1].endswith(body)
    assert b"with UTF8SMTP id" in stored[-1]


def test_dsn_parameters_reach_the_queue(smtp_server):
    n = len(smtp_server.queue.items)
    with smtplib.SMTP("127.0.0.1", smtp_server.ports["submission"]) as c:
        c.starttls(context=client_tls())
        c.login("joe@example.test", PASSWORD)
        c.sendmail("joe@example.test", ["x@remote.example", "y@remote.example"], MSG,
                   mail_options=["RET=HDRS", "ENVID=QQ+2B314"],
                   rcpt_options=["NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;x+40remote.example"])
    env, raw = smtp_server.queue.items[n]
    assert (env.sender, env.ret, env.envid) == ("joe@example.test", "HDRS", "QQ+314")
    assert env.recipients[0].notify == ("SUCCESS", "FAILURE")
    assert env.recipients[0].orcpt == "rfc822;x@remote.example"
    assert [r.address for r in env.recipients] == ["x@remote.example", "y@remote.example"]
    assert b"with ESMTPSA id" in raw and b"(using TLSv1." in raw


def test_bdat_chunking(smtp_server):
    before = len(smtp_server.inbox("joe"))
    raw = Raw(smtp_server.ports["smtp"])
    raw.start("EHLO x", "MAIL FROM:<a@remote.example>", "RCPT TO:<joe@example.test>")
    part1 = b"Subject: chunks\r\n\r\nline with\r\n.\r\n"  # a dot line is just content in BDAT
    part2 = b"end\r\n"
    assert raw.cmd(b"BDAT %d\r\n" % len(part1) + part1) == f"250 2.0.0 {len(part1)} octets received"
    assert raw.cmd(b"BDAT %d LAST\r\n" % len(part2) + part2).startswith("250 2.0.0 Ok: queued as ")
    assert raw.cmd("BDAT 0 LAST") == "503 5.5.1 Bad sequence of commands"
    assert raw.cmd("QUIT").startswith("221")
    assert smtp_server.inbox("joe")[-1].endswith(part1 + part2)
    assert len(smtp_server.inbox("joe")) == before + 1


def test_bdat_with_smtplib_style_pipelining(smtp_server):
    raw = Raw(smtp_server.ports["smtp"])
    raw.reply()
    raw.cmd("EHLO x")
    body = b"Subject: p\r\n\r\nhi\r\n"
    raw.send(b"MAIL FROM:<a@remote.example>\r\nRCPT TO:<bob@example.test>\r\nBDAT %d LAST\r\n" % len(body)
             + body + b"QUIT\r\n")
    assert [raw.reply()[:3] for _ in range(4)] == ["250", "250", "250", "221"]


def test_pipelining(smtp_server):
    before = count(smtp_server, "joe", "ann")
    raw = Raw(smtp_server.ports["smtp"])
    raw.reply()
    raw.cmd("EHLO x")
    raw.send(b"MAIL FROM:<a@remote.example>\r\nRCPT TO:<joe@example.test>\r\nRCPT TO:<nobody@example.test>\r\n"
             b"RCPT TO:<ann@example.test>\r\nDATA\r\n")
    assert [raw.reply()[:3] for _ in range(5)] == ["250", "250", "550", "250", "354"]
    raw.send(b"Subject: pipelined\r\n\r\nbody\r\n.\r\nMAIL FROM:<b@remote.example>\r\nRCPT TO:<joe@example.test>\r\n"
             b"DATA\r\n")
    assert [raw.reply()[:3] for _ in range(4)] == ["250", "250", "250", "354"]
    raw.send(b"second\r\n.\r\nQUIT\r\n")
    assert raw.reply()[:3] == "250" and raw.reply()[:3] == "221"
    assert count(smtp_server, "joe", "ann") == {"joe": before["joe"] + 2, "ann": before["ann"] + 1}


def test_postmaster_without_domain(smtp_server):
    smtp_server.call(smtp_server.ctx.store.set_alias(f"postmaster@{DOMAIN}", [f"carl@{DOMAIN}"]))
    before = len(smtp_server.inbox("carl"))
    with smtplib.SMTP("127.0.0.1", smtp_server.ports["smtp"]) as c:
        c.ehlo()
        c.mail("a@remote.example")
        assert c.rcpt("<Postmaster>")[0] == 250  # RFC 5321 §4.1.1.3
        assert c.data(MSG)[0] == 250
    assert len(smtp_server.inbox("carl")) == before + 1


@pytest.mark.parametrize("user", ["joe"])
def test_submission_message_is_byte_identical(smtp_server, user):
    body = (b"From: joe@example.test\r\nTo: ann@example.test\r\nSubject: exact\r\n"
            b"Date: Mon, 23 Nov 2026 10:00:00 +0000\r\nMessage-ID: <exact@example.test>\r\n\r\n"
            b"line 1\r\n\r\n  indented\t tab\r\n..two dots\r\n" + bytes(range(32, 127)) + b"\r\n")
    before = len(smtp_server.inbox("ann"))
    with smtplib.SMTP("127.0.0.1", smtp_server.ports["submission"]) as c:
        c.starttls(context=client_tls())
        c.login(f"{user}@example.test", PASSWORD)
        c.sendmail(f"{user}@example.test", ["ann@example.test"], body)
    stored = smtp_server.inbox("ann")
    assert len(stored) == before + 1
    msg = stored[-1]
    trace_end = msg.index(b"From: joe@example.test")
    trace = msg[:trace_end].decode()
    assert trace.startswith("Return-Path: <joe@example.test>\r\nReceived: from ")
    assert "with ESMTPSA id" in trace and "(using TLSv1." in trace
    assert msg[trace_end:] == body


def test_submission_adds_missing_date_and_message_id(smtp_server):
    body = b"From: joe@example.test\r\nSubject: bare\r\n\r\nno date here\r\n"
    with smtplib.SMTP_SSL("127.0.0.1", smtp_server.ports["submissions"], context=client_tls()) as c:
        c.login("joe@example.test", PASSWORD)
        c.sendmail("joe@example.test", ["dora@example.test"], body)
    msg = smtp_server.inbox("dora")[-1]
    assert msg.endswith(body)
    head = msg[: -len(body)]
    assert re.search(rb"\r\nDate: \w{3}, ", head) and re.search(rb"\r\nMessage-ID: <[^>]+@mx\.example\.test>\r\n", head)
    # MX mail is left alone.
    with smtplib.SMTP("127.0.0.1", smtp_server.ports["smtp"]) as c:
        c.sendmail("x@remote.example", ["dora@example.test"], body)
    assert b"Message-ID" not in smtp_server.inbox("dora")[-1]


@pytest.mark.sqlite_only("injects a failing write into the SQLite store's segment files")
def test_disk_full_defers_with_452_and_the_retry_is_delivered_whole(smtp_server, monkeypatch):
    """A full disk during delivery: 452 4.3.1 (the sender keeps the message and retries,
    as with Postfix), nothing half-stored; once there is room the retry is stored whole."""
    from diskfault import fail_next_segment_write

    before = len(smtp_server.inbox("carl"))
    fail_next_segment_write(monkeypatch)
    with smtplib.SMTP("127.0.0.1", smtp_server.ports["smtp"]) as c:
        with pytest.raises(smtplib.SMTPDataError) as exc:
            c.sendmail("someone@remote.example", ["carl@example.test"], MSG)
        assert exc.value.smtp_code == 452 and exc.value.smtp_error.startswith(b"4.3.1 ")
        assert c.sendmail("someone@remote.example", ["carl@example.test"], MSG) == {}
    after = smtp_server.inbox("carl")
    assert len(after) == before + 1 and after[-1].endswith(MSG)


@pytest.mark.sqlite_only("fakes the free space of the SQLite store's disk")
def test_mail_is_refused_with_452_when_the_disk_is_nearly_full(smtp_server, monkeypatch):
    """As Postfix: the store's disk must have 1.5 times the largest accepted message free
    (or 1.5 times a larger declared SIZE), else MAIL gets 452 4.3.1 before any data is sent."""
    from collections import namedtuple

    from postroom.storage.sqlite import store as sqlite_store

    limit = smtp_server.cfg.limits.message_size
    usage = namedtuple("usage", "total used free")
    free = [int(limit * 1.4)]
    monkeypatch.setattr(sqlite_store.shutil, "disk_usage", lambda path: usage(10 * limit, 0, free[0]))
    monkeypatch.setattr(sqlite_store, "FREE_SPACE_TTL", 0.0)  # each check sees the disk as it is now
    with smtplib.SMTP("127.0.0.1", smtp_server.ports["smtp"]) as c:
        c.ehlo()
        code, text = c.mail("someone@remote.example")
        assert (code, text[:6]) == (452, b"4.3.1 ")
        free[0] = int(limit * 1.6)
        assert c.mail("someone@remote.example")[0] == 250
        c.rset()


def test_stored_structure_counts_the_lines_of_what_was_stored(smtp_server):
    # SMTP hands the DATA reader's LF count to the store (Store.deliver newlines=): the stored
    # structure (BODYSTRUCTURE's line counts) must be the parse of the stored octets, also when
    # the client sent bare LFs and CRs that the reader turned into CRLF.
    from postroom.mime import parse

    # (A body longer than the header: the parse then takes its line count from the total.)
    long = MSG + b"more text on a line of its own\r\n" * 40
    bodies = [long, long.replace(b"Hello.\r\n", b"Hello.\nbare LF\nand bare CR\rend\r\n")]
    c = Raw(smtp_server.ports["smtp"])
    try:
        c.start("EHLO client.example")
        for body in bodies:
            assert c.cmd("MAIL FROM:<someone@remote.example>").startswith("250")
            assert c.cmd("RCPT TO:<dora@example.test>").startswith("250")
            assert c.cmd("DATA").startswith("354")
            assert c.cmd(body + b".\r\n").startswith("250")
    finally:
        c.close()

    async def structures():
        store = smtp_server.ctx.store
        acct = await store.get_account(f"dora@{DOMAIN}")
        mbox = await store.get_mailbox(acct.id, "INBOX")
        msgs = await store.list_messages(mbox.id)
        store._structures.clear()
        return [(await store.read_message(m), s) for m, s in zip(msgs, await store.read_structures(msgs))]

    got = smtp_server.call(structures())[-2:]
    assert [b"\r\nbare LF\r\nand bare CR\r\nend\r\n" in raw for raw, _ in got] == [False, True]
    for raw, structure in got:
        assert b"\n" not in raw.replace(b"\r\n", b"")
        assert structure == parse(raw)
        assert structure.root.lines == raw[raw.index(b"\r\n\r\n") + 4:].count(b"\r\n")
