"""Sieve scripts at SMTP delivery, end to end: a script stored through the Store API,
mail sent with smtplib to the real server, the result read over IMAP (imaplib), from the
store, or from the SMTP sink that stands for remote.test."""

from __future__ import annotations

import email
import imaplib
import logging
import smtplib
import ssl
import time

import pytest
from sieve_server_harness import DOMAIN, PASSWORD, REMOTE, wait_for

from postroom.sieve.delivery import REDIRECTED_BY


def send(srv, to: list[str], subject: str, sender: str = f"pal@{REMOTE}", extra: str = "") -> None:  # type: ignore[no-untyped-def]
    msg = (f"From: Pal <{sender}>\r\nTo: {', '.join(to)}\r\nSubject: {subject}\r\n"
           f"Message-ID: <{subject.replace(' ', '-')}@{REMOTE}>\r\n{extra}\r\nbody of {subject}\r\n")
    with smtplib.SMTP("127.0.0.1", srv.ports["smtp"], timeout=10) as s:
        s.ehlo("client.remote.test")
        s.sendmail(sender, to, msg.encode())


def sent(sink, to: str, subject_part: str) -> list[email.message.Message]:  # type: ignore[no-untyped-def]
    msgs = [email.message_from_bytes(raw) for raw in sink.messages]
    return [m for m in msgs if to in str(m.get("To", "")) and subject_part in str(m.get("Subject", ""))]


def imap_mailbox(srv, user: str, mailbox: str) -> list[tuple[str, bytes]]:  # type: ignore[no-untyped-def]
    """(FLAGS, header) of every message in ``mailbox``, read over IMAP after STARTTLS."""
    tls = ssl.create_default_context()
    tls.check_hostname = False
    tls.verify_mode = ssl.CERT_NONE
    imap = imaplib.IMAP4("127.0.0.1", srv.ports["imap"], timeout=10)
    try:
        imap.starttls(tls)
        imap.login(f"{user}@{DOMAIN}", PASSWORD)
        typ, _ = imap.select(f'"{mailbox}"', readonly=True)
        assert typ == "OK"
        typ, data = imap.fetch("1:*", "(FLAGS BODY.PEEK[HEADER])")
        assert typ == "OK"
        out = []
        for item in data:
            if isinstance(item, tuple):
                out.append((item[0].decode(), item[1]))
        return out
    finally:
        imap.logout()


def test_a_stored_script_files_smtp_mail_into_a_folder_with_flags(net):
    srv, _ = net
    srv.call(srv.ctx.store.create_mailbox(srv.ids["joe"], "Work"))
    srv.put_script("joe", 'require ["fileinto", "imap4flags"];\n'
                          'if header :contains "subject" "report" { fileinto :flags ["\\\\Flagged", "$Report"] "Work"; }\n')
    send(srv, [f"joe@{DOMAIN}"], "weekly report")
    send(srv, [f"joe@{DOMAIN}"], "lunch")
    [(meta, head)] = imap_mailbox(srv, "joe", "Work")
    assert b"Subject: weekly report" in head
    assert "\\Flagged" in meta and "$Report" in meta
    inbox = imap_mailbox(srv, "joe", "INBOX")
    assert [h for _, h in inbox if b"Subject: lunch" in h] and not [h for _, h in inbox if b"report" in h]


def test_vacation_answers_once_per_sender_per_period(net):
    srv, sink = net
    srv.put_script("ann", 'require ["vacation", "vacation-seconds"];\n'
                          'vacation :seconds 1 :subject "Out of office" "Back on Monday.";\n')
    send(srv, [f"ann@{DOMAIN}"], "question one", sender=f"asker@{REMOTE}")
    [reply] = wait_for(lambda: sent(sink, f"asker@{REMOTE}", "Out of office"), what="vacation reply")
    assert reply["Auto-Submitted"].startswith("auto-replied")
    assert reply["In-Reply-To"] == f"<question-one@{REMOTE}>"
    send(srv, [f"ann@{DOMAIN}"], "question two", sender=f"asker@{REMOTE}")
    time.sleep(0.6)
    assert len(sent(sink, f"asker@{REMOTE}", "Out of office")) == 1  # within the period: no reply
    time.sleep(0.8)
    send(srv, [f"ann@{DOMAIN}"], "question three", sender=f"asker@{REMOTE}")
    wait_for(lambda: len(sent(sink, f"asker@{REMOTE}", "Out of office")) == 2, what="reply after the period")
    assert len(srv.mailbox("ann")) == 3  # every message kept


def test_redirect_leaves_through_the_outbound_queue_to_the_other_host(net):
    srv, sink = net
    srv.put_script("bob", f'redirect "elsewhere@{REMOTE}";\n')
    send(srv, [f"bob@{DOMAIN}"], "forward me")
    [m] = wait_for(lambda: sent(sink, f"bob@{DOMAIN}", "forward me"), what="redirected message")
    assert m[REDIRECTED_BY] == f"<bob@{DOMAIN}>"
    assert m["Received"] is not None  # our trace field travels on
    assert srv.mailbox("bob") == []


def test_reject_with_one_recipient_is_answered_at_smtp_time(net):
    srv, _ = net
    srv.put_script("carl", 'require "reject";\nif header :contains "subject" "offer" { reject "No offers, thanks."; }\n')
    with pytest.raises(smtplib.SMTPDataError) as exc:
        send(srv, [f"carl@{DOMAIN}"], "special offer")
    assert exc.value.smtp_code == 550
    assert b"5.7.1 No offers, thanks." in exc.value.smtp_error
    assert srv.mailbox("carl") == []


def test_reject_with_several_recipients_accepts_for_the_others_and_notifies(net):
    srv, sink = net
    srv.put_script("dora", 'require "reject";\nreject "Not for me.";\n')
    send(srv, [f"dora@{DOMAIN}", f"eve@{DOMAIN}"], "group mail", sender=f"sender@{REMOTE}")
    assert [m for m in srv.mailbox("eve") if b"Subject: group mail" in m]
    assert srv.mailbox("dora") == []
    [notice] = wait_for(lambda: sent(sink, f"sender@{REMOTE}", "Rejected"), what="rejection notice")
    assert notice.get_content_type() == "multipart/report"
    assert b"Not for me." in notice.as_bytes()


def test_a_broken_script_keeps_mail_in_inbox_with_one_log_line(net, caplog):
    srv, _ = net
    # The store takes any text (ManageSieve checks scripts before storing them); a script
    # broken some other way (an older engine, a direct write) must not lose mail.
    srv.put_script("fred", 'require "fileinto";\nfileinto "Work"\nthis is not sieve\n')
    with caplog.at_level(logging.WARNING, logger="postroom.sieve"):
        send(srv, [f"fred@{DOMAIN}"], "still here")
    assert [m for m in srv.mailbox("fred") if b"Subject: still here" in m]
    lines = [r.getMessage() for r in caplog.records if "fred@" in r.getMessage()]
    assert len(lines) == 1
    assert "script=main" in lines[0] and "implicit keep" in lines[0] and "line " in lines[0]


def test_a_script_hitting_a_limit_keeps_mail_in_inbox(net):
    srv, _ = net
    many = "".join(f'redirect "r{i}@{REMOTE}";\n' for i in range(10))
    srv.put_script("gina", many)
    send(srv, [f"gina@{DOMAIN}"], "limit hit")
    assert [m for m in srv.mailbox("gina") if b"Subject: limit hit" in m]


def test_before_stop_ends_the_sequence_and_after_runs_only_while_keep_holds(net):
    srv, _ = net
    srv.before.write_text('require "fileinto";\n'
                          'if header :contains "subject" "beforetest" { fileinto "Archive"; stop; }\n')
    srv.after.write_text('require "fileinto";\n'
                         'if header :contains "subject" "aftertest" { fileinto "Junk"; }\n')
    try:
        srv.call(srv.ctx.store.create_mailbox(srv.ids["hank"], "Work"))
        srv.put_script("hank", 'require "fileinto";\nif header :contains "subject" "work" { fileinto "Work"; }\n')
        send(srv, [f"hank@{DOMAIN}"], "beforetest work")  # before files and stops: hank's script never runs
        send(srv, [f"hank@{DOMAIN}"], "aftertest plain")  # keep still in effect: the after script files it
        send(srv, [f"hank@{DOMAIN}"], "aftertest work")  # hank's fileinto cancelled keep: no after script
        send(srv, [f"ivy@{DOMAIN}"], "aftertest nobody")  # no personal script: before and after still run
        assert [b"beforetest work" in m for m in srv.mailbox("hank", "Archive")] == [True]
        assert [b"aftertest plain" in m for m in srv.mailbox("hank", "Junk")] == [True]
        assert [b"aftertest work" in m for m in srv.mailbox("hank", "Work")] == [True]
        assert srv.mailbox("hank") == []
        assert [b"aftertest nobody" in m for m in srv.mailbox("ivy", "Junk")] == [True]
    finally:
        srv.before.write_text("")
        srv.after.write_text("")


def test_alias_to_two_accounts_runs_each_accounts_script(net):
    srv, _ = net
    srv.put_script("olga", 'discard;\n')
    send(srv, [f"both@{DOMAIN}"], "to the pair")
    assert srv.mailbox("olga") == []
    assert [m for m in srv.mailbox("pia") if b"Subject: to the pair" in m]


def test_environment_items_at_smtp_delivery(net):
    srv, _ = net
    srv.put_script("jack", 'require ["environment", "fileinto"];\n'
                           'if allof (environment :is "location" "MDA", environment :is "phase" "during",\n'
                           '          environment :is "remote-ip" "127.0.0.1",\n'
                           '          environment :is "remote-host" "client.remote.test") { fileinto "Archive"; }\n')
    send(srv, [f"jack@{DOMAIN}"], "where am i")
    assert [m for m in srv.mailbox("jack", "Archive") if b"Subject: where am i" in m]


def test_a_changed_script_takes_effect_at_once(net):
    srv, _ = net
    srv.put_script("kim", 'require "fileinto";\nfileinto "Archive";\n')
    send(srv, [f"kim@{DOMAIN}"], "first version")
    srv.put_script("kim", 'require "fileinto";\nfileinto "Trash";\n')
    send(srv, [f"kim@{DOMAIN}"], "second version")
    srv.call(srv.ctx.store.set_active_sieve_script(srv.ids["kim"], None))
    send(srv, [f"kim@{DOMAIN}"], "no script")
    assert [b"first version" in m for m in srv.mailbox("kim", "Archive")] == [True]
    assert [b"second version" in m for m in srv.mailbox("kim", "Trash")] == [True]
    assert [b"no script" in m for m in srv.mailbox("kim")] == [True]


def test_sendmail_runs_the_script_and_queues_its_redirect(net):
    import io

    from postroom.smtp import sendmail

    srv, sink = net
    srv.put_script("lou", f'require "copy";\nredirect :copy "lou.mobile@{REMOTE}";\n')
    err = io.StringIO()
    code = sendmail.run(srv.cfg, ["-f", f"cron@{DOMAIN}", "lou"],
                        stdin=io.BytesIO(b"Subject: nightly job\n\ndone\n"), stderr=err)
    assert (code, err.getvalue()) == (0, "")
    assert [m for m in srv.mailbox("lou") if b"Subject: nightly job" in m]  # :copy keeps it
    [m] = wait_for(lambda: sent(sink, "", "nightly job"), what="redirect queued by sendmail")
    assert m[REDIRECTED_BY] == f"<lou@{DOMAIN}>"


def test_a_redirect_loop_between_two_accounts_ends_in_a_kept_copy(net):
    srv, _ = net
    srv.put_script("rex", f'redirect "sam@{DOMAIN}";\n')
    srv.put_script("sam", f'redirect "rex@{DOMAIN}";\n')
    send(srv, [f"rex@{DOMAIN}"], "ping pong")
    # rex → sam → rex, where rex's own mark stops it: one copy, kept by rex, both marks on it.
    [raw] = wait_for(lambda: srv.mailbox("rex"), what="the looping message kept")
    assert srv.mailbox("sam") == []
    assert f"{REDIRECTED_BY}: <rex@{DOMAIN}>".encode() in raw
    assert f"{REDIRECTED_BY}: <sam@{DOMAIN}>".encode() in raw
