"""IMAP AUTHENTICATE GSSAPI (RFC 4752) against a real MIT KDC, with imaplib as the client.

Also what must fail, and fail cleanly (a tagged NO or BAD, the session still usable, the
reason in the log): no ticket, a stale (expired) ticket, a ticket for another service, a
replayed authenticator, a principal without an account, another user's authzid, and a
client choosing a security layer that was not offered.
"""

from __future__ import annotations

import imaplib
import time
from collections.abc import Callable
from typing import Any

import gssapi
import gssapi.exceptions
import kdc
import pytest
from krb_harness import DOMAIN, HOST, SaslGssapi, tls


def connect(krb: Any) -> imaplib.IMAP4:
    c = imaplib.IMAP4("127.0.0.1", krb.ports["imap"], timeout=30)
    c.starttls(ssl_context=tls())
    return c


def caps(c: imaplib.IMAP4) -> list[str]:
    typ, data = c.capability()
    assert typ == "OK"
    return data[0].decode().split()


def authenticate(c: imaplib.IMAP4, respond: Callable[[bytes], bytes | None]) -> tuple[str, list[Any]]:
    return c.authenticate("GSSAPI", respond)


def test_gssapi_offered_only_with_tls(krb: Any) -> None:
    plain = imaplib.IMAP4("127.0.0.1", krb.ports["imap"], timeout=30)
    try:
        assert "AUTH=GSSAPI" not in caps(plain) and "LOGINDISABLED" in caps(plain)
    finally:
        plain.shutdown()
    c = connect(krb)
    try:
        assert "AUTH=GSSAPI" in caps(c)
    finally:
        c.logout()


def test_login_with_ticket_and_with_password(krb: Any, postroom_log: list[str]) -> None:
    acc = krb.new_user()
    name = acc.address.split("@")[0]
    cc = krb.ticket(name)
    c = connect(krb)
    typ, _ = authenticate(c, SaslGssapi(cc, krb.principals["imap"]))
    assert typ == "OK"
    assert c.select("INBOX")[0] == "OK"
    c.logout()
    assert any(f"auth Kerberos principal='{name}@{kdc.REALM}'" in line for line in postroom_log)
    # The same account still logs in with its password.
    c = connect(krb)
    assert c.login(acc.address, "secret")[0] == "OK"
    c.logout()


def test_gss_spnego_login(krb: Any) -> None:
    acc = krb.new_user()
    cc = krb.ticket(acc.address.split("@")[0])
    c = connect(krb)
    assert "AUTH=GSS-SPNEGO" in caps(c)
    assert c.authenticate("GSS-SPNEGO", SaslGssapi(cc, krb.principals["imap"], spnego=True))[0] == "OK"
    c.logout()
    c = connect(krb)  # a SPNEGO token for another service fails as GSSAPI's does
    with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        c.authenticate("GSS-SPNEGO", SaslGssapi(cc, krb.principals["pop3"], spnego=True))
    c.logout()


def test_authzid_of_the_same_user_is_accepted(krb: Any) -> None:
    acc = krb.new_user()
    cc = krb.ticket(acc.address.split("@")[0])
    c = connect(krb)
    assert authenticate(c, SaslGssapi(cc, krb.principals["imap"], authzid=acc.address))[0] == "OK"
    c.logout()


def test_authzid_of_another_user_is_refused(krb: Any, postroom_log: list[str]) -> None:
    acc, other = krb.new_user(), krb.new_user()
    cc = krb.ticket(acc.address.split("@")[0])
    c = connect(krb)
    with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        authenticate(c, SaslGssapi(cc, krb.principals["imap"], authzid=other.address))
    assert c.login(acc.address, "secret")[0] == "OK"  # the session is still usable
    c.logout()
    assert any("asked to act as" in line for line in postroom_log)


def test_exception_table_maps_an_instance_principal(krb: Any) -> None:
    krb.call(krb.store.create_account(f"admin@{DOMAIN}", "x"))
    krb.realm.add_user("carol/admin")
    cc = krb.ticket("carol/admin")
    c = connect(krb)
    assert authenticate(c, SaslGssapi(cc, krb.principals["imap"]))[0] == "OK"
    c.logout()


def test_principal_without_account_is_refused(krb: Any, postroom_log: list[str]) -> None:
    krb.realm.add_user("nobody")
    cc = krb.ticket("nobody")
    c = connect(krb)
    with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        authenticate(c, SaslGssapi(cc, krb.principals["imap"]))
    c.logout()
    assert any(f"principal 'nobody@{kdc.REALM}': no account nobody@{DOMAIN}" in line for line in postroom_log)


def test_no_ticket(krb: Any, tmp_path: Any) -> None:
    """A client without a ticket cannot even make a token; it cancels, and may then use its password."""
    acc = krb.new_user()
    with pytest.raises(gssapi.exceptions.GSSError):
        SaslGssapi(tmp_path / "empty-ccache", krb.principals["imap"]).initial()
    c = connect(krb)
    with pytest.raises(imaplib.IMAP4.error, match="cancelled"):
        authenticate(c, lambda _challenge: None)  # imaplib sends "*"
    assert c.login(acc.address, "secret")[0] == "OK"
    c.logout()


def test_garbage_token_is_a_clean_failure(krb: Any, postroom_log: list[str]) -> None:
    c = connect(krb)
    with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        authenticate(c, lambda _challenge: b"\x60\x03not a kerberos token")
    assert c.noop()[0] == "OK"
    c.logout()
    assert any("auth failed (GSSAPI:" in line for line in postroom_log)


def test_ticket_for_another_service_is_refused(krb: Any, postroom_log: list[str]) -> None:
    acc = krb.new_user()
    cc = krb.ticket(acc.address.split("@")[0])
    for target in (krb.principals["pop3"], f"host/{HOST}@{kdc.REALM}"):
        c = connect(krb)
        with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
            authenticate(c, SaslGssapi(cc, target))
        c.logout()
    refusals = [line for line in postroom_log if "auth failed (GSSAPI:" in line]
    assert len(refusals) == 2 and all("another service" in line or "no key in the keytab" in line
                                      for line in refusals), refusals


def test_replayed_authenticator_is_refused(krb: Any, postroom_log: list[str]) -> None:
    acc = krb.new_user()
    cc = krb.ticket(acc.address.split("@")[0])
    token = SaslGssapi(cc, krb.principals["imap"]).initial()
    first = connect(krb)
    # The first use is accepted (the server answers with its AP-REP); the client stops there.
    with pytest.raises(imaplib.IMAP4.error, match="cancelled"):
        authenticate(first, lambda challenge: token if not challenge else None)
    first.logout()
    again = connect(krb)
    with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        authenticate(again, lambda _challenge: token)
    again.logout()
    assert any("auth failed (GSSAPI: replayed authenticator" in line for line in postroom_log)


def test_security_layer_other_than_none_is_refused(krb: Any, postroom_log: list[str]) -> None:
    acc = krb.new_user()
    cc = krb.ticket(acc.address.split("@")[0])
    client = SaslGssapi(cc, krb.principals["imap"], layer=2)
    c = connect(krb)
    with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        authenticate(c, client)
    c.logout()
    assert client.offer == bytes([1, 0, 0, 0])  # only "no security layer", max size 0
    assert any("only 'no security layer' is offered" in line for line in postroom_log)


def test_expired_ticket_is_refused(krb: Any, postroom_log: list[str]) -> None:
    """A token made while the ticket was valid, sent after it expired (plus the realm's
    2-second clock skew): what a client whose ticket ran out mid-session would send."""
    acc = krb.new_user(maxlife="3 seconds")
    cc = krb.ticket(acc.address.split("@")[0])
    token = SaslGssapi(cc, krb.principals["imap"]).initial()
    time.sleep(6)
    # A fresh client can no longer make a token at all: its tickets are expired.
    with pytest.raises(gssapi.exceptions.GSSError):
        SaslGssapi(cc, krb.principals["imap"]).initial()
    c = connect(krb)
    with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        authenticate(c, lambda _challenge: token)
    c.logout()
    assert any("auth failed (GSSAPI: ticket expired" in line or "auth failed (GSSAPI: clock skew" in line
               for line in postroom_log), [x for x in postroom_log if "GSSAPI" in x]
