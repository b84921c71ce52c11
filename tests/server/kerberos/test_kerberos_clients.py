"""Real GSSAPI mail clients with Kerberos tickets: curl (IMAP, POP3, SMTP submission with
``--login-options AUTH=GSSAPI``) and fetchmail (``--auth gssapi`` over POP3 and IMAP).

Each runs with the realm's krb5.conf and a credential cache of its own (``KRB5CCNAME``) and
never sees a password. Both build the service principal from the host they connect to
(``imap/127.0.0.1``, ``pop/…``, ``smtp/…``: the realm has exactly those principals).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from krb_harness import DOMAIN, HOST

pytestmark = pytest.mark.slow


def _env(krb: Any, ccache: Path, home: Path) -> dict[str, str]:
    return {**os.environ, **krb.realm.environ(), "KRB5CCNAME": f"FILE:{ccache}", "HOME": str(home)}


def _curl_gss() -> None:
    curl = shutil.which("curl")
    if curl is None:
        pytest.skip("curl not installed")
    features = subprocess.run([curl, "-V"], check=False, capture_output=True, text=True).stdout
    if "GSS-API" not in features and "Kerberos" not in features:
        pytest.skip("this curl is built without GSS-API")


def _message(acc: Any) -> bytes:
    return f"From: a@outside.test\r\nTo: {acc.address}\r\nSubject: for kerberos\r\n\r\nbody\r\n".encode()


def _deliver(krb: Any, acc: Any, raw: bytes) -> None:
    from postroom.storage.models import DeliveryTarget

    krb.call(krb.store.deliver(raw, [DeliveryTarget(acc.id)]))


@pytest.mark.parametrize("scheme,listener", [("imap", "imap"), ("pop3", "pop3")])
def test_curl_reads_mail_with_gssapi(krb: Any, tmp_path: Path, scheme: str, listener: str) -> None:
    _curl_gss()
    acc = krb.new_user()
    name = acc.address.split("@")[0]
    _deliver(krb, acc, _message(acc))
    cc = krb.ticket(name)
    port = krb.ports[listener]
    path = "/INBOX;UID=1" if scheme == "imap" else "/1"
    res = subprocess.run(
        ["curl", "-sS", "--ssl-reqd", "-k",
         "--login-options", "AUTH=GSSAPI", "-u", f"{acc.address}:", f"{scheme}://{HOST}:{port}{path}"],
        env=_env(krb, cc, tmp_path), check=False, capture_output=True, timeout=60)
    assert res.returncode == 0, res.stderr.decode(errors="replace")
    assert b"Subject: for kerberos" in res.stdout


def test_curl_submits_with_gssapi(krb: Any, tmp_path: Path) -> None:
    _curl_gss()
    acc = krb.new_user()
    cc = krb.ticket(acc.address.split("@")[0])
    port = krb.ports["submission"]
    mail = tmp_path / "mail.txt"
    mail.write_bytes(_message(acc))
    res = subprocess.run(
        ["curl", "-sS", "--ssl-reqd", "-k",
         "--login-options", "AUTH=GSSAPI", "-u", f"{acc.address}:", "--mail-from", acc.address,
         "--mail-rcpt", acc.address, "-T", str(mail), f"smtp://{HOST}:{port}"],
        env=_env(krb, cc, tmp_path), check=False, capture_output=True, timeout=60)
    assert res.returncode == 0, res.stderr.decode(errors="replace")
    box = krb.call(krb.store.get_mailbox(acc.id, "INBOX"))
    assert len(krb.call(krb.store.list_messages(box.id))) == 1


def test_curl_without_ticket_fails_cleanly(krb: Any, tmp_path: Path) -> None:
    _curl_gss()
    acc = krb.new_user()
    port = krb.ports["imap"]
    res = subprocess.run(
        ["curl", "-sS", "--ssl-reqd", "-k",
         "--login-options", "AUTH=GSSAPI", "-u", f"{acc.address}:", f"imap://{HOST}:{port}/INBOX"],
        env=_env(krb, tmp_path / "no-ccache", tmp_path), check=False, capture_output=True, timeout=60)
    # curl stops before sending a token: CURLE_AUTH_ERROR (94), or 67 (login denied).
    assert res.returncode in (67, 94), res.stderr


@pytest.mark.parametrize("proto,listener", [("POP3", "pop3"), ("IMAP", "imap")])
def test_fetchmail_gssapi(krb: Any, tmp_path: Path, proto: str, listener: str,
                          postroom_log: list[str]) -> None:
    if shutil.which("fetchmail") is None:
        pytest.skip("fetchmail not installed")
    acc = krb.new_user()
    _deliver(krb, acc, _message(acc))
    cc = krb.ticket(acc.address.split("@")[0])
    mbox = tmp_path / "fetched.mbox"
    home = tmp_path / "home"
    home.mkdir()
    rc = home / ".fetchmailrc"
    rc.write_text(f"""poll {HOST} proto {proto} service {krb.ports[listener]} auth gssapi
  user "{acc.address}" there
  keep sslproto "tls1.2+" no sslcertck bsmtp "{mbox}"
""")
    rc.chmod(0o600)
    res = subprocess.run(
        ["fetchmail", "-v", "--nodetach", "--fetchmailrc", str(rc), "--pidfile", str(tmp_path / "fm.pid"),
         "--idfile", str(tmp_path / "fm.ids")],
        env=_env(krb, cc, home), check=False, capture_output=True, timeout=120)
    out = res.stdout.decode(errors="replace") + res.stderr.decode(errors="replace")
    assert res.returncode == 0, out + "\n".join(postroom_log)
    assert mbox.exists() and b"Subject: for kerberos" in mbox.read_bytes(), out
    assert DOMAIN in acc.address
