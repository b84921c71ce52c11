"""Relay policy: served domains from anyone, other domains only for authenticated
clients or trusted networks; address forms that made other servers open relays refused."""

import smtplib

import pytest

from conftest import PASSWORD, client_tls, server_fixture

RELAY_FORMS = [
    "<@relay.example:victim@remote.example>",  # source route
    "<@a.example,@b.example:victim@remote.example>",
    "<victim%remote.example@example.test>",  # percent hack
    "<remote.example!victim@example.test>",  # bang path
    '<"victim@remote.example"@example.test>',  # quoted local part
    '<"victim%remote.example"@example.test>',
    "<victim@[127.0.0.1]>",  # address literal
    "<victim@[IPv6:::1]>",
    "<victim@remote.example.>",  # trailing dot
    "<joe@example.test.>",
    "<remote.example!victim>",  # bang path without domain
    "<victim@remote.example@example.test>",
]


def mx(srv):
    c = smtplib.SMTP("127.0.0.1", srv.ports["smtp"])
    c.ehlo("client.example")
    assert c.mail("someone@remote.example")[0] == 250
    return c


def test_remote_domain_refused_from_anyone(smtp_server):
    with mx(smtp_server) as c:
        assert c.rcpt("victim@remote.example") == (554, b"5.7.1 Relay access denied")
        assert c.rcpt("victim@sub.example.test")[0] == 554  # a subdomain is another domain
        assert c.rcpt("joe@EXAMPLE.TEST")[0] == 250  # domains are case-insensitive


@pytest.mark.parametrize("form", RELAY_FORMS)
def test_tricky_forms_refused_even_when_authenticated(smtp_server, form):
    n = len(smtp_server.queue.items)
    with mx(smtp_server) as c:
        code, text = c.docmd("RCPT", f"TO:{form}")
        assert code in (501, 550, 554), (form, code, text)
        assert text.startswith((b"5.7.1", b"5.1.3")), text
    with smtplib.SMTP("127.0.0.1", smtp_server.ports["submission"]) as c:
        c.starttls(context=client_tls())
        c.login("joe@example.test", PASSWORD)
        c.mail("joe@example.test")
        code, text = c.docmd("RCPT", f"TO:{form}")
        assert code in (501, 550), (form, code, text)
    assert len(smtp_server.queue.items) == n


def test_authenticated_user_may_relay(smtp_server):
    n = len(smtp_server.queue.items)
    with smtplib.SMTP("127.0.0.1", smtp_server.ports["submission"]) as c:
        c.starttls(context=client_tls())
        c.login("joe@example.test", PASSWORD)
        assert c.sendmail("joe@example.test", ["friend@remote.example"], b"Subject: x\r\n\r\nx\r\n") == {}
    assert smtp_server.queue.items[n][0].recipients[0].address == "friend@remote.example"


def test_authenticated_on_port_25_may_relay(smtp_server):
    with smtplib.SMTP("127.0.0.1", smtp_server.ports["smtp"]) as c:
        c.starttls(context=client_tls())
        c.login("ann@example.test", PASSWORD)
        c.mail("ann@example.test")
        assert c.rcpt("friend@remote.example")[0] == 250


def test_loopback_is_not_trusted_by_default(smtp_server):
    with mx(smtp_server) as c:
        assert c.rcpt("friend@remote.example")[0] == 554


trusting_server = server_fixture('trusted_networks = ["127.0.0.0/8"]')


def test_trusted_network_may_relay(trusting_server):
    with smtplib.SMTP("127.0.0.1", trusting_server.ports["smtp"]) as c:
        assert c.sendmail("app@example.test", ["friend@remote.example"], b"Subject: t\r\n\r\nt\r\n") == {}
        c.mail("app@example.test")
        assert c.rcpt("victim%elsewhere.example@remote.example")[0] == 550  # still no percent hack
    assert trusting_server.queue.items[-1][0].recipients[0].address == "friend@remote.example"
