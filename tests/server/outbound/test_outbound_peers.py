"""Delivery to real SMTP implementations: aiosmtpd (STARTTLS, AUTH to a smart host) and
Postfix's smtp-sink (a peer that is not Postroom)."""

import asyncio
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from dnsfixture import DnsFixture
from outbound_helpers import deliver_all, free_port
from postroom.net.tls import write_self_signed
from postroom.outbound.api import Envelope, Recipient

RAW = b"From: a@here.test\r\nTo: b@there.test\r\nSubject: hi\r\n\r\nhello\r\n"


class Sink:
    def __init__(self):
        self.envelopes = []
        self.tls = []

    async def handle_DATA(self, server, session, envelope):
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        self.tls.append(session.ssl is not None)
        return "250 2.0.0 stored"


def tls_context(tmp_path):
    import ssl

    write_self_signed(tmp_path / "c.pem", tmp_path / "k.pem", "mx.there.test")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(tmp_path / "c.pem", tmp_path / "k.pem")
    return ctx


@pytest.fixture
def dns_srv():
    with DnsFixture() as srv:
        srv.mx("there.test", [(10, "mx1.there.test")])
        srv.a("mx1.there.test", "127.0.0.2")
        srv.a("smart.test", "127.0.0.4")
        yield srv


def test_opportunistic_starttls_with_aiosmtpd(tmp_path, dns_srv):
    port = free_port()
    handler = Sink()
    ctl = Controller(handler, hostname="127.0.0.2", port=port, tls_context=tls_context(tmp_path),
                     require_starttls=True)
    ctl.start()
    try:
        asyncio.run(deliver_all(tmp_path, {"resolver": dns_srv.address, "port": port},
                                [(Envelope("a@here.test", (Recipient("b@there.test"),)), RAW)]))
    finally:
        ctl.stop()
    [(sender, rcpts, content)] = handler.envelopes
    assert sender == "a@here.test" and rcpts == ["b@there.test"] and content == RAW
    assert handler.tls == [True]


def test_smart_host_with_auth(tmp_path, dns_srv):
    port = free_port()
    handler = Sink()
    logins = []

    def authenticator(server, session, envelope, mechanism, auth_data):
        logins.append((mechanism, auth_data.login, auth_data.password))
        return AuthResult(success=auth_data.login == b"relayuser" and auth_data.password == b"s3cret")

    ctl = Controller(handler, hostname="127.0.0.4", port=port, tls_context=tls_context(tmp_path),
                     authenticator=authenticator, auth_require_tls=True)
    ctl.start()
    try:
        # two domains, one of them without any MX: all go through the smart host
        asyncio.run(deliver_all(tmp_path, {
            "resolver": dns_srv.address, "port": 1, "relay_host": f"smart.test:{port}",
            "relay_user": "relayuser", "relay_password": "s3cret", "relay_tls": "required"},
            [(Envelope("a@here.test", (Recipient("b@there.test"), Recipient("c@nowhere.test"))), RAW)]))
    finally:
        ctl.stop()
    assert [m for m, _, _ in logins] == ["PLAIN"]
    [(sender, rcpts, _)] = handler.envelopes
    assert rcpts == ["b@there.test", "c@nowhere.test"] and handler.tls == [True]


@pytest.mark.skipif(not shutil.which("smtp-sink"), reason="Postfix smtp-sink not installed "
                    "(bash scripts/install-test-deps.sh)")
def test_delivery_to_postfix_smtp_sink(tmp_path, dns_srv):
    port = free_port()
    import tempfile

    # smtp-sink drops to "nobody" when root, who cannot enter pytest's private tmp_path
    dump = Path(tempfile.mkdtemp(prefix="postroom-sink-"))
    # -u: drop privileges when root; -D: one file per transaction; -c: count
    args = ["smtp-sink", "-D", str(dump / "%M.%s"), f"127.0.0.2:{port}", "64"]
    import os
    if os.geteuid() == 0:
        args[1:1] = ["-u", "nobody"]
        dump.chmod(0o777)
    sink = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        time.sleep(0.3)
        assert sink.poll() is None, sink.stderr.read()

        ctx = asyncio.run(deliver_all(tmp_path, {"resolver": dns_srv.address, "port": port}, [
            (Envelope("a@here.test", (Recipient(f"u{i}@there.test", ("SUCCESS",)),), envid=f"E{i}", ret="HDRS"),
             RAW + b"%d\r\n" % i) for i in range(20)], timeout=30))
    finally:
        sink.terminate()
        sink.wait()
        files = list(dump.iterdir())
        bodies = b"".join(f.read_bytes() for f in files)
        shutil.rmtree(dump, ignore_errors=True)
    # smtp-sink offers DSN, so NOTIFY=SUCCESS was passed on and no notice came from us
    assert ctx.store.delivered == []
    assert files
    # smtp-sink may append several transactions to one dump file: count the recipients
    for i in range(20):
        assert b"u%d@there.test" % i in bodies
    assert bodies.count(b"\nhello\n") == 20  # the dump has LF line ends
    assert b"RET=HDRS ENVID=E0" in bodies and b"NOTIFY=SUCCESS" in bodies  # DSN passed on
