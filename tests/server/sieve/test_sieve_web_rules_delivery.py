"""Scripts written by the web rules editor (postroom.web.rules) at real delivery: the
script stored through the Store API as the account's active one, mail sent with smtplib
to the real server, results read from the store and from the SMTP sink standing for
remote.test (sieve_server_harness.py)."""

from __future__ import annotations

import email
import smtplib

from sieve_server_harness import DOMAIN, REMOTE, wait_for

from postroom.web.rules import (
    Condition,
    Forwarding,
    Rule,
    RuleAction,
    RuleSet,
    VacationSettings,
    generate,
    parse,
)


def send(srv, user: str, subject: str, sender: str = f"pal@{REMOTE}", extra: str = "") -> None:  # type: ignore[no-untyped-def]
    msg = (f"From: Pal <{sender}>\r\nTo: {user}@{DOMAIN}\r\nSubject: {subject}\r\n"
           f"Message-ID: <{subject.replace(' ', '-')}.{sender}>\r\n{extra}\r\nbody of {subject}\r\n")
    with smtplib.SMTP("127.0.0.1", srv.ports["smtp"], timeout=10) as s:
        s.ehlo(f"client.{REMOTE}")
        s.sendmail(sender, [f"{user}@{DOMAIN}"], msg.encode())


def sent(sink, to: str, subject_part: str) -> list[email.message.Message]:  # type: ignore[no-untyped-def]
    msgs = [email.message_from_bytes(raw) for raw in sink.messages]
    return [m for m in msgs if to in str(m.get("To", "")) and subject_part in str(m.get("Subject", ""))]


def install(srv, user: str, rs: RuleSet) -> None:  # type: ignore[no-untyped-def]
    text = generate(rs)
    srv.put_script(user, text)
    # Read back as the pages will: the active script is still recognised as the editor's.
    assert srv.call(srv.ctx.store.get_active_sieve_script(srv.ids[user])) == ("main", text)
    assert parse(text) == rs


def with_subject(srv, user: str, mailbox: str, subject: str):  # type: ignore[no-untyped-def]
    return [(raw, flags) for raw, flags in srv.messages(user, mailbox) if f"Subject: {subject}".encode() in raw]


def test_invoice_rule_files_and_flags_and_other_mail_stays_in_inbox(net):
    srv, _ = net
    install(srv, "joe", RuleSet(rules=(Rule("Invoices", (Condition("subject", "contains", "invoice"),),
                                            (RuleAction("fileinto", folder="Finance/Invoices"),
                                             RuleAction("flag", flag="\\Flagged"), RuleAction("read"))),)))
    send(srv, "joe", "March Invoice 12")
    send(srv, "joe", "lunch")
    [(_, flags)] = wait_for(lambda: with_subject(srv, "joe", "Finance/Invoices", "March Invoice 12"),
                            what="filed invoice")
    assert flags == {"\\Flagged", "\\Seen"}
    wait_for(lambda: with_subject(srv, "joe", "INBOX", "lunch"), what="kept mail")
    assert not with_subject(srv, "joe", "INBOX", "March Invoice 12")


def test_vacation_answers_once_per_sender(net):
    srv, sink = net
    install(srv, "ann", RuleSet(vacation=VacationSettings(True, subject="Away until Monday",
                                                          text="I am away.\nBack on Monday.", days=1)))
    for n in range(3):
        send(srv, "ann", f"question {n}", sender=f"boss@{REMOTE}")
    send(srv, "ann", "other question", sender=f"peer@{REMOTE}")
    [reply] = wait_for(lambda: sent(sink, f"boss@{REMOTE}", "Away until Monday"), what="vacation reply")
    assert reply["Auto-Submitted"].startswith("auto-replied")
    assert "Back on Monday." in reply.get_payload(decode=True).decode()
    wait_for(lambda: sent(sink, f"peer@{REMOTE}", "Away until Monday"), what="reply to the second sender")
    wait_for(lambda: len(with_subject(srv, "ann", "INBOX", "question")) == 3, what="all three kept")
    assert len(sent(sink, f"boss@{REMOTE}", "Away until Monday")) == 1


def test_forwarding_with_and_without_a_copy(net):
    srv, sink = net
    install(srv, "bob", RuleSet(forwarding=Forwarding(True, f"bob.away@{REMOTE}", keep_copy=True)))
    send(srv, "bob", "fwd kept")
    wait_for(lambda: sent(sink, f"bob@{DOMAIN}", "fwd kept"), what="forwarded copy")
    wait_for(lambda: with_subject(srv, "bob", "INBOX", "fwd kept"), what="local copy")
    # Without a copy: forwarded, nothing stored, the rules not run.
    install(srv, "carl", RuleSet(rules=(Rule("", (), (RuleAction("fileinto", folder="Never"),)),),
                                 forwarding=Forwarding(True, f"carl.away@{REMOTE}", keep_copy=False)))
    send(srv, "carl", "fwd gone")
    wait_for(lambda: sent(sink, f"carl@{DOMAIN}", "fwd gone"), what="forwarded message")
    assert srv.messages("carl") == [] and srv.messages("carl", "Never") == []


def test_discard_and_stop_before_vacation(net):
    srv, sink = net
    install(srv, "dora", RuleSet(
        rules=(Rule("junk", (Condition("header", "contains", "yes", header="X-Junk"),),
                    (RuleAction("discard"), RuleAction("stop"))),),
        vacation=VacationSettings(True, subject="Dora is away", text="away")))
    send(srv, "dora", "buy now", sender=f"spammer@{REMOTE}", extra="X-Junk: YES\r\n")
    send(srv, "dora", "real mail", sender=f"friend@{REMOTE}")
    wait_for(lambda: sent(sink, f"friend@{REMOTE}", "Dora is away"), what="reply to real mail")
    wait_for(lambda: with_subject(srv, "dora", "INBOX", "real mail"), what="real mail kept")
    assert not with_subject(srv, "dora", "INBOX", "buy now")
    assert not sent(sink, f"spammer@{REMOTE}", "Dora is away")
