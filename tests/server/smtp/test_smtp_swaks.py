"""Interop with swaks (a second, independent client): every listener, TLS, AUTH,
pipelining, BDAT-free DSN, VRFY/EXPN when enabled."""

import shutil
import subprocess

import pytest

from conftest import PASSWORD, server_fixture

pytestmark = [pytest.mark.slow, pytest.mark.skipif(shutil.which("swaks") is None, reason="swaks not installed")]
HAS_TLS = shutil.which("perl") is not None and subprocess.run(
    ["perl", "-MNet::SSLeay", "-e1"], capture_output=True).returncode == 0
needs_tls = pytest.mark.skipif(not HAS_TLS, reason="swaks TLS needs Net::SSLeay (scripts/install-test-deps.sh)")


def swaks(port, *args, ok=True):
    p = subprocess.run(["swaks", "--server", "127.0.0.1", "--port", str(port), "--timeout", "20",
                        "--helo", "swaks.example", *args], capture_output=True, text=True, timeout=60)
    if ok:
        assert p.returncode == 0, p.stdout + p.stderr
    return p


def test_mx_plain_delivery(smtp_server):
    before = len(smtp_server.inbox("joe"))
    out = swaks(smtp_server.ports["smtp"], "--from", "s@remote.example", "--to", "joe@example.test",
                "--header", "Subject: swaks mx").stdout
    assert "<-  250 2.0.0 Ok: queued as" in out
    assert len(smtp_server.inbox("joe")) == before + 1


@needs_tls
def test_mx_starttls_pipelining(smtp_server):
    before = len(smtp_server.inbox("ann"))
    out = swaks(smtp_server.ports["smtp"], "--tls", "--pipeline", "--from", "s@remote.example",
                "--to", "ann@example.test,team@example.test").stdout
    assert "STARTTLS" in out and "TLS started" in out
    assert len(smtp_server.inbox("ann")) == before + 1


@needs_tls
@pytest.mark.parametrize("mech", ["PLAIN", "LOGIN"])
def test_submission_starttls_auth(smtp_server, mech):
    before = len(smtp_server.inbox("bob"))
    swaks(smtp_server.ports["submission"], "--tls", "--auth", mech, "--auth-user", "joe@example.test",
          "--auth-password", PASSWORD, "--from", "joe@example.test", "--to", "bob@example.test")
    assert len(smtp_server.inbox("bob")) == before + 1
    assert b"with ESMTPSA" in smtp_server.inbox("bob")[-1]


@needs_tls
def test_submissions_implicit_tls(smtp_server):
    n = len(smtp_server.queue.items)
    swaks(smtp_server.ports["submissions"], "--tlsc", "--auth", "PLAIN", "--auth-user", "ann@example.test",
          "--auth-password", PASSWORD, "--from", "ann@example.test", "--to", "friend@remote.example")
    assert smtp_server.queue.items[n][0].recipients[0].address == "friend@remote.example"


@needs_tls
def test_relay_denied_and_auth_failure(smtp_server):
    p = swaks(smtp_server.ports["smtp"], "--from", "s@remote.example", "--to", "victim@elsewhere.example", ok=False)
    assert "554 5.7.1 Relay access denied" in p.stdout
    p = swaks(smtp_server.ports["submission"], "--tls", "--auth", "PLAIN", "--auth-user", "joe@example.test",
              "--auth-password", "wrong", "--from", "joe@example.test", "--to", "bob@example.test", ok=False)
    assert "535 5.7.8" in p.stdout
    p = swaks(smtp_server.ports["submission"], "--from", "joe@example.test", "--to", "bob@example.test", ok=False)
    assert "530 5.7.0" in p.stdout


def test_size_limit_with_swaks(smtp_server, tmp_path):
    big = tmp_path / "big.txt"
    big.write_text("x" * 250_000)
    p = swaks(smtp_server.ports["smtp"], "--from", "s@remote.example", "--to", "joe@example.test",
              "--body", f"@{big}", ok=False)
    assert "552 5.3.4" in p.stdout


open_lookup_server = server_fixture("vrfy = true\nexpn = true")


def test_vrfy_and_expn_enabled(open_lookup_server):
    port = open_lookup_server.ports["smtp"]
    out = swaks(port, "--quit-after", "HELO", "--to", "joe@example.test").stdout
    assert "250" in out
    import smtplib

    with smtplib.SMTP("127.0.0.1", port) as c:
        assert c.verify("joe@example.test") == (250, b"2.1.5 <joe@example.test>")
        assert c.verify("nobody@example.test")[0] == 550
        code, text = c.expn("team@example.test")
        assert code == 250 and text.split(b"\n") == [b"2.1.5 <joe@example.test>", b"2.1.5 <ann@example.test>"]
        assert c.expn("joe@example.test") == (250, b"2.1.5 <joe@example.test>")
        assert c.expn("nobody@example.test")[0] == 550
