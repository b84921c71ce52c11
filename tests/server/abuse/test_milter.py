"""Milters ([smtp] milters) against a real Postroom, with real milters on loopback ports:
tests/miltertest.py (purepythonmilter, a child process), a scripted milter and dead or
silent sockets (tests/milterpeer.py), and OpenDKIM in milter mode signing what an
authenticated user submits."""

from __future__ import annotations

import asyncio
import os
import shutil
import smtplib
import subprocess
import time
from collections.abc import Iterator

import milterpeer
import pytest
from dnsfixture import DnsFixture
from scanner_harness import smtp_harness

from postroom.mailauth.dkim import verify
from postroom.mailauth.keys import keygen
from postroom.resolver import DnsSettings, Resolver

H = smtp_harness()
DOMAIN, PASSWORD = H.DOMAIN, H.PASSWORD


def msg(subject: str, body: str = "hello milters\r\n", extra: str = "") -> bytes:
    return (f"From: Ann <ann@{DOMAIN}>\r\nTo: joe@{DOMAIN}\r\nSubject: {subject}\r\n"
            f"Date: Mon, 01 Jan 2024 12:00:00 +0000\r\nMessage-ID: <{time.monotonic_ns()}@{DOMAIN}>\r\n"
            f"{extra}\r\n{body}").encode()


def start(tmp_path_factory: pytest.TempPathFactory, smtp_section: str):  # type: ignore[no-untyped-def]
    return H.SmtpServer(tmp_path_factory.mktemp("milter"), smtp_section=smtp_section).start()


def head(raw: bytes) -> bytes:
    return raw.split(b"\r\n\r\n", 1)[0] + b"\r\n"


def submit(port: int, sender: str, rcpts: list[str], data: bytes) -> None:
    with smtplib.SMTP_SSL("127.0.0.1", port, context=H.client_tls(), timeout=30) as c:
        c.login(sender, PASSWORD)
        c.sendmail(sender, rcpts, data)


# -- tests/miltertest.py on every listener -------------------------------------------------------

@pytest.fixture(scope="module")
def mt(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    pytest.importorskip("purepythonmilter", reason="pip install -e '.[test]' installs purepythonmilter")
    proc, port = milterpeer.spawn_miltertest()
    # Submission (587) also goes through a scripted milter on a unix socket, after miltertest.
    scripted = milterpeer.ScriptedMilter(tmp_path_factory.mktemp("sock") / "scripted.sock")
    srv = start(tmp_path_factory, f'milters = ["inet:127.0.0.1:{port}", '
                                  f'{{ socket = "{scripted.address}", listeners = ["submission"] }}]')
    srv.scripted = scripted
    yield srv
    srv.stop()
    scripted.close()
    milterpeer.stop(proc)


def test_header_added_and_macros_of_an_anonymous_client(mt) -> None:  # type: ignore[no-untyped-def]
    before = len(mt.inbox("joe"))
    with smtplib.SMTP("127.0.0.1", mt.ports["smtp"], timeout=30) as c:
        c.sendmail("someone@remote.example", [f"joe@{DOMAIN}"], msg("plain"))
    raw = mt.wait_inbox("joe", before + 1)[-1]
    h = head(raw)
    assert b"\r\nX-Miltertest: checked\r\n" in h
    assert b"\r\nX-Miltertest-Auth: none\r\n" in h and b"\r\nX-Miltertest-Daemon: smtp\r\n" in h
    assert raw.endswith(b"\r\n\r\nhello milters\r\n")


def test_authenticated_user_is_named_to_the_milter(mt) -> None:  # type: ignore[no-untyped-def]
    before = len(mt.inbox("bob"))
    submit(mt.ports["submissions"], f"ann@{DOMAIN}", [f"bob@{DOMAIN}"], msg("from ann"))
    h = head(mt.wait_inbox("bob", before + 1)[-1])
    assert f"\r\nX-Miltertest-Auth: ann@{DOMAIN}\r\n".encode() in h
    assert b"\r\nX-Miltertest-Daemon: submissions\r\n" in h


def test_milters_in_a_row_over_a_unix_socket(mt) -> None:  # type: ignore[no-untyped-def]
    before = len(mt.inbox("dora"))
    with smtplib.SMTP("127.0.0.1", mt.ports["submission"], timeout=30) as c:
        c.starttls(context=H.client_tls())
        c.login(f"ann@{DOMAIN}", PASSWORD)
        c.sendmail(f"ann@{DOMAIN}", [f"dora@{DOMAIN}"], msg("two milters"))
    h = head(mt.wait_inbox("dora", before + 1)[-1])
    assert b"\r\nX-Scripted: on top\r\nFrom: Ann" in h and b"\r\nX-Miltertest: checked\r\n" in h
    # the second milter was shown the field the first one added
    assert (b"L", b"X-Miltertest\0checked\0") in mt.scripted.seen


def test_reject_gives_550_with_the_milters_text(mt) -> None:  # type: ignore[no-untyped-def]
    before = len(mt.inbox("joe"))
    with smtplib.SMTP("127.0.0.1", mt.ports["smtp"], timeout=30) as c:
        with pytest.raises(smtplib.SMTPDataError) as exc:
            c.sendmail("someone@remote.example", [f"joe@{DOMAIN}"], msg("please REJECT-ME"))
        assert exc.value.smtp_code == 550
        assert exc.value.smtp_error == b"5.7.1 rejected by miltertest: marker found"
        # the connection goes on: the next message is accepted (the milter got ABORT)
        c.sendmail("someone@remote.example", [f"joe@{DOMAIN}"], msg("after a reject"))
    msgs = mt.wait_inbox("joe", before + 1)
    assert len(msgs) == before + 1 and b"Subject: after a reject" in msgs[-1]


def test_tempfail_and_discard(mt) -> None:  # type: ignore[no-untyped-def]
    before = len(mt.inbox("joe"))
    with smtplib.SMTP("127.0.0.1", mt.ports["smtp"], timeout=30) as c:
        with pytest.raises(smtplib.SMTPDataError) as exc:
            c.sendmail("someone@remote.example", [f"joe@{DOMAIN}"], msg("TEMPFAIL-ME"))
        assert (exc.value.smtp_code, exc.value.smtp_error) == (451, b"4.7.1 miltertest is busy")
        assert c.sendmail("someone@remote.example", [f"joe@{DOMAIN}"], msg("DISCARD-ME")) == {}
    time.sleep(0.2)
    assert len(mt.inbox("joe")) == before


def test_a_recipient_refused_by_the_milter_is_refused_alone(mt) -> None:  # type: ignore[no-untyped-def]
    before = len(mt.inbox("carl"))
    queued = len(mt.queue.items)
    with smtplib.SMTP_SSL("127.0.0.1", mt.ports["submissions"], context=H.client_tls(), timeout=30) as c:
        c.login(f"ann@{DOMAIN}", PASSWORD)
        assert c.mail(f"ann@{DOMAIN}")[0] == 250
        assert c.rcpt("blocked@remote.example") == (550, b"5.7.1 recipient blocked by miltertest")
        assert c.rcpt(f"carl@{DOMAIN}")[0] == 250
        assert c.data(msg("one refused"))[0] == 250
    assert len(mt.wait_inbox("carl", before + 1)) == before + 1
    assert len(mt.queue.items) == queued  # nothing for the refused remote recipient


def test_modifications_subject_body_recipients(mt) -> None:  # type: ignore[no-untyped-def]
    counts = {u: len(mt.inbox(u)) for u in ("joe", "carl", "dora")}
    with smtplib.SMTP("127.0.0.1", mt.ports["smtp"], timeout=30) as c:
        c.sendmail("someone@remote.example", [f"joe@{DOMAIN}", f"dora@{DOMAIN}"],
                   msg(f"CHANGE-SUBJECT NEW-BODY ADD-RCPT carl@{DOMAIN} DEL-RCPT dora@{DOMAIN}"))
    joe = mt.wait_inbox("joe", counts["joe"] + 1)[-1]
    carl = mt.wait_inbox("carl", counts["carl"] + 1)[-1]
    for raw in (joe, carl):
        assert b"\r\nSubject: changed by miltertest\r\n" in head(raw)
        assert b"CHANGE-SUBJECT" not in raw
        assert raw.endswith(b"\r\n\r\nreplaced by miltertest\r\n")
    assert len(mt.inbox("dora")) == counts["dora"]


def test_rset_then_a_new_transaction(mt) -> None:  # type: ignore[no-untyped-def]
    before = len(mt.inbox("joe"))
    with smtplib.SMTP("127.0.0.1", mt.ports["smtp"], timeout=30) as c:
        c.ehlo()
        assert c.mail("first@remote.example")[0] == 250
        assert c.rcpt(f"joe@{DOMAIN}")[0] == 250
        c.rset()
        c.sendmail("second@remote.example", [f"joe@{DOMAIN}"], msg("after RSET"))
    raw = mt.wait_inbox("joe", before + 1)[-1]
    assert b"Subject: after RSET" in raw and b"X-Miltertest: checked" in raw


# -- milters that are down, silent or scripted ---------------------------------------------------

@pytest.fixture(scope="module")
def broken(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    dead = milterpeer.closed_port()
    silent = milterpeer.silent_port()
    scripted = milterpeer.ScriptedMilter()
    srv = start(tmp_path_factory, f"""
milters = [
  {{ socket = "inet:127.0.0.1:{dead}", listeners = ["smtp"] }},
  {{ socket = "inet:127.0.0.1:{dead}", default_action = "accept", listeners = ["submission"] }},
  {{ socket = "inet:127.0.0.1:{scripted.port}", content_timeout = "1s", listeners = ["submissions"] }},
  {{ socket = "inet:127.0.0.1:{silent.getsockname()[1]}", connect_timeout = "0.5s", default_action = "accept", listeners = ["submissions"] }},
]
allow_plaintext_auth = true
""")
    srv.scripted = scripted
    yield srv
    srv.stop()
    scripted.close()
    silent.close()


def test_dead_milter_tempfails_by_default(broken) -> None:  # type: ignore[no-untyped-def]
    with smtplib.SMTP("127.0.0.1", broken.ports["smtp"], timeout=30) as c:
        assert c.ehlo()[0] == 250  # the refusal comes at MAIL, as in Postfix
        assert c.mail("someone@remote.example") == (451, b"4.7.1 Service unavailable - try again later")


def test_dead_milter_with_accept_lets_mail_through(broken) -> None:  # type: ignore[no-untyped-def]
    before = len(broken.inbox("joe"))
    with smtplib.SMTP("127.0.0.1", broken.ports["submission"], timeout=30) as c:
        c.login(f"ann@{DOMAIN}", PASSWORD)
        c.sendmail(f"ann@{DOMAIN}", [f"joe@{DOMAIN}"], msg("through a dead milter"))
    assert b"Subject: through a dead milter" in broken.wait_inbox("joe", before + 1)[-1]


def test_scripted_insheader_delete_and_progress(broken) -> None:  # type: ignore[no-untyped-def]
    # The silent milter (connect timeout 0.5 s, accept) is skipped after its timeout.
    before = len(broken.inbox("joe"))
    submit(broken.ports["submissions"], f"ann@{DOMAIN}", [f"joe@{DOMAIN}"],
           msg("scripted", extra="X-Remove-Me: yes\r\n"))
    raw = broken.wait_inbox("joe", before + 1)[-1]
    h = head(raw)
    assert b"X-Remove-Me" not in h
    # On top of the message as received (our Return-Path and Received come above it).
    assert b"\r\nX-Scripted: on top\r\nFrom: Ann" in h
    seen = broken.scripted.seen
    macros = [p for c, p in seen if c == b"D" and p[:1] == b"M"]
    assert any(f"{{auth_authen}}\0ann@{DOMAIN}\0".encode() in p for p in macros)
    assert (b"R", f"<joe@{DOMAIN}>\0".encode()) in seen


def test_quarantine_goes_to_junk(broken) -> None:  # type: ignore[no-untyped-def]
    async def junk() -> list[bytes]:
        store = broken.ctx.store
        acct = await store.get_account(f"dora@{DOMAIN}")
        mbox = await store.get_mailbox(acct.id, "Junk")
        return [] if mbox is None else [await store.read_message(m) for m in await store.list_messages(mbox.id)]

    before_inbox, before_junk = len(broken.inbox("dora")), len(broken.call(junk()))
    submit(broken.ports["submissions"], f"ann@{DOMAIN}", [f"dora@{DOMAIN}"], msg("QUARANTINE this"))
    deadline = time.monotonic() + 5
    while len(broken.call(junk())) == before_junk and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(broken.call(junk())) == before_junk + 1
    assert len(broken.inbox("dora")) == before_inbox


def test_hung_milter_hits_the_content_timeout(broken) -> None:  # type: ignore[no-untyped-def]
    with smtplib.SMTP_SSL("127.0.0.1", broken.ports["submissions"], context=H.client_tls(), timeout=30) as c:
        c.login(f"ann@{DOMAIN}", PASSWORD)
        c.mail(f"ann@{DOMAIN}")
        c.rcpt(f"joe@{DOMAIN}")
        t0 = time.monotonic()
        code, text = c.data(msg("HANG"))
        waited = time.monotonic() - t0
        assert (code, text) == (451, b"4.7.1 Service unavailable - try again later")
        assert 0.9 < waited < 10
        # tempfail: the rest of the connection is refused too (the milter is gone)
        assert c.mail(f"ann@{DOMAIN}")[0] == 451


# -- OpenDKIM in milter mode ---------------------------------------------------------------------

OPENDKIM = shutil.which("opendkim", path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")


@pytest.fixture(scope="module")
def dkim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    if OPENDKIM is None:
        pytest.skip("OpenDKIM is not installed (scripts/install-test-deps.sh installs opendkim)")
    work = tmp_path_factory.mktemp("opendkim")
    key = keygen(work / "keys", DOMAIN, "milter1", "rsa")
    port = milterpeer.free_port()
    conf = work / "opendkim.conf"
    conf.write_text("\n".join([
        "Mode s",
        f"Domain {DOMAIN}",
        f"Selector {key.selector}",
        f"KeyFile {key.path}",
        f"Socket inet:{port}@127.0.0.1",
        "Canonicalization relaxed/simple",
        # Loopback is not an internal host here: only {auth_type} (an authenticated
        # client) makes OpenDKIM sign what Postroom shows it.
        "InternalHosts 192.0.2.1",
        "Syslog no",
        "Background no",
        "RequireSafeKeys no",
        f"PidFile {work / 'opendkim.pid'}",
    ]) + "\n")
    proc = subprocess.Popen([OPENDKIM, "-f", "-x", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    milterpeer.wait_port(port, proc)
    with DnsFixture() as dns_srv:
        dns_srv.txt(key.record_name, key.txt_record())
        srv = start(tmp_path_factory, f'milters = ["inet:127.0.0.1:{port}"]')
        srv.dns = dns_srv
        yield srv
        srv.stop()
    milterpeer.stop(proc)


def test_opendkim_signs_what_an_authenticated_user_submits(dkim) -> None:  # type: ignore[no-untyped-def]
    before = len(dkim.inbox("bob"))
    submit(dkim.ports["submissions"], f"ann@{DOMAIN}", [f"bob@{DOMAIN}"], msg("signed by OpenDKIM"))
    raw = dkim.wait_inbox("bob", before + 1)[-1]
    assert b"DKIM-Signature:" in head(raw)
    resolver = Resolver(DnsSettings(nameserver=(dkim.dns.host, dkim.dns.port), timeout=5.0, attempts=1))
    results = asyncio.run(verify(resolver, raw, 10.0))
    assert [(r.result, r.selector) for r in results] == [("pass", "milter1")]


def test_opendkim_leaves_anonymous_mail_unsigned(dkim) -> None:  # type: ignore[no-untyped-def]
    before = len(dkim.inbox("bob"))
    with smtplib.SMTP("127.0.0.1", dkim.ports["smtp"], timeout=30) as c:
        c.sendmail(f"ann@{DOMAIN}", [f"bob@{DOMAIN}"], msg("not signed"))
    raw = dkim.wait_inbox("bob", before + 1)[-1]
    assert b"DKIM-Signature:" not in head(raw)
