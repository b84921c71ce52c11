"""Carrying out Sieve actions at delivery (postroom.sieve.delivery.carry_out), with
hand-made decisions, against the server's real store and real outbound queue: what
lands in which mailbox, what leaves for the SMTP sink standing for remote.test."""

from __future__ import annotations

import dataclasses
import email
import email.policy
import logging
import time

import pytest
from sieve_server_harness import DOMAIN, REMOTE, wait_for

from postroom.sieve.api import (
    AddHeader,
    Discard,
    FileInto,
    Keep,
    Notify,
    Redirect,
    Reject,
    Vacation,
)
from postroom.sieve.delivery import (
    REDIRECTED_BY,
    Decision,
    Incoming,
    LocalRecipient,
    carry_out,
)
from postroom.sieve.host import DeliveryHost, duplicate_key
from postroom.sieve.settings import settings_for


def message(subject: str, sender: str = f"someone@{REMOTE}", to: str = f"x@{DOMAIN}", extra: str = "") -> bytes:
    return (f"Return-Path: <{sender}>\r\nReceived: from client.{REMOTE} by mx.{DOMAIN}; Sun, 6 Dec 2026 10:00:00 +0000\r\n"
            f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: <{subject}@{REMOTE}>\r\n{extra}"
            f"\r\nbody of {subject}\r\n").encode()


def run(net, user: str, decision: Decision, raw: bytes, sender: str = f"someone@{REMOTE}", **kw):  # type: ignore[no-untyped-def]
    srv, _ = net
    msg = Incoming(raw=raw, sender=sender, recipients=[LocalRecipient(srv.ids[user], "INBOX", f"{user}@{DOMAIN}")],
                   queue_id="T1", session_id="test", **kw)
    return srv.call(carry_out(srv.ctx, msg, [(msg.recipients[0], decision)]))


def sent_to(sink, address: str, subject_part: str) -> list[email.message.Message]:  # type: ignore[no-untyped-def]
    out = []
    for raw in sink.messages:
        m = email.message_from_bytes(raw)
        if address in str(m.get("To", "")) and subject_part in str(m.get("Subject", "")):
            out.append(m)
    return out


def test_fileinto_with_flags_and_implicit_keep_in_one_delivery(net):
    srv, _ = net
    d = Decision(actions=[FileInto("INBOX", flags=("\\Flagged",)), FileInto("Archive", flags=("$Work",))],
                 implicit_keep=True, keep_flags=("\\Seen",))
    run(net, "joe", d, message("filed"))
    [(raw, flags)] = srv.messages("joe", "INBOX")
    assert b"Subject: filed" in raw
    assert flags == {"\\Flagged", "\\Seen"}  # keep and fileinto INBOX: one copy, all flags (RFC 5232)
    [(_, aflags)] = srv.messages("joe", "Archive")
    assert aflags == {"$Work"}


def test_missing_mailbox_falls_back_to_inbox_with_one_log_line(net, caplog):
    srv, _ = net
    with caplog.at_level(logging.INFO, logger="postroom.sieve"):
        run(net, "ann", Decision(actions=[FileInto("Nowhere")], implicit_keep=False), message("nowhere"))
    assert [m for m in srv.mailbox("ann") if b"Subject: nowhere" in m]
    assert srv.call(srv.ctx.store.get_mailbox(srv.ids["ann"], "Nowhere")) is None
    lines = [r.getMessage() for r in caplog.records if "Nowhere" in r.getMessage()]
    assert len(lines) == 1 and "no such mailbox" in lines[0] and "ann@example.test" in lines[0]


def test_fileinto_create_makes_the_mailbox_and_its_parents_subscribed(net):
    srv, _ = net
    run(net, "bob", Decision(actions=[FileInto("Lists/sieve", create=True)], implicit_keep=False),
        message("created"))
    assert [m for m in srv.mailbox("bob", "Lists/sieve") if b"Subject: created" in m]
    assert srv.mailbox("bob") == []
    subs = srv.call(srv.ctx.store.list_subscriptions(srv.ids["bob"]))
    assert "Lists" in subs and "Lists/sieve" in subs


def test_specialuse_picks_the_mailbox_with_that_use(net):
    srv, _ = net
    run(net, "carl", Decision(actions=[FileInto("Spam", special_use="\\Junk")], implicit_keep=False),
        message("junk"))
    assert [m for m in srv.mailbox("carl", "Junk") if b"Subject: junk" in m]
    assert srv.call(srv.ctx.store.get_mailbox(srv.ids["carl"], "Spam")) is None


def test_discard_stores_nothing(net):
    srv, _ = net
    out = run(net, "dora", Decision(actions=[Discard()], implicit_keep=False), message("gone"))
    assert srv.mailbox("dora") == []
    assert "discard" in out.summary


def test_editheader_stores_the_edited_message(net):
    srv, _ = net
    raw = message("edited")
    edited = raw.replace(b"Subject: edited", b"X-Tag: yes\r\nSubject: edited")
    run(net, "eve", Decision(actions=[AddHeader("X-Tag", "yes")], implicit_keep=True, edited=edited), raw)
    [stored] = srv.mailbox("eve")
    assert b"X-Tag: yes" in stored


def test_redirect_leaves_through_the_queue_marked_and_is_not_redirected_twice(net):
    srv, sink = net
    run(net, "fred", Decision(actions=[Redirect(f"fwd@{REMOTE}")], implicit_keep=False), message("redir"))
    [m] = wait_for(lambda: sent_to(sink, f"x@{DOMAIN}", "redir"), what="redirected copy")
    assert m[REDIRECTED_BY] == f"<fred@{DOMAIN}>"
    assert "Return-Path" not in m
    assert srv.mailbox("fred") == []
    assert f"MAIL FROM:<someone@{REMOTE}>" in " ".join(sink.lines)  # the original envelope sender
    # The copy comes back (a loop): fred's script would redirect it again; it is kept instead.
    again = message("redir2", extra=f"{REDIRECTED_BY}: <fred@{DOMAIN}>\r\n")
    run(net, "fred", Decision(actions=[Redirect(f"fwd@{REMOTE}")], implicit_keep=False), again)
    assert [m for m in srv.mailbox("fred") if b"Subject: redir2" in m]
    assert not sent_to(sink, f"x@{DOMAIN}", "redir2")


def test_redirects_beyond_the_configured_cap_are_not_done(net):
    srv, sink = net
    d = Decision(actions=[Redirect(f"a{i}@{REMOTE}") for i in range(3)], implicit_keep=False)
    run(net, "gina", d, message("capped"))
    wait_for(lambda: len(sent_to(sink, f"x@{DOMAIN}", "capped")) == 2, what="two redirects")
    assert [m for m in srv.mailbox("gina") if b"Subject: capped" in m]  # the refused one: implicit keep


def test_redirect_to_a_local_address_runs_that_accounts_delivery(net):
    srv, _ = net
    srv.put_script("ivy", 'require "fileinto"; fileinto "Archive";')
    run(net, "hank", Decision(actions=[Redirect(f"ivy@{DOMAIN}")], implicit_keep=False), message("local-redir"))
    [raw] = wait_for(lambda: srv.mailbox("ivy", "Archive"), what="local redirect")
    assert f"{REDIRECTED_BY}: <hank@{DOMAIN}>".encode() in raw
    assert srv.mailbox("hank") == []


def test_vacation_once_per_sender_and_handle_within_the_period(net):
    srv, sink = net
    v = Vacation(sender=f"boss@{REMOTE}", subject="", reason="I am away.", period_seconds=1)
    raw = message("holiday", sender=f"boss@{REMOTE}")
    run(net, "jack", Decision(actions=[v]), raw, sender=f"boss@{REMOTE}")
    [reply] = wait_for(lambda: sent_to(sink, f"boss@{REMOTE}", "Auto: holiday"), what="vacation reply")
    assert reply["Auto-Submitted"].startswith("auto-replied")
    assert reply["In-Reply-To"] == f"<holiday@{REMOTE}>"
    assert reply["From"] == f"jack@{DOMAIN}"
    assert "I am away." in reply.get_payload(decode=True).decode()
    assert any(line.startswith("MAIL FROM:<> ") for line in sink.lines)
    assert len(srv.mailbox("jack")) == 1  # the implicit keep
    # Within the period: no second reply; another handle: a reply of its own.
    run(net, "jack", Decision(actions=[v]), raw, sender=f"boss@{REMOTE}")
    run(net, "jack", Decision(actions=[Vacation(sender=f"boss@{REMOTE}", subject="Other", reason="x",
                                                period_seconds=1, handle="h2")]), raw, sender=f"boss@{REMOTE}")
    wait_for(lambda: sent_to(sink, f"boss@{REMOTE}", "Other"), what="second handle's reply")
    assert len(sent_to(sink, f"boss@{REMOTE}", "Auto: holiday")) == 1
    # After the period: a reply again.
    time.sleep(1.2)
    run(net, "jack", Decision(actions=[v]), raw, sender=f"boss@{REMOTE}")
    wait_for(lambda: len(sent_to(sink, f"boss@{REMOTE}", "Auto: holiday")) == 2, what="reply after the period")


def test_vacation_fcc_keeps_a_copy_of_the_reply(net):
    srv, _ = net
    v = Vacation(sender=f"pal@{REMOTE}", subject="Away", reason="later", period_seconds=1, fcc="Sent")
    run(net, "kim", Decision(actions=[v]), message("fcc", sender=f"pal@{REMOTE}"), sender=f"pal@{REMOTE}")
    [(copy, flags)] = srv.messages("kim", "Sent")
    assert b"Subject: Away" in copy and "\\Seen" in flags


def test_fcc_flags_and_create(net):
    """RFC 8580 §4: ``:fcc`` with ``:flags`` stores those flags, ``:create`` makes the
    mailbox; without ``:create`` a missing mailbox means the default one."""
    srv, _ = net
    v = Vacation(sender=f"pal2@{REMOTE}", subject="Gone", reason="later", period_seconds=1,
                 fcc="Replies/Auto", fcc_flags=("$AutoReply",), fcc_create=True)
    run(net, "kim", Decision(actions=[v]), message("fcc2", sender=f"pal2@{REMOTE}"), sender=f"pal2@{REMOTE}")
    [(copy, flags)] = srv.messages("kim", "Replies/Auto")
    assert b"Subject: Gone" in copy and "$AutoReply" in flags and "\\Seen" not in flags
    v2 = Vacation(sender=f"pal3@{REMOTE}", subject="Away3", reason="later", period_seconds=1, fcc="Nowhere")
    run(net, "kim", Decision(actions=[v2]), message("fcc3", sender=f"pal3@{REMOTE}"), sender=f"pal3@{REMOTE}")
    assert any(b"Subject: Away3" in raw for raw, _ in srv.messages("kim", "INBOX"))


def test_notify_mailto_sends_an_auto_notified_message(net):
    _, sink = net
    n = Notify(method=f"mailto:pager@{REMOTE}?subject=New%20mail", message="check it")
    run(net, "lou", Decision(actions=[n]), message("notifyme"))
    [m] = wait_for(lambda: sent_to(sink, f"pager@{REMOTE}", "New mail"), what="notification")
    assert m["Auto-Submitted"] == "auto-notified"
    assert m["From"] == f"lou@{DOMAIN}"
    # RFC 5436 §2.7: nothing for a message that is itself automatic.
    n2 = Notify(method=f"mailto:pager@{REMOTE}?subject=Auto%20one")
    run(net, "lou", Decision(actions=[n2]), message("auto", extra="Auto-Submitted: auto-generated\r\n"))
    time.sleep(0.5)
    assert not sent_to(sink, f"pager@{REMOTE}", "Auto one")



def test_vacation_and_notify_from_must_be_the_users_own_address(net):
    """RFC 5230 §4.4: ``:from`` cannot make the server send (DKIM-signed) mail in someone
    else's name; an address that is not the user's is replaced by the user's own, a
    display name on the user's own address is kept, header injection is flattened."""
    _, sink = net
    for n, given, expected in [
        (1, "Security Team <security@bank.test>", f"jack@{DOMAIN}"),
        (2, f"ceo@{DOMAIN}", f"jack@{DOMAIN}"),
        (3, f"jack@{DOMAIN}, victim@{REMOTE}", f"jack@{DOMAIN}"),
        (4, f"Jack Away <JACK@{DOMAIN}>", f"Jack Away <JACK@{DOMAIN}>"),
        (5, f"jack@{DOMAIN}\r\nBcc: victim@{REMOTE}", f"jack@{DOMAIN}"),
    ]:
        sender = f"spoof{n}@{REMOTE}"
        v = Vacation(sender=sender, subject=f"Spoof {n}", reason="away", period_seconds=1,
                     from_=given.replace("\\r\\n", "\r\n"))
        run(net, "jack", Decision(actions=[v]), message(f"spoof{n}", sender=sender), sender=sender)
        [reply] = wait_for(lambda s=sender, k=n: sent_to(sink, s, f"Spoof {k}"), what="vacation reply")
        assert reply["From"] == expected and reply["Bcc"] is None
    n = Notify(method=f"mailto:pager2@{REMOTE}?subject=Forged", from_=f"Boss <boss@{DOMAIN}>")
    run(net, "lou", Decision(actions=[n]), message("forged"))
    [m] = wait_for(lambda: sent_to(sink, f"pager2@{REMOTE}", "Forged"), what="notification")
    assert m["From"] == f"lou@{DOMAIN}"



@pytest.mark.parametrize("n,results,answered", [
    (1, "spf=pass smtp.mailfrom=remote.test;\r\n dmarc=fail header.from=bank.test", False),
    (2, "spf=fail smtp.mailfrom=remote.test", False),
    (3, "spf=fail smtp.mailfrom=remote.test;\r\n dkim=pass header.d=remote.test", True),  # forwarded
    (4, "spf=pass smtp.mailfrom=remote.test;\r\n dmarc=pass header.from=remote.test", True),
])
def test_no_vacation_or_notify_for_mail_that_failed_authentication(net, n, results, answered):
    """RFC 5230 §4.6: no backscatter. Our own Authentication-Results field (authserv-id =
    the hostname) saying DMARC fail, or SPF fail without a DKIM pass, means no reply."""
    srv, sink = net
    sender = f"forged{n}@{REMOTE}"
    ar = f"Authentication-Results: mx.{DOMAIN};\r\n {results}\r\n"
    raw = message(f"forged{n}", sender=sender).replace(b"From: ", ar.encode() + b"From: ", 1)
    v = Vacation(sender=sender, subject=f"Away {n}", reason="away", period_seconds=1)
    note = Notify(method=f"mailto:pager-f{n}@{REMOTE}?subject=Note%20{n}")
    run(net, "uma", Decision(actions=[v, note]), raw, sender=sender)
    if answered:
        wait_for(lambda: sent_to(sink, sender, f"Away {n}"), what="vacation reply")
        wait_for(lambda: sent_to(sink, f"pager-f{n}@{REMOTE}", f"Note {n}"), what="notification")
    else:
        time.sleep(0.5)
        assert not sent_to(sink, sender, f"Away {n}") and not sent_to(sink, f"pager-f{n}@{REMOTE}", f"Note {n}")
    assert any(b"Subject: forged%d" % n in m for m in srv.mailbox("uma"))  # delivered all the same


def test_no_vacation_for_quarantined_mail_nor_for_a_foreign_authserv_id(net):
    srv, sink = net
    sender = f"junk@{REMOTE}"
    v = Vacation(sender=sender, subject="Away junk", reason="away", period_seconds=1)
    msg = Incoming(raw=message("junk", sender=sender), sender=sender, queue_id="T2", session_id="test",
                   recipients=[LocalRecipient(srv.ids["vic"], "Junk", f"vic@{DOMAIN}")])
    srv.call(carry_out(srv.ctx, msg, [(msg.recipients[0], Decision(actions=[v]))]))
    # An Authentication-Results field of somebody else (not removed at reception) does not count.
    other = f"other@{REMOTE}"
    raw = message("foreign", sender=other).replace(
        b"From: ", b"Authentication-Results: mx.elsewhere.test; dmarc=fail\r\nFrom: ", 1)
    run(net, "vic", Decision(actions=[Vacation(sender=other, subject="Away foreign", reason="x",
                                               period_seconds=1)]), raw, sender=other)
    wait_for(lambda: sent_to(sink, other, "Away foreign"), what="vacation reply")
    assert not sent_to(sink, sender, "Away junk")



def test_hourly_cap_on_sieve_generated_mail_per_account(net, caplog):
    """A script fed by a stream of incoming mail cannot make the server a spam cannon:
    ``[sieve] max_outgoing_per_hour`` counts every notification recipient, vacation reply
    and redirect of one account; past it, a redirect becomes a keep, the rest is not sent."""
    srv, sink = net
    saved = srv.ctx.state.get("sieve")
    srv.ctx.state["sieve"] = dataclasses.replace(settings_for(srv.ctx), max_outgoing_per_hour=3)
    try:
        # One notification to three addresses: the whole allowance.
        n = Notify(method=f"mailto:c1@{REMOTE},c2@{REMOTE}?cc=c3@{REMOTE}&bcc=c4@{REMOTE}&subject=Cannon")
        with caplog.at_level(logging.INFO, logger="postroom.sieve"):
            run(net, "wes", Decision(actions=[n]), message("cannon1"))
            wait_for(lambda: len([m for m in sink.messages if b"Subject: Cannon" in m]) >= 1, what="notification")
            run(net, "wes", Decision(actions=[Redirect(f"capfwd@{REMOTE}")], implicit_keep=False), message("capped"))
        time.sleep(0.5)
        rcpts = [line for line in sink.lines if line.startswith("RCPT TO:<c")]
        assert len(rcpts) == 3 and not any("c4@" in line for line in rcpts)
        assert not any(line.startswith(f"RCPT TO:<capfwd@{REMOTE}>") for line in sink.lines)
        assert any(b"Subject: capped" in m for m in srv.mailbox("wes"))  # the refused redirect: kept
        logged = " ".join(r.getMessage() for r in caplog.records)
        assert "not sent (more than 3 Sieve messages this hour)" in logged
        assert "redirect to <capfwd@remote.test> not done (more than 3 Sieve messages this hour)" in logged
        # Another account has its own allowance.
        run(net, "xena", Decision(actions=[Redirect(f"capfwd2@{REMOTE}")], implicit_keep=False), message("other"))
        wait_for(lambda: any(line.startswith(f"RCPT TO:<capfwd2@{REMOTE}>") for line in sink.lines), what="redirect")
    finally:
        srv.ctx.state["sieve"] = saved


@pytest.mark.parametrize("extended", [False, True])
def test_reject_that_cannot_refuse_at_smtp_time_notifies_the_sender(net, extended):
    srv, _ = net
    user = "max" if extended else "ned"
    subject = f"unwanted-{extended}"
    out = run(net, user, Decision(actions=[Reject("Not here, thanks", extended=extended)], implicit_keep=False),
              message(subject, sender=f"tom@{DOMAIN}"), sender=f"tom@{DOMAIN}")
    assert out.refusal is None
    assert srv.mailbox(user) == []
    notices = wait_for(lambda: [m for m in srv.mailbox("tom") if subject.encode() in m], what="notice")
    n = email.message_from_bytes(notices[0])
    assert n.get_content_type() == "multipart/report"
    kind = "delivery-status" if extended else "disposition-notification"
    assert n.get_param("report-type") == kind
    assert b"Not here, thanks" in notices[0]


def test_reject_for_the_only_recipient_is_the_smtp_answer(net):
    srv, _ = net
    out = run(net, "quin", Decision(actions=[Reject("go\r\naway \u00e9")], implicit_keep=False),
              message("refused"), refuse_single=True)
    assert out.refusal == "go away ?"
    assert srv.mailbox("quin") == []


def test_reject_of_a_bounce_sends_nothing(net):
    srv, _ = net
    before = len(srv.mailbox("tom"))
    run(net, "rex", Decision(actions=[Reject("no")], implicit_keep=False), message("bounce", sender=""),
        sender="")
    assert srv.mailbox("rex") == [] and len(srv.mailbox("tom")) == before


def test_duplicate_marks_are_tracked_after_delivery(net):
    srv, _ = net
    key = duplicate_key("h", "<id@x>")
    run(net, "sam", Decision(actions=[Keep()], implicit_keep=False, duplicate_marks=[(key, 60)]), message("dup"))
    when = srv.call(srv.ctx.store.sieve_tracked(srv.ids["sam"], "duplicate", key, time.time()))
    assert when is not None
    # What the engine's duplicate test asks next time (RFC 7352 §3).
    srv.call(_host_sees(srv, "sam", "<id@x>", "h"))


async def _host_sees(srv, user: str, value: str, handle: str) -> None:  # type: ignore[no-untyped-def]
    import asyncio
    import threading
    from email.message import Message

    loop = asyncio.get_running_loop()
    host = DeliveryHost(loop=loop, store=srv.ctx.store, account_id=srv.ids[user], mailboxes=[],
                        environment_items={}, headers=Message(), _loop_thread=threading.get_ident())
    seen = await loop.run_in_executor(None, host.duplicate_seen, value, 60, handle)
    other = await loop.run_in_executor(None, host.duplicate_seen, value, 60, "another handle")
    assert seen and not other


def test_vacation_mime_reason_and_non_ascii_subject(net):
    _, sink = net
    v = Vacation(sender=f"fan@{REMOTE}", subject="Abwesend bis März", mime=True, period_seconds=1,
                 reason="Content-Type: text/html; charset=utf-8\r\n\r\n<p>Away</p>\r\n")
    run(net, "pia", Decision(actions=[v]), message("mime", sender=f"fan@{REMOTE}"), sender=f"fan@{REMOTE}")
    [raw] = wait_for(lambda: [r for r in sink.messages if f"To: fan@{REMOTE}".encode() in r and b"Away" in r],
                     what="MIME vacation reply")
    assert raw.isascii()  # the subject as an RFC 2047 encoded word: any next hop takes it
    m = email.message_from_bytes(raw, policy=email.policy.default)
    assert m["Subject"] == "Abwesend bis März"
    assert m.get_content_type() == "text/html" and "<p>Away</p>" in m.get_content()
