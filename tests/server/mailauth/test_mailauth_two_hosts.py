"""Mail authentication between two real Postroom hosts (issue #13, "Done when").

Host A (a.test, 127.0.0.2) signs what its users send; host B (b.test, 127.0.0.3) checks
what arrives on its MX listener and forwards an alias to A with an ARC seal. A stranger
(127.0.0.9) forges mail. Every DNS record lives in the DNS fixture; each host is a real
``postroom serve`` process (the harness of tests/server/outbound/test_outbound_two_hosts.py).
"""

from __future__ import annotations

import email
import smtplib
import subprocess
import sys
import time

import dkim
import pytest

from dnsfixture import DnsFixture
from postroom.mailauth import keys as dkim_keys
from test_outbound_two_hosts import A_IP, B_IP, PY, Host, submit, wait_for

pytestmark = pytest.mark.sqlite_only("only postroom serve subprocesses: on SQLite, as in the first pass")

STRANGER_IP = "127.0.0.9"


def publish(dns_srv: DnsFixture, key: dkim_keys.DkimKey) -> None:
    dns_srv.txt(key.record_name, key.txt_record())


def setup_a(dns_srv: DnsFixture, make) -> Host:
    a = make("a", A_IP, source_address=A_IP)
    for alg in ("rsa", "ed25519"):
        publish(dns_srv, dkim_keys.keygen(a.dir / "data", "a.test", algorithm=alg))
    dns_srv.txt("a.test", f"v=spf1 ip4:{A_IP} -all")
    dns_srv.txt("_dmarc.a.test", "v=DMARC1; p=reject; adkim=s; aspf=s")
    return a


def setup_b(dns_srv: DnsFixture, make, extra: str = "") -> Host:
    b = make("b", B_IP, source_address=B_IP)
    publish(dns_srv, dkim_keys.keygen(b.dir / "data", "b.test", algorithm="rsa"))
    dns_srv.txt("b.test", f"v=spf1 ip4:{B_IP} -all")
    if extra:
        b.cfg.write_text(b.cfg.read_text() + extra)
    return b


def ar_headers(raw: bytes) -> list[str]:
    return [" ".join(v.split()) for v in email.message_from_bytes(raw).get_all("Authentication-Results", [])]


def send_as_stranger(host: Host, mail_from: str, to: str, msg: bytes, helo: str = "stranger.test") -> None:
    with smtplib.SMTP(host.ip, host.port, timeout=30, source_address=(STRANGER_IP, 0)) as s:
        s.ehlo(helo)
        s.sendmail(mail_from, [to], msg)


def test_mail_signed_at_a_passes_every_check_at_b(net) -> None:
    dns_srv, make = net
    a, b = setup_a(dns_srv, make).start(), setup_b(dns_srv, make).start()
    forged_ar = b"Authentication-Results: mx.b.test; dkim=pass header.d=bank.test\r\n"
    msg = (b"From: user@a.test\r\nTo: user@b.test\r\nSubject: signed\r\nMessage-ID: <signed@a.test>\r\n"
           + forged_ar + b"\r\nhello from a\r\n")
    with smtplib.SMTP(a.ip, a.port, timeout=10, source_address=("127.0.0.1", 0)) as s:
        s.sendmail("user@a.test", ["user@b.test"], msg)
    # postroom sendmail: a local program's mail is signed too.
    p = subprocess.run([*PY, "-c", str(a.cfg), "sendmail", "-f", "user@a.test", "user@b.test"],
                       input=b"From: user@a.test\r\nSubject: from a program\r\n\r\ncron says hi\r\n",
                       capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr
    got = wait_for(lambda: (m := b.inbox()) and len(m) == 2 and m, what="delivery to b")
    for raw in got:
        sigs = email.message_from_bytes(raw).get_all("DKIM-Signature")
        assert len(sigs) == 2 and all("d=a.test" in " ".join(s.split()) for s in sigs), raw[:1500]
        [ar] = ar_headers(raw)  # the forged one claiming mx.b.test is gone; ours is the only one
        assert ar.startswith("mx.b.test;"), ar
        assert "spf=pass" in ar and "smtp.mailfrom=a.test" in ar, ar
        assert ar.count("dkim=pass") == 2 and "header.a=ed25519-sha256" in ar and "header.a=rsa-sha256" in ar, ar
        assert "dmarc=pass" in ar and "header.from=a.test" in ar, ar
        assert b"bank.test" not in raw
    log = b.log.read_text()
    assert "removed 1 forged Authentication-Results" in log, log[-3000:]
    assert "spf=pass dkim=pass,pass dmarc=pass" in log, log[-3000:]


def test_forged_from_is_refused_at_end_of_data(net) -> None:
    dns_srv, make = net
    setup_a(dns_srv, make)
    b = setup_b(dns_srv, make).start()
    msg = b"From: ceo@a.test\r\nTo: user@b.test\r\nSubject: wire the money\r\n\r\nnow\r\n"
    with pytest.raises(smtplib.SMTPDataError) as exc:
        send_as_stranger(b, "ceo@a.test", "user@b.test", msg)
    assert exc.value.smtp_code == 550 and b"5.7.1" in exc.value.smtp_error, exc.value
    assert b"DMARC" in exc.value.smtp_error
    assert b.inbox() == []
    assert "result=rejected" in b.log.read_text()


def test_quarantine_policy_files_into_junk_and_headers_only_mode_delivers(net) -> None:
    dns_srv, make = net
    dns_srv.txt("_dmarc.q.test", "v=DMARC1; p=quarantine")
    dns_srv.txt("q.test", "v=spf1 -all")
    b = setup_b(dns_srv, make, '[mailauth.domains."b.test"]\nenforce = true\n').start()
    send_as_stranger(b, "x@q.test", "user@b.test", b"From: x@q.test\r\nSubject: spoof\r\n\r\nbody\r\n")
    [junk] = wait_for(lambda: b.inbox(mailbox="Junk"), what="quarantine")
    [ar] = ar_headers(junk)
    assert "spf=fail" in ar and "dmarc=fail" in ar, ar
    assert b.inbox() == []


def test_headers_only_mode(net) -> None:
    dns_srv, make = net
    setup_a(dns_srv, make)
    b = setup_b(dns_srv, make, "[mailauth]\nenforce = false\n").start()
    send_as_stranger(b, "ceo@a.test", "user@b.test", b"From: ceo@a.test\r\nSubject: forged\r\n\r\nx\r\n")
    [raw] = wait_for(lambda: b.inbox(), what="delivery")
    [ar] = ar_headers(raw)
    assert "dmarc=fail" in ar and "spf=fail" in ar, ar


def test_arc_chain_survives_a_forward_by_postroom(net, tmp_path) -> None:
    dns_srv, make = net
    a = setup_a(dns_srv, make)
    b = setup_b(dns_srv, make)
    b.cli("alias", "add", "fwd@b.test", "user@a.test")
    # The origin: o.test signs with its own key and publishes SPF for the stranger's address.
    okey = dkim_keys.keygen(tmp_path / "origin", "o.test", algorithm="rsa")
    publish(dns_srv, okey)
    dns_srv.txt("o.test", f"v=spf1 ip4:{STRANGER_IP} -all")
    dns_srv.txt("_dmarc.o.test", "v=DMARC1; p=reject")
    body = b"From: news@o.test\r\nTo: fwd@b.test\r\nSubject: newsletter\r\nMessage-ID: <n1@o.test>\r\n\r\nnews\r\n"
    sig = dkim.sign(body, okey.selector.encode(), b"o.test", okey.private_pem(),
                    include_headers=[b"from", b"to", b"subject", b"message-id"])
    a.start(), b.start()
    send_as_stranger(b, "news@o.test", "fwd@b.test", sig + body)
    [raw] = wait_for(lambda: a.inbox(), what="the forwarded copy at a")
    m = email.message_from_bytes(raw)
    assert m["ARC-Seal"] and "d=b.test" in " ".join(m["ARC-Seal"].split()) and "i=1" in m["ARC-Seal"]
    aar = " ".join(m["ARC-Authentication-Results"].split())
    assert "mx.b.test" in aar and "spf=pass" in aar and "dkim=pass" in aar, aar
    [ar] = [h for h in ar_headers(raw) if h.startswith("mx.a.test")]
    # At A the SPF of o.test fails (B's address is not in it): the ARC chain tells A what B saw.
    assert "spf=fail" in ar and "arc=pass" in ar, ar
    # dkimpy's own ARC verifier agrees, against the same DNS.
    import dns.resolver

    res = dns.resolver.Resolver(configure=False)
    res.nameservers, res.port = [dns_srv.host], dns_srv.port

    def txt(name: bytes, timeout: float = 5) -> bytes | None:
        try:
            return b"".join(next(iter(res.resolve(name.decode().rstrip("."), "TXT"))).strings)
        except Exception:
            return None
    cv, _, reason = dkim.arc_verify(raw, dnsfunc=txt)
    assert cv == dkim.CV_Pass, reason


@pytest.mark.skipif(sys.platform != "linux", reason="loopback aliases")
def test_unchecked_when_authenticated_or_trusted(net) -> None:
    """Mail from a trusted network is not checked (no Authentication-Results of ours)."""
    dns_srv, make = net
    b = setup_b(dns_srv, make).start()
    submit(b, "user@b.test", "local")
    [raw] = wait_for(lambda: b.inbox(), what="delivery")
    assert ar_headers(raw) == []


def test_dns_that_never_answers_is_a_temporary_refusal_in_bounded_time(net) -> None:
    dns_srv, make = net
    for name in ("silent.test", "_dmarc.silent.test"):
        dns_srv.silent(name)
    b = setup_b(dns_srv, make, '[mailauth]\ntimeout = "2s"\n').start()
    t0 = time.monotonic()
    with pytest.raises(smtplib.SMTPDataError) as exc:
        send_as_stranger(b, "x@silent.test", "user@b.test", b"From: x@silent.test\r\nSubject: s\r\n\r\nx\r\n")
    elapsed = time.monotonic() - t0
    assert exc.value.smtp_code == 451 and b"4.4.3" in exc.value.smtp_error, exc.value
    assert elapsed < 8, elapsed
    assert b.inbox() == []
    # the session goes on: the next message from a domain whose DNS answers is taken
    dns_srv.txt("ok.test", f"v=spf1 ip4:{STRANGER_IP} -all")
    send_as_stranger(b, "x@ok.test", "user@b.test", b"From: x@ok.test\r\nSubject: ok\r\n\r\nx\r\n")
    [raw] = wait_for(lambda: b.inbox(), what="delivery")
    assert "spf=pass" in ar_headers(raw)[0]
