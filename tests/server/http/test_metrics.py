"""``/metrics`` of a real ``postroom serve`` with two workers, read as Prometheus would.

Mail is sent with ``smtplib`` and read with ``imaplib`` and ``poplib``; every scrape goes
over HTTP to whichever worker the kernel picks and is parsed with
``prometheus_client``'s own text parser. The counters must move by exactly what the
test did, whichever worker served it: that is the multiprocess aggregation at work.
"""

from __future__ import annotations

import imaplib
import os
import poplib
import signal
import smtplib
import socket
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cli.serving import Serving, _free_port, make_server_dir

from postroom import protocols
from postroom.cli import main
from postroom.config import load
from postroom.http.metrics import MAX_AGE

prometheus_parser = pytest.importorskip("prometheus_client.parser")

USER, PASSWORD = "m@example.test", "metrics test password"
pytestmark = [pytest.mark.sqlite_only("a postroom serve subprocess (on SQLite) serves the user added in-process"),
              pytest.mark.skipif(not {"smtp", "imap", "pop3", "http"} <= protocols.available(),
                                 reason="needs the SMTP, IMAP, POP3 and HTTP listeners")]

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


class Server:
    def __init__(self, serving: Serving, ports: dict[str, int], data_dir: Path) -> None:
        self.serving = serving
        self.ports = ports
        self.data_dir = data_dir

    def fetch(self, path: str = "/metrics", listener: str = "http") -> tuple[int, bytes]:
        url = f"http://127.0.0.1:{self.ports[listener]}{path}"
        try:
            with urllib.request.urlopen(url, timeout=20) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def scrape(self) -> Samples:
        time.sleep(MAX_AGE + 0.05)  # past the age at which a worker renders anew
        status, body = self.fetch()
        assert status == 200, body
        out: Samples = {}
        for family in prometheus_parser.text_string_to_metric_families(body.decode()):
            for s in family.samples:
                out[(s.name, frozenset(s.labels.items()))] = s.value
        return out


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def moved(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def _no_verify() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


class Relay:
    """The smart host outbound mail goes to: accepts ok@, defers later@, refuses bad@."""

    async def handle_RCPT(self, server: object, session: object, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        if address.startswith("later@"):
            return "451 4.3.0 try again later"
        if address.startswith("bad@"):
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: object, session: object, envelope: Any) -> str:
        return "250 OK"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    controller = pytest.importorskip("aiosmtpd.controller")
    relay_port = _free_port()
    relay = controller.Controller(Relay(), hostname="127.0.0.1", port=relay_port)
    relay.start()
    d = tmp_path_factory.mktemp("metrics")
    cfgp = make_server_dir(d / "s", workers=2)
    # A listener on the wildcard address: public, so it must not serve /metrics by default.
    cfgp.write_text(cfgp.read_text() + f'\n[listeners.public]\nprotocol = "http"\n'
                                       f'address = "0.0.0.0:{_free_port()}"\ntls = "none"\n'
                                       f'[outbound]\nrelay_host = "127.0.0.1:{relay_port}"\nrelay_tls = "none"\n'
                                       f'poll_interval = "0.2s"\n')
    assert main(["-c", str(cfgp), "user", "add", USER, "--password", PASSWORD]) == 0
    srv = Serving(cfgp, workers=2)
    try:
        ports = srv.wait_listening()
        yield Server(srv, ports, load(cfgp).data_dir)
    finally:
        srv.stop()
        relay.stop()


def _until(check, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_counters_move_when_mail_is_sent_and_read(server: Server) -> None:
    before = server.scrape()
    assert value(before, "postroom_workers_alive") == 2  # both workers' files merged
    msg = f"From: a@remote.test\r\nTo: {USER}\r\nSubject: metrics\r\n\r\nhello\r\n"
    for _ in range(3):
        with smtplib.SMTP("127.0.0.1", server.ports["smtp"], timeout=20) as c:
            c.sendmail("a@remote.test", [USER], msg)
    imap = imaplib.IMAP4_SSL("127.0.0.1", server.ports["imaps"], ssl_context=_no_verify(), timeout=20)
    imap.login(USER, PASSWORD)
    typ, data = imap.select("INBOX")
    assert typ == "OK" and int(data[0]) == 3
    typ, _ = imap.fetch("1:3", "(BODY[])")
    assert typ == "OK"
    imap.logout()
    bad = imaplib.IMAP4_SSL("127.0.0.1", server.ports["imaps"], ssl_context=_no_verify(), timeout=20)
    with pytest.raises(imaplib.IMAP4.error):
        bad.login(USER, "wrong password")
    bad.logout()
    pop = poplib.POP3_SSL("127.0.0.1", server.ports["pop3s"], context=_no_verify(), timeout=20)
    pop.user(USER)
    pop.pass_(PASSWORD)
    count, _ = pop.stat()
    assert count == 3
    pop.quit()
    # A client that speaks plaintext to an implicit-TLS port fails its handshake.
    with socket.create_connection(("127.0.0.1", server.ports["imaps"]), timeout=20) as s:
        s.sendall(b"a1 LOGIN x y\r\n")
        s.recv(100)

    after: Samples = {}

    def settled() -> bool:
        nonlocal after
        after = server.scrape()
        # Sessions end on the server a moment after the client has gone.
        return all(value(after, "postroom_connections_open", protocol=p) == 0 for p in ("smtp", "imap", "pop3"))

    _until(settled)
    assert moved(before, after, "postroom_messages_total", source="smtp", result="accepted", reason="") == 3
    assert moved(before, after, "postroom_local_deliveries_total") == 3
    assert moved(before, after, "postroom_logins_total", result="ok") == 2
    assert moved(before, after, "postroom_logins_total", result="failed") == 1
    assert moved(before, after, "postroom_connections_total", protocol="smtp") == 3
    assert moved(before, after, "postroom_connections_total", protocol="imap") == 2  # the failed handshake never got one
    assert moved(before, after, "postroom_connections_total", protocol="pop3") == 1
    assert moved(before, after, "postroom_connections_total", protocol="http") >= 1
    assert sum(v for (n, _), v in after.items() if n == "postroom_tls_handshake_failures_total") - \
        sum(v for (n, _), v in before.items() if n == "postroom_tls_handshake_failures_total") == 1
    # Three deliveries, committed in one batch or several; every commit observed once.
    commits = moved(before, after, "postroom_store_commit_seconds_count")
    assert commits >= 1
    assert moved(before, after, "postroom_store_commit_batch_size_count") == commits
    assert moved(before, after, "postroom_store_commit_batch_size_sum") >= 3
    assert value(after, "postroom_store_commit_seconds_bucket", le="+Inf") == \
        value(after, "postroom_store_commit_seconds_count")
    # The outbound queue is asked at scrape time: nothing is waiting.
    assert value(after, "postroom_queue_messages") == 0
    assert ("postroom_queue_oldest_age_seconds", frozenset()) in after
    assert moved(before, after, "postroom_metrics_scrapes_total") >= 1


def test_counts_add_up_across_both_workers(server: Server) -> None:
    before = server.scrape()
    for _ in range(40):  # SO_REUSEPORT spreads these over both workers
        with smtplib.SMTP("127.0.0.1", server.ports["smtp"], timeout=20) as c:
            c.noop()
    after = server.scrape()
    assert moved(before, after, "postroom_connections_total", protocol="smtp") == 40
    # Each worker writes its own files; the scrape above merged them.
    pids = {f.name.rsplit("_", 1)[1] for f in (server.data_dir / "metrics").glob("counter_*.db")}
    assert len(pids) >= 2, pids


def test_outbound_outcomes_and_the_queue(server: Server) -> None:
    before = server.scrape()
    msg = f"From: {USER}\r\nTo: x@remote.test\r\nSubject: out\r\n\r\nhello\r\n"
    with smtplib.SMTP("127.0.0.1", server.ports["submission"], timeout=20) as c:
        c.starttls(context=_no_verify())
        c.login(USER, PASSWORD)
        c.sendmail(USER, ["ok@remote.test", "later@remote.test", "bad@remote.test"], msg)
    after: Samples = {}

    def attempted() -> bool:
        nonlocal after
        after = server.scrape()
        return moved(before, after, "postroom_outbound_recipients_total", result="deferred") >= 1

    _until(attempted, timeout=30)
    assert moved(before, after, "postroom_messages_total", source="submission", result="accepted", reason="") == 1
    assert moved(before, after, "postroom_outbound_recipients_total", result="delivered") == 1
    assert moved(before, after, "postroom_outbound_recipients_total", result="bounced") == 1
    assert moved(before, after, "postroom_outbound_recipients_total", result="deferred") == 1
    # Final outcomes only, in the latency histogram: delivered within seconds of arrival.
    assert moved(before, after, "postroom_outbound_delivery_seconds_count", result="delivered") == 1
    assert moved(before, after, "postroom_outbound_delivery_seconds_bucket", result="delivered", le="30.0") == 1
    assert moved(before, after, "postroom_outbound_delivery_seconds_count", result="deferred") == 0
    # later@ waits for its retry: one message, one recipient, and its age grows.
    assert value(after, "postroom_queue_messages") == 1
    assert value(after, "postroom_queue_recipients") == 1
    age = value(after, "postroom_queue_oldest_age_seconds")
    assert 0 < age < 60
    assert value(server.scrape(), "postroom_queue_oldest_age_seconds") > age


def test_refused_on_a_public_listener(server: Server) -> None:
    status, body = server.fetch("/metrics", "public")
    assert status == 404 and b"postroom_" not in body
    status, _ = server.fetch("/healthz", "public")
    assert status == 200  # the listener itself serves


def test_worker_restart_is_counted_and_its_gauges_dropped(server: Server) -> None:
    before = server.scrape()
    workers = [int(e) for e in os.listdir("/proc") if e.isdigit() and _ppid(int(e)) == server.serving.proc.pid]
    assert len(workers) == 2
    os.kill(workers[0], signal.SIGKILL)
    # The supervisor starts a new worker, which logs its listeners again.
    _until(lambda: server.serving.log().count("listening http ") >= 3, timeout=30)
    after: Samples = {}

    def restarted() -> bool:
        nonlocal after
        after = server.scrape()
        return value(after, "postroom_worker_restarts_total") == 1 and value(after, "postroom_workers_alive") == 2

    _until(restarted, timeout=30)
    # The dead worker's counts stay in the sums: counters never go down.
    assert value(after, "postroom_connections_total", protocol="smtp") >= \
        value(before, "postroom_connections_total", protocol="smtp")
    assert value(after, "postroom_messages_total", source="smtp", result="accepted", reason="") == \
        value(before, "postroom_messages_total", source="smtp", result="accepted", reason="")


def _ppid(pid: int) -> int:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return -1
    return int(stat.rsplit(")", 1)[1].split()[1])
