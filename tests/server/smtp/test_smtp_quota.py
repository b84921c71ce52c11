"""Accounts over quota: 552 5.2.2 at RCPT when already full (or the declared SIZE cannot fit),
at the end of DATA when the message itself would not fit (docs/smtp.md, "Quota")."""

from __future__ import annotations

import smtplib

import pytest

from conftest import DOMAIN


def _quota(srv, user, storage=None, messages=None):
    srv.call(srv.ctx.store.set_quota(f"{user}@{DOMAIN}", storage, messages))


def _client(srv) -> smtplib.SMTP:
    c = smtplib.SMTP("127.0.0.1", srv.ports["smtp"], timeout=10)
    c.ehlo("client.example")
    return c


def _body(n: int) -> bytes:
    return b"From: s@remote.example\r\nSubject: q\r\n\r\n" + b"x" * n + b"\r\n"


def test_full_mailbox_refused_at_rcpt(smtp_server):
    _quota(smtp_server, "carl", messages=1)
    with _client(smtp_server) as c:
        assert c.sendmail("s@remote.example", [f"carl@{DOMAIN}"], _body(10)) == {}
    assert len(smtp_server.wait_inbox("carl", 1)) == 1
    with _client(smtp_server) as c:
        with pytest.raises(smtplib.SMTPRecipientsRefused) as e:
            c.sendmail("s@remote.example", [f"carl@{DOMAIN}"], _body(10))
        code, text = e.value.recipients[f"carl@{DOMAIN}"]
        assert code == 552 and text.startswith(b"5.2.2")
        # With another recipient the message still goes to that one.
        refused = c.sendmail("s@remote.example", [f"carl@{DOMAIN}", f"joe@{DOMAIN}"], _body(10))
        assert refused[f"carl@{DOMAIN}"][0] == 552
    assert len(smtp_server.inbox("carl")) == 1


def test_declared_size_over_quota_refused_at_rcpt(smtp_server):
    _quota(smtp_server, "dora", storage=2000)
    with _client(smtp_server) as c:
        assert c.has_extn("size")  # smtplib declares SIZE= at MAIL
        with pytest.raises(smtplib.SMTPRecipientsRefused) as e:
            c.sendmail("s@remote.example", [f"dora@{DOMAIN}"], _body(5000))
        assert e.value.recipients[f"dora@{DOMAIN}"][0] == 552
        assert c.sendmail("s@remote.example", [f"dora@{DOMAIN}"], _body(100)) == {}
    assert len(smtp_server.wait_inbox("dora", 1)) == 1


def test_over_quota_at_end_of_data(smtp_server):
    _quota(smtp_server, "bob", storage=3000)
    queued = len(smtp_server.queue.items)
    before_joe = len(smtp_server.inbox("joe"))
    with _client(smtp_server) as c:
        # No SIZE declared: RCPT cannot know; the end of DATA refuses it for the only recipient.
        assert c.mail("s@remote.example")[0] == 250
        assert c.rcpt(f"bob@{DOMAIN}")[0] == 250
        code, text = c.data(_body(5000))
        assert code == 552 and text.startswith(b"5.2.2")
        # Two recipients, one with room: 250, delivered to that one, a notice for the other.
        assert c.mail("s@remote.example")[0] == 250
        assert c.rcpt(f"bob@{DOMAIN}")[0] == 250
        assert c.rcpt(f"joe@{DOMAIN}")[0] == 250
        assert c.data(_body(5000))[0] == 250
    assert smtp_server.inbox("bob") == []
    assert len(smtp_server.wait_inbox("joe", before_joe + 1)) == before_joe + 1
    notices = smtp_server.queue.items[queued:]
    assert len(notices) == 1
    env, raw = notices[0]
    assert env.sender == "" and [r.address for r in env.recipients] == ["s@remote.example"]
    assert b"Status: 5.2.2" in raw and f"bob@{DOMAIN}".encode() in raw
