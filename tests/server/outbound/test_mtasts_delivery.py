"""Outbound MTA-STS (RFC 8461) against a local DNS, a local HTTPS policy server and two MX hosts.

The issue's "Done when": a destination with an ``enforce`` policy whose MX name the
policy does not list gets no delivery (deferred with 4.7.5, logged, the peer never
contacted); one whose MX matches gets its mail over verified TLS. Around it: a
certificate for the wrong name defers under ``enforce`` and is delivered (and
counted for TLS-RPT) under ``testing``; a peer without STARTTLS is never sent mail in
clear under ``enforce``.

Loopback only: MX hosts on 127.0.0.2 and 127.0.0.3 (aiosmtpd with STARTTLS, one common
port), the policy server on 127.0.0.1 with an ephemeral port (the runner's
``https_port`` test hook; production always uses 443), certificates from a test CA
given through ``[mta_sts] ca_file``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from dnsfixture import DnsFixture
from mtasts_fixtures import PolicyServer, TestCA
from outbound_helpers import FakeCtx, FakeStore, free_port

from postroom.config import from_dict
from postroom.outbound.api import Envelope, Recipient
from postroom.outbound.delivery import Runner
from postroom.outbound.dns import DestinationResolver
from postroom.outbound.queue import RcptState, SqliteQueue
from postroom.outbound.settings import parse
from postroom.outbound.stspolicy import Policy, render_policy

GOOD_IP, OTHER_IP = "127.0.0.2", "127.0.0.3"
RAW = b"From: a@here.test\r\nTo: x@example\r\nSubject: sts\r\n\r\nbody\r\n"


class Recorder:
    """aiosmtpd handler: keeps each message with whether it came over TLS."""

    def __init__(self) -> None:
        self.got: list[tuple[list[str], bool]] = []

    async def handle_DATA(self, server, session, envelope):
        self.got.append((list(envelope.rcpt_tos), session.ssl is not None))
        return "250 2.0.0 stored"


def policy(mode: str, *mx: str) -> bytes:
    return render_policy(Policy(mode, 86400, mx)).encode()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("sts")
    ca = TestCA(root / "pki")
    domains = ("good", "bad", "wrongcert", "testing", "plain", "flaky")
    https_ctx = ca.server_context("https", *(f"mta-sts.{d}.test" for d in domains))
    port = free_port((GOOD_IP, OTHER_IP))
    good, other = Recorder(), Recorder()
    # 127.0.0.2 presents a certificate for mx.good.test; 127.0.0.3 one for mx.other.test only.
    smtp_good = Controller(good, hostname=GOOD_IP, port=port, server_hostname="mx.good.test",
                           tls_context=ca.server_context("mxgood", "mx.good.test"))
    smtp_other = Controller(other, hostname=OTHER_IP, port=port, server_hostname="mx.other.test",
                            tls_context=ca.server_context("mxother", "mx.other.test"))
    with DnsFixture() as dns_srv, PolicyServer(https_ctx) as web_srv:
        smtp_good.start()
        smtp_other.start()
        for d in domains:
            dns_srv.a(f"mta-sts.{d}.test", "127.0.0.1")
            dns_srv.txt(f"_mta-sts.{d}.test", f"v=STSv1; id={d}1")
        dns_srv.mx("good.test", [(10, "mx.good.test")])
        dns_srv.a("mx.good.test", GOOD_IP)
        web_srv.policies["mta-sts.good.test"] = (200, "text/plain", policy("enforce", "mx.good.test"))
        # bad.test's MX is not in its policy (an attacker's MX record, say).
        dns_srv.mx("bad.test", [(10, "mx.other.test")])
        dns_srv.a("mx.other.test", OTHER_IP)
        web_srv.policies["mta-sts.bad.test"] = (200, "text/plain", policy("enforce", "mx.bad.test"))
        # wrongcert.test's MX is in the policy but its certificate names another host.
        dns_srv.mx("wrongcert.test", [(10, "mx.wrongcert.test")])
        dns_srv.a("mx.wrongcert.test", OTHER_IP)
        web_srv.policies["mta-sts.wrongcert.test"] = (200, "text/plain", policy("enforce", "*.wrongcert.test"))
        # testing.test: the same wrong certificate, but mode testing.
        dns_srv.mx("testing.test", [(10, "mx.testing.test")])
        dns_srv.a("mx.testing.test", OTHER_IP)
        web_srv.policies["mta-sts.testing.test"] = (200, "text/plain", policy("testing", "mx.testing.test"))
        yield {"root": root, "ca": ca, "dns": dns_srv, "web": web_srv, "port": port, "good": good,
               "other": other}
        smtp_good.stop()
        smtp_other.stop()


def make_runner(world, name: str, mta_sts: dict | None = None, queue_name: str = "queue"
                ) -> tuple[Runner, SqliteQueue, Path]:
    tmp = world["root"] / name
    tmp.mkdir(exist_ok=True)
    cfg = from_dict({"hostname": "mx.here.test", "domains": ["here.test"],
                     "storage": {"path": str(tmp / "data")},
                     "outbound": {"resolver": world["dns"].address, "port": world["port"],
                                  "retry_schedule": ["1h"], "connect_timeout": "3s"},
                     "mta_sts": {"ca_file": str(world["ca"].ca_file), **(mta_sts or {})}},
                    tmp / "postroom.toml")
    problems: list[str] = []
    settings = parse(cfg, problems)
    assert not problems, problems
    ctx = FakeCtx(cfg, FakeStore({"a@here.test": 1}))
    queue = SqliteQueue(tmp / queue_name)
    runner = Runner(ctx, queue, settings, resolver=DestinationResolver(settings.resolver, timeout=2))
    assert runner.sts is not None
    runner.sts.https_port = world["web"].port
    runner.sts.allow_private = True  # the policy and report servers are on loopback
    return runner, queue, cfg.data_dir


async def deliver_once(runner: Runner, queue: SqliteQueue, rcpt: str):
    """Enqueue one message, run one attempt; the recipient's row afterwards."""
    await queue.open()
    try:
        await queue.enqueue(Envelope("a@here.test", (Recipient(rcpt),)), RAW)
        await runner.schedule_once()
        await runner.drain()
        msgs = await queue.messages()
        return msgs[0].recipients[0] if msgs else None
    finally:
        await runner.close()
        await queue.close()


def test_enforce_matching_mx_gets_mail_over_verified_tls(world):
    runner, queue, data = make_runner(world, "good")
    before = len(world["good"].got)
    left = asyncio.run(deliver_once(runner, queue, "x@good.test"))
    assert left is None  # delivered: the message left the queue
    assert world["good"].got[before:] == [(["x@good.test"], True)]
    cached = json.loads((data / "mta-sts" / "good.test.json").read_text())
    assert cached["id"] == "good1" and "mode: enforce" in cached["body"]
    counts = json.loads(next((data / "tlsrpt").glob("*.json")).read_text())
    (entry,) = counts["domains"].values()
    assert entry["successes"] == 1 and entry["failures"] == {} and entry["mx_host"] == ["mx.good.test"]


def test_enforce_mx_not_in_policy_is_deferred_not_sent(world, caplog):
    runner, queue, _ = make_runner(world, "bad")
    before = len(world["other"].got)
    with caplog.at_level(logging.INFO, logger="postroom.outbound"):
        left = asyncio.run(deliver_once(runner, queue, "x@bad.test"))
    assert left is not None and left.state is RcptState.DEFERRED and left.last_status == "4.7.5"
    assert "no MX host of bad.test matches its policy" in left.last_error
    assert len(world["other"].got) == before  # never sent, not even in clear
    assert any("mx.other.test of bad.test is not in the policy" in r.getMessage() for r in caplog.records)


def test_enforce_certificate_for_another_name_is_deferred(world):
    runner, queue, data = make_runner(world, "wrongcert")
    before = len(world["other"].got)
    left = asyncio.run(deliver_once(runner, queue, "x@wrongcert.test"))
    assert left is not None and left.state is RcptState.DEFERRED and left.last_status == "4.7.5"
    assert "TLS handshake" in left.last_error
    assert len(world["other"].got) == before
    counts = json.loads(next((data / "tlsrpt").glob("*.json")).read_text())
    (entry,) = counts["domains"].values()
    (key,) = entry["failures"]
    assert key.split("\t") == ["certificate-host-mismatch", "mx.wrongcert.test", OTHER_IP]


def test_testing_mode_delivers_and_counts_the_failure(world):
    runner, queue, data = make_runner(world, "testing")
    before = len(world["other"].got)
    left = asyncio.run(deliver_once(runner, queue, "x@testing.test"))
    assert left is None
    assert world["other"].got[before:] == [(["x@testing.test"], True)]  # opportunistic TLS still
    counts = json.loads(next((data / "tlsrpt").glob("*.json")).read_text())
    (entry,) = counts["domains"].values()
    assert [k.split("\t")[0] for k in entry["failures"]] == ["certificate-host-mismatch"]


def test_enforce_peer_without_starttls_gets_nothing_in_clear(world):
    class NoTls(Recorder):
        pass

    plain_port_holder = NoTls()
    port = world["port"]
    ip = "127.0.0.4"
    ctl = Controller(plain_port_holder, hostname=ip, port=port)  # no tls_context: no STARTTLS
    try:
        ctl.start()
    except OSError:
        pytest.skip("port busy on 127.0.0.4")
    try:
        world["dns"].mx("plain.test", [(10, "mx.plain.test")])
        world["dns"].a("mx.plain.test", ip)
        world["web"].policies["mta-sts.plain.test"] = (200, "text/plain", policy("enforce", "mx.plain.test"))
        runner, queue, _ = make_runner(world, "plain")
        left = asyncio.run(deliver_once(runner, queue, "x@plain.test"))
        assert left is not None and left.state is RcptState.DEFERRED
        assert "does not offer STARTTLS" in left.last_error
        assert plain_port_holder.got == []
    finally:
        ctl.stop()


def test_cached_policy_applies_when_dns_and_https_fail(world):
    """RFC 8461 §5.1: an unexpired cached policy survives a restart and a blocked fetch."""
    dns_srv, web_srv = world["dns"], world["web"]
    dns_srv.mx("flaky.test", [(10, "mx.other.test")])
    web_srv.policies["mta-sts.flaky.test"] = (200, "text/plain", policy("enforce", "mx.flaky.test"))
    runner, queue, data = make_runner(world, "flaky")
    left = asyncio.run(deliver_once(runner, queue, "x@flaky.test"))
    assert left is not None and left.last_status == "4.7.5"
    # The attacker now strips the TXT record and breaks the HTTPS server; a new runner
    # (a restart) on the same data directory still enforces the cached policy.
    dns_srv.remove("_mta-sts.flaky.test")
    web_srv.policies["mta-sts.flaky.test"] = (500, "text/plain", b"")
    before = len(world["other"].got)
    assert (data / "mta-sts" / "flaky.test.json").is_file()
    runner2, queue2, _ = make_runner(world, "flaky", queue_name="queue2")
    left = asyncio.run(deliver_once(runner2, queue2, "y@flaky.test"))
    assert left is not None and left.last_status == "4.7.5"
    assert len(world["other"].got) == before
    dns_srv.txt("_mta-sts.flaky.test", "v=STSv1; id=flaky1")


def test_delivery_time_is_bounded_by_fetch_timeout(world):
    """A policy host that never answers costs fetch_timeout once, then the retry backoff."""
    dns_srv = world["dns"]
    dns_srv.mx("slow.test", [(10, "mx.good.test")])
    dns_srv.txt("_mta-sts.slow.test", "v=STSv1; id=slow1")
    dns_srv.a("mta-sts.slow.test", "127.0.0.9")  # nothing listens there: connection refused
    runner, queue, _ = make_runner(world, "slow", {"fetch_timeout": "2s"})
    start = time.monotonic()
    left = asyncio.run(deliver_once(runner, queue, "x@slow.test"))
    assert left is None  # no policy could be had and none is cached: delivered as without MTA-STS
    assert time.monotonic() - start < 10


def test_tls_reports_are_sent_once_by_mail_and_https(world):
    """RFC 8460 §3, §5: yesterday's counts go to each rua of _smtp._tls.DOMAIN, then never again."""
    import email
    import gzip

    runner, queue, data = make_runner(world, "reports")
    assert runner.tlsrpt is not None and runner.reports is not None
    yesterday = time.time() - 86400
    runner.tlsrpt.clock = lambda: yesterday
    body = render_policy(Policy("enforce", 86400, ("mx.good.test",)))
    runner.tlsrpt.success("good.test", "good1", body, ("mx.good.test",))
    runner.tlsrpt.failure("good.test", "good1", body, ("mx.good.test",), "certificate-expired", "mx.good.test",
                          GOOD_IP)
    runner.tlsrpt.success("bad.test", "bad1", body, ("mx.bad.test",))  # bad.test asks for no reports
    runner.tlsrpt.flush()
    runner.tlsrpt.clock = time.time
    web_port = world["web"].port
    world["dns"].txt("_smtp._tls.good.test",
                     f"v=TLSRPTv1; rua=mailto:tls@reports.test,https://mta-sts.good.test:{web_port}/tlsrpt")
    posted = len(world["web"].reports)

    async def run() -> tuple[int, int, list]:
        await queue.open()
        try:
            first = await runner.reports.run()
            second = await runner.reports.run()
            msgs = await queue.messages()
            return first, second, [(m, await queue.read_body(m.id)) for m in msgs]
        finally:
            await queue.close()

    first, second, queued = asyncio.run(run())
    assert (first, second) == (2, 0)
    day = time.strftime("%Y-%m-%d", time.gmtime(yesterday))
    assert (data / "tlsrpt" / f"{day}.sent.json").is_file() and not (data / "tlsrpt" / f"{day}.json").exists()
    ((msg, raw),) = queued
    assert msg.envelope.sender == "" and [r.address for r in msg.recipients] == ["tls@reports.test"]
    mail = email.message_from_bytes(raw)
    assert mail.get_content_type() == "multipart/report" and mail.get_param("report-type") == "tlsrpt"
    assert mail["TLS-Report-Domain"] == "good.test" and mail["TLS-Report-Submitter"] == "mx.here.test"
    assert mail["Subject"].startswith("Report Domain: good.test Submitter: mx.here.test Report-ID: <")
    part = mail.get_payload()[1]
    assert part.get_content_type() == "application/tlsrpt+gzip"
    assert part.get_filename().startswith("mx.here.test!good.test!") and part.get_filename().endswith(".json.gz")
    report = json.loads(gzip.decompress(part.get_payload(decode=True)))
    assert mail["Message-ID"] == f"<{report['report-id']}>"
    (pol,) = report["policies"]
    assert pol["policy"]["policy-domain"] == "good.test"
    assert pol["summary"] == {"total-successful-session-count": 1, "total-failure-session-count": 1}
    assert pol["failure-details"][0]["result-type"] == "certificate-expired"
    ((ctype, gz),) = world["web"].reports[posted:]
    assert ctype == "application/tlsrpt+gzip"
    assert json.loads(gzip.decompress(gz))["policies"] == report["policies"]
