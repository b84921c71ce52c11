"""GSSAPI (RFC 4752) on ManageSieve AUTHENTICATE (RFC 5804 §2.1) and NNTP AUTHINFO SASL
(RFC 4643 §2.4), against a real MIT KDC; a ticket for another service fails cleanly and the
same connection can still log in with the password."""

from __future__ import annotations

import base64
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from krb_harness import SaslGssapi
from nntpclient import NNTPClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "managesieve"))
from managesieve_harness import Client as SieveClient
from managesieve_harness import parse_string

Respond = Callable[[bytes | None], bytes | None]


def _b64(data: bytes | None) -> str:
    return base64.b64encode(data or b"").decode()


# -- ManageSieve ---------------------------------------------------------------------
def sieve(krb: Any) -> SieveClient:
    if "managesieve" not in krb.ports:
        pytest.skip("no ManageSieve in this build")
    c = SieveClient(krb.ports["managesieve"])
    c.greeting = c.response()
    c.starttls()
    return c


def sieve_auth(c: SieveClient, respond: Respond) -> str:
    """AUTHENTICATE "GSSAPI" with the initial response; the final status (OK/NO/BYE)."""
    c.send(f'AUTHENTICATE "GSSAPI" "{_b64(respond(None))}"\r\n'.encode())
    while True:
        line = c.logical_line()
        word = line.split(b" ", 1)[0]
        if word in (b"OK", b"NO", b"BYE"):
            return word.decode()
        challenge, _ = parse_string(line)  # RFC 5804 §2.1: a string holding base64
        answer = respond(base64.b64decode(challenge))
        c.send(b'"*"\r\n' if answer is None else f'"{_b64(answer)}"\r\n'.encode())


def test_managesieve_capability_and_login(krb: Any) -> None:
    c = sieve(krb)
    caps = c.command("CAPABILITY")
    assert any(line.startswith(b'"SASL"') and b"GSSAPI" in line for line in caps.lines), caps
    acc = krb.new_user()
    cc = krb.ticket(acc.address.split("@")[0])
    assert sieve_auth(c, SaslGssapi(cc, krb.principals["managesieve"])) == "OK"
    assert c.command("LISTSCRIPTS").status == "OK"
    c.close()


def test_managesieve_wrong_service_then_password(krb: Any) -> None:
    acc = krb.new_user()
    cc = krb.ticket(acc.address.split("@")[0])
    c = sieve(krb)
    assert sieve_auth(c, SaslGssapi(cc, krb.principals["imap"])) == "NO"
    assert c.authenticate_plain(acc.address, "secret").status == "OK"
    c.close()


# -- NNTP ----------------------------------------------------------------------------
def nntp(krb: Any) -> NNTPClient:
    if "nntp" not in krb.ports:
        pytest.skip("no NNTP in this build")
    c = NNTPClient.connect("127.0.0.1", krb.ports["nntp"])
    assert c.starttls()[0] == 382
    return c


def nntp_auth(c: NNTPClient, respond: Respond) -> int:
    """AUTHINFO SASL GSSAPI with the initial response (RFC 4643 §2.4.2); the final code."""
    code, text = c.cmd(f"AUTHINFO SASL GSSAPI {_b64(respond(None))}")
    while code == 383:
        answer = respond(b"" if text.strip() == "=" else base64.b64decode(text.strip()))
        c.send_line("*" if answer is None else (_b64(answer) or "="))
        code, text = c.status()
    return code


def test_nntp_capabilities_and_login(krb: Any) -> None:
    c = nntp(krb)
    code, _, lines = c.cmd_multi("CAPABILITIES")
    assert code == 101 and any(line.startswith(b"SASL ") and b"GSSAPI" in line for line in lines), lines
    acc = krb.new_user()
    cc = krb.ticket(acc.address.split("@")[0])
    assert nntp_auth(c, SaslGssapi(cc, krb.principals["nntp"])) == 281
    c.quit()


def test_nntp_wrong_service_then_password(krb: Any) -> None:
    acc = krb.new_user()
    cc = krb.ticket(acc.address.split("@")[0])
    c = nntp(krb)
    assert nntp_auth(c, SaslGssapi(cc, krb.principals["smtp"])) == 481
    assert c.authinfo(acc.address, "secret")[0] == 281
    c.quit()
