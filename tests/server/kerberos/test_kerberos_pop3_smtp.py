"""POP3 AUTH GSSAPI (RFC 5034, RFC 4752) with poplib and SMTP submission AUTH GSSAPI
(RFC 4954) with smtplib, against a real MIT KDC; the failures each protocol must answer
cleanly; the same accounts still log in with their passwords."""

from __future__ import annotations

import base64
import poplib
import smtplib
from collections.abc import Callable
from typing import Any

import kdc
import pytest
from krb_harness import SaslGssapi, tls


# -- POP3 ----------------------------------------------------------------------------
def pop3(krb: Any) -> poplib.POP3:
    c = poplib.POP3("127.0.0.1", krb.ports["pop3"], timeout=30)
    c.stls(context=tls())
    return c


def pop3_auth(c: poplib.POP3, respond: Callable[[bytes], bytes | None], initial: bytes | None = None) -> bytes:
    """AUTH GSSAPI (with ``initial`` as the RFC 5034 initial response); the final line."""
    c._putcmd("AUTH GSSAPI" + (" " + base64.b64encode(initial).decode() if initial is not None else ""))
    return pop3_auth_continue(c, respond)


def pop3_auth_continue(c: poplib.POP3, respond: Callable[[bytes], bytes | None]) -> bytes:
    """Answer the server's challenges after an AUTH command; the final line."""
    line, _ = c._getline()
    while line == b"+" or line.startswith(b"+ "):  # a challenge, not +OK
        answer = respond(base64.b64decode(line[1:].strip()))
        c._putcmd("*" if answer is None else base64.b64encode(answer).decode())
        line, _ = c._getline()
    return line


def test_pop3_capa_and_auth_listing(krb: Any) -> None:
    plain = poplib.POP3("127.0.0.1", krb.ports["pop3"], timeout=30)
    assert "SASL" not in plain.capa()  # before STLS, nothing that may not be used there
    plain.quit()
    c = pop3(krb)
    assert "GSSAPI" in c.capa()["SASL"]
    assert "RPOP" not in c.capa()  # deliberately not offered (docs/pop3.md)
    with pytest.raises(poplib.error_proto):
        c._shortcmd("RPOP someone")
    c.quit()


def test_pop3_login_with_ticket(krb: Any) -> None:
    acc = krb.new_user()
    cc = krb.ticket(acc.address.split("@")[0])
    c = pop3(krb)
    assert pop3_auth(c, SaslGssapi(cc, krb.principals["pop3"])).startswith(b"+OK")
    assert c.stat() == (0, 0)
    c.quit()


def test_pop3_login_with_initial_response(krb: Any) -> None:
    acc = krb.new_user()
    cc = krb.ticket(acc.address.split("@")[0])
    client = SaslGssapi(cc, krb.principals["pop3"])
    c = pop3(krb)
    assert pop3_auth(c, client, initial=client.initial()).startswith(b"+OK")
    c.quit()
    # ... and its password still works.
    c = pop3(krb)
    c.user(acc.address)
    assert c.pass_("secret").startswith(b"+OK")
    c.quit()


def test_pop3_refusals(krb: Any, postroom_log: list[str]) -> None:
    acc = krb.new_user()
    cc = krb.ticket(acc.address.split("@")[0])
    c = pop3(krb)
    # A ticket for IMAP is not one for POP3.
    assert pop3_auth(c, SaslGssapi(cc, krb.principals["imap"])).startswith(b"-ERR [AUTH]")
    # Not a Kerberos token at all.
    assert pop3_auth(c, lambda _c: b"junk").startswith(b"-ERR [AUTH]")
    # Cancelled by the client (one without a ticket).
    assert pop3_auth(c, lambda _c: None).startswith(b"-ERR")
    c.user(acc.address)
    assert c.pass_("secret").startswith(b"+OK")
    c.quit()
    assert any("GSSAPI: ticket for another service" in line for line in postroom_log)


def test_pop3_principal_without_account(krb: Any) -> None:
    krb.realm.add_user("ghost")
    cc = krb.ticket("ghost")
    c = pop3(krb)
    assert pop3_auth(c, SaslGssapi(cc, krb.principals["pop3"])).startswith(b"-ERR [AUTH]")
    c.quit()


# -- SMTP submission -----------------------------------------------------------------
def smtp_auth(c: smtplib.SMTP, respond: Callable[[bytes | None], bytes | None]) -> int:
    """AUTH GSSAPI with the initial response; the final reply code. (smtplib's own ``auth``
    passes challenges and responses as ASCII text, and GSS-API tokens are binary.)"""
    code, msg = c.docmd("AUTH", "GSSAPI " + base64.b64encode(respond(None) or b"").decode())
    while code == 334:
        answer = respond(base64.b64decode(msg))
        code, msg = c.docmd("*" if answer is None else base64.b64encode(answer).decode())
    return code


def submission(krb: Any) -> smtplib.SMTP:
    c = smtplib.SMTP("127.0.0.1", krb.ports["submission"], timeout=30)
    c.starttls(context=tls())
    c.ehlo()
    return c


def test_smtp_ehlo_lists_gssapi_only_after_starttls(krb: Any) -> None:
    c = smtplib.SMTP("127.0.0.1", krb.ports["submission"], timeout=30)
    c.ehlo()
    assert "GSSAPI" not in c.esmtp_features.get("auth", "")
    c.quit()
    c = submission(krb)
    assert "GSSAPI" in c.esmtp_features["auth"].split()
    c.quit()


def test_smtp_submit_with_ticket(krb: Any) -> None:
    acc = krb.new_user()
    cc = krb.ticket(acc.address.split("@")[0])
    c = submission(krb)
    assert smtp_auth(c, SaslGssapi(cc, krb.principals["smtp"])) == 235
    assert c.sendmail(acc.address, [acc.address], f"From: {acc.address}\r\nSubject: k\r\n\r\nhi\r\n") == {}
    c.quit()


def test_smtp_and_pop3_gss_spnego(krb: Any) -> None:
    acc = krb.new_user()
    cc = krb.ticket(acc.address.split("@")[0])
    c = submission(krb)
    assert "GSS-SPNEGO" in c.esmtp_features["auth"].split()
    code, msg = c.docmd("AUTH", "GSS-SPNEGO " + base64.b64encode(
        (client := SaslGssapi(cc, krb.principals["smtp"], spnego=True)).initial()).decode())
    while code == 334:
        code, msg = c.docmd(base64.b64encode(client.respond(base64.b64decode(msg))).decode())
    assert code == 235
    c.quit()
    p = pop3(krb)
    p._putcmd("AUTH GSS-SPNEGO")
    assert pop3_auth_continue(p, SaslGssapi(cc, krb.principals["pop3"], spnego=True)).startswith(b"+OK")
    p.quit()


def test_smtp_refusals_then_password(krb: Any) -> None:
    acc = krb.new_user()
    cc = krb.ticket(acc.address.split("@")[0])
    c = submission(krb)
    assert smtp_auth(c, SaslGssapi(cc, krb.principals["pop3"])) == 535
    assert smtp_auth(c, SaslGssapi(cc, krb.principals["smtp"], layer=4)) == 535  # confidentiality: not offered
    assert smtp_auth(c, lambda _c: None) == 501  # cancelled: a client without a ticket
    assert c.login(acc.address, "secret")[0] == 235
    c.quit()


def test_smtp_principal_without_account(krb: Any, postroom_log: list[str]) -> None:
    krb.realm.add_user("stranger")
    cc = krb.ticket("stranger")
    c = submission(krb)
    assert smtp_auth(c, SaslGssapi(cc, krb.principals["smtp"])) == 535
    c.quit()
    assert any(f"principal 'stranger@{kdc.REALM}': no account" in line for line in postroom_log)
