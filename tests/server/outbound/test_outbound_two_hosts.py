"""Two Postroom instances as two mail hosts on loopback (issue #4, "Done when").

Host A (a.test) listens on 127.0.0.2, host B (b.test) on 127.0.0.3, both on port 25
when the tests run as root and it is free (otherwise one common free port, which A
is told through ``[outbound] port``). The DNS fixture serves the MX records. Each
instance is a real ``postroom serve`` process, so restarts and SIGKILL are real.
A relays for 127.0.0.0/8 (``[smtp] trusted_networks``) so the test can submit with
smtplib without AUTH.
"""

from __future__ import annotations

import asyncio
import email
import fcntl
import os
import re
import signal
import smtplib
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dnsfixture import DnsFixture
from outbound_helpers import free_port
from postroom import protocols

pytestmark = [pytest.mark.sqlite_only("only postroom serve subprocesses: on SQLite, as in the first pass"),
              pytest.mark.skipif("smtp" not in protocols.available(),
                                 reason="the SMTP listener (postroom.smtp.server) is not in this build yet")]

A_IP, B_IP, DEAD_IP = "127.0.0.2", "127.0.0.3", "127.0.0.4"
PY = [sys.executable, "-m", "postroom.cli"]


PORT25_LOCK = Path("/tmp/postroom-outbound-port25.lock")


def pick_port() -> tuple[int, int | None]:
    """Port 25 when root and no other test run holds it, else a common free port.

    Several test runs may share this machine; two pairs of instances on 127.0.0.2:25
    would talk to each other, so port 25 is taken under an exclusive lock file and
    a run that cannot get it at once uses a random port instead.
    """
    if os.geteuid() == 0:
        fd = os.open(PORT25_LOCK, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            for ip in (A_IP, B_IP):
                s = socket.socket()
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind((ip, 25))
                s.close()
            return 25, fd
        except OSError:
            os.close(fd)
    return free_port((A_IP, B_IP, DEAD_IP)), None


class Host:
    def __init__(self, root: Path, name: str, ip: str, port: int, resolver: str, outbound: dict[str, str],
                 workers: int = 1, storage: tuple[str, ...] = (), domain: str | None = None):
        # storage: more [storage] lines (test_outbound_pg.py: a node on PostgreSQL);
        # domain: several nodes (directories) serving one domain.
        self.dir = root / name
        self.domain = domain or f"{name}.test"
        self.ip, self.port = ip, port
        self.cfg = self.dir / "postroom.toml"
        self.workers = workers
        self.proc: subprocess.Popen[str] | None = None
        self.log = self.dir / "serve.log"
        subprocess.run([*PY, "init", str(self.dir), "--domain", self.domain, "--listen", ip,
                        "--hostname", f"mx.{self.domain}"], check=True, capture_output=True)
        out = {"resolver": resolver, "port": str(port), "retry_schedule": '["1s"]', "poll_interval": '"0.2s"',
               "connect_timeout": '"2s"', "connection_idle": '"0s"', **outbound}
        lines = [f'hostname = "mx.{self.domain}"', f'domains = ["{self.domain}"]', f"workers = {workers}",
                 'log_level = "info"', "[storage]", 'path = "data"', *storage, "[tls]", 'cert = "tls/cert.pem"',
                 'key = "tls/key.pem"', "[listeners.smtp]", f'address = "{ip}:{port}"', "[smtp]",
                 'trusted_networks = ["127.0.0.1/32"]', "[outbound]"]
        lines += [f'{k} = {v if v.startswith(("[", chr(34))) or v.isdigit() else chr(34) + v + chr(34)}'
                  for k, v in out.items()]
        self.cfg.write_text("\n".join(lines) + "\n")
        if not self.cli("user", "list").count(f"user@{self.domain}"):  # a second node of a shared store
            self.cli("user", "add", f"user@{self.domain}", "--password", "pw")

    def cli(self, *args: str) -> str:
        p = subprocess.run([*PY, "-c", str(self.cfg), *args], capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stderr
        return p.stdout

    def start(self) -> "Host":
        start = self.log.stat().st_size if self.log.exists() else 0
        self.proc = subprocess.Popen([*PY, "-c", str(self.cfg), "serve"], stdout=subprocess.DEVNULL,
                                     stderr=open(self.log, "a"))
        deadline = time.time() + 20
        mark = f"listening smtp {self.ip}:{self.port}"
        while time.time() < deadline:
            assert self.proc.poll() is None, self.log.read_text()
            # our own process must be the listener (not another run's server on the same address)
            if self.log.read_text()[start:].count(mark) >= self.workers:
                socket.create_connection((self.ip, self.port), 2).close()
                return self
            time.sleep(0.1)
        raise AssertionError(f"{self.domain} never listened:\n{self.log.read_text()}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def inbox(self, user: str = "user", mailbox: str = "INBOX") -> list[bytes]:
        from pgswitch import load_as_subprocess

        from postroom.storage import open_store

        async def read() -> list[bytes]:
            cfg = load_as_subprocess(self.cfg)  # the store the subprocess serves, whatever the switch says
            store = open_store(cfg)
            await store.open()
            try:
                acct = await store.get_account(f"{user}@{self.domain}")
                box = await store.get_mailbox(acct.id, mailbox)
                return [await store.read_message(m) for m in await store.list_messages(box.id)]
            finally:
                await store.close()
        return asyncio.run(read())

    def queue_text(self) -> str:
        return self.cli("queue", "list")


def wait_for(cond, timeout: float = 20.0, what: str = "condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"{what} not reached in {timeout}s")


def submit(host: Host, to: str, subject: str = "hello", mail_options=(), rcpt_options=()) -> None:
    msg = (f"From: user@{host.domain}\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: <{subject}@x>\r\n\r\n"
           f"body of {subject}\r\n.dot line\r\n")
    with smtplib.SMTP(host.ip, host.port, timeout=10, source_address=("127.0.0.1", 0)) as s:
        s.ehlo("client.test")
        s.sendmail(f"user@{host.domain}", [to], msg.encode(), list(mail_options), list(rcpt_options))


@pytest.fixture
def net(tmp_path):
    port, lock_fd = pick_port()
    with DnsFixture() as dns_srv:
        dns_srv.mx("b.test", [(10, "mx.b.test")])
        dns_srv.a("mx.b.test", B_IP)
        dns_srv.mx("a.test", [(10, "mx.a.test")])
        dns_srv.a("mx.a.test", A_IP)
        hosts: list[Host] = []

        def make(name: str, ip: str, workers: int = 1, **outbound: str) -> Host:
            h = Host(tmp_path, name, ip, port, dns_srv.address, outbound, workers)
            hosts.append(h)
            return h
        try:
            yield dns_srv, make
        finally:
            for h in hosts:
                h.stop()
            if lock_fd is not None:
                os.close(lock_fd)


def dsn_fields(raw: bytes):
    msg = email.message_from_bytes(raw)
    assert msg.get_content_type() == "multipart/report"
    text, status, returned = msg.get_payload()
    blocks = status.get_payload()
    return msg, blocks[0], blocks[1:], returned


def test_delivery_from_one_host_to_the_other(net):
    _, make = net
    a, b = make("a", A_IP).start(), make("b", B_IP).start()
    submit(a, "user@b.test", "first")
    [raw] = wait_for(lambda: b.inbox(), what="delivery to b")
    assert b"Subject: first" in raw and b"\r\n.dot line\r\n" in raw
    assert b"body of first" in raw
    wait_for(lambda: "empty" in a.queue_text(), what="a's queue to empty")
    # One queue id ties the lines of a message together, from "queued" to "delivered".
    log = a.log.read_text()
    [qid] = re.findall(r"(\S+): queued from=<user@a\.test> to=", log)
    assert re.search(rf" id=\w+ from=<user@a\.test> to=<user@b\.test> size=\d+ local=0 remote=1 "
                     rf"outbound={qid} result=queued\n", log), log[-2000:]
    assert re.search(rf"{qid}: delivered to user@b\.test via mx\.b\.test \[{B_IP}\]: 250 ", log), log[-2000:]


def test_fallback_to_second_mx(net):
    dns_srv, make = net
    dns_srv.mx("b.test", [(10, "dead.b.test"), (20, "mx.b.test")])
    dns_srv.a("dead.b.test", DEAD_IP)  # nothing listens there
    a, b = make("a", A_IP).start(), make("b", B_IP).start()
    submit(a, "user@b.test", "fallback")
    [raw] = wait_for(lambda: b.inbox(), what="delivery through the second MX")
    assert b"Subject: fallback" in raw


def test_retry_after_temporary_failure(net):
    _, make = net
    a, b = make("a", A_IP, delay_warning="1h").start(), make("b", B_IP)  # b is down
    submit(a, "user@b.test", "retried")
    wait_for(lambda: "deferred" in a.queue_text(), what="deferral")
    assert "cannot connect" in a.queue_text()
    b.start()
    [raw] = wait_for(lambda: b.inbox(), what="delivery on retry")
    assert b"Subject: retried" in raw
    assert a.inbox() == []  # no delay notice before delay_warning


def test_bounce_after_permanent_failure_with_dsn(net):
    _, make = net
    a, b = make("a", A_IP).start(), make("b", B_IP).start()
    submit(a, "nobody@b.test", "doomed", mail_options=["RET=HDRS", "ENVID=env-42"],
           rcpt_options=["NOTIFY=FAILURE", "ORCPT=rfc822;nobody@b.test"])
    [notice] = wait_for(lambda: a.inbox(), what="the bounce in the sender's inbox")
    msg, per_msg, [rcpt], returned = dsn_fields(notice)
    assert msg["To"] == "<user@a.test>" and msg["From"].endswith("<MAILER-DAEMON@mx.a.test>")
    assert per_msg["Reporting-MTA"] == "dns; mx.a.test"
    assert per_msg["Original-Envelope-Id"] == "env-42"
    assert rcpt["Final-Recipient"] == "rfc822; nobody@b.test"
    assert rcpt["Original-Recipient"] == "rfc822; nobody@b.test"
    assert rcpt["Action"] == "failed" and rcpt["Status"].startswith("5.")
    assert rcpt["Remote-MTA"] == "dns; mx.b.test"
    assert rcpt["Diagnostic-Code"].startswith("smtp; 550")
    # RET=HDRS: only the headers come back
    assert returned.get_content_type() == "text/rfc822-headers"
    assert "Subject: doomed" in returned.get_payload() and "body of doomed" not in returned.get_payload()
    assert "empty" in a.queue_text()
    assert b.inbox() == []


def test_delay_notice_then_bounce_after_max_lifetime(net):
    _, make = net
    a = make("a", A_IP, delay_warning="1s", max_lifetime="5s").start()  # b never runs
    submit(a, "user@b.test", "expiring")
    notices = wait_for(lambda: (lambda x: x if len(x) >= 2 else None)(a.inbox()), timeout=30,
                       what="a delay notice and a bounce")
    actions = []
    for raw in notices:
        _, _, [rcpt], _ = dsn_fields(raw)
        actions.append((rcpt["Action"], rcpt["Status"]))
    assert actions == [("delayed", "4.4.1"), ("failed", "5.4.7")]
    _, _, [rcpt], returned = dsn_fields(notices[1])
    assert "delivery time expired" in rcpt["Diagnostic-Code"] and rcpt["Will-Retry-Until"] is None
    assert returned.get_content_type() == "message/rfc822"  # no RET: the full message on failure
    _, _, [rcpt], _ = dsn_fields(notices[0])
    assert rcpt["Will-Retry-Until"]
    assert "empty" in a.queue_text()


def test_queue_survives_restart_and_sigkill(net):
    _, make = net
    a, b = make("a", A_IP).start(), make("b", B_IP)
    submit(a, "user@b.test", "survivor")
    wait_for(lambda: "deferred" in a.queue_text(), what="deferral")
    a.stop(signal.SIGKILL)
    assert "user@b.test" in a.queue_text()  # still queued with nothing running
    b.start()
    a.start()
    [raw] = wait_for(lambda: b.inbox(), what="delivery after restart")
    assert b"Subject: survivor" in raw
    wait_for(lambda: "empty" in a.queue_text(), what="a's queue to empty")


def test_bounce_to_remote_sender_travels_back_with_null_sender(net):
    """A bounces mail whose sender lives on B: the notice is queued on A with the
    null reverse-path (RFC 5321 §4.5.5) and delivered to B over SMTP."""
    _, make = net
    a, b = make("a", A_IP).start(), make("b", B_IP).start()
    msg = b"From: user@b.test\r\nTo: nobody@b.test\r\nSubject: via a\r\n\r\nx\r\n"
    with smtplib.SMTP(a.ip, a.port, timeout=10, source_address=("127.0.0.1", 0)) as s:
        s.sendmail("user@b.test", ["nobody@b.test"], msg)
    [notice] = wait_for(lambda: b.inbox(), what="the notice on b")
    m, per_msg, [rcpt], _ = dsn_fields(notice)
    assert m["To"] == "<user@b.test>" and per_msg["Reporting-MTA"] == "dns; mx.a.test"
    assert rcpt["Action"] == "failed" and rcpt["Final-Recipient"] == "rfc822; nobody@b.test"
    assert b"Return-Path: <>" in notice or b"MAILER-DAEMON" in notice
    wait_for(lambda: "empty" in a.queue_text(), what="a's queue to empty")


def test_two_workers_one_runner(net):
    """workers = 2: both accept and enqueue, exactly one runs deliveries (the lock file)."""
    _, make = net
    a, b = make("a", A_IP, workers=2).start(), make("b", B_IP).start()
    for i in range(6):  # SO_REUSEPORT spreads these over both workers
        submit(a, "user@b.test", f"w{i}")
    got = wait_for(lambda: (lambda x: x if len(x) == 6 else None)(b.inbox()), what="six deliveries")
    assert sorted(m.split(b"Subject: ")[1].split(b"\r\n")[0] for m in got) == [b"w%d" % i for i in range(6)]
    assert a.log.read_text().count("outbound queue runner started") == 1
