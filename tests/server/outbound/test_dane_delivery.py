"""Outbound DANE (RFC 7672) against a local DNS that sets the AD bit and real MX hosts.

Loopback only: the DNS fixture answers with AD for the names a test marks secure (as a
validating resolver would), MX hosts are aiosmtpd servers on 127.0.0.2 (STARTTLS, leaf
certificate only), 127.0.0.3 (STARTTLS, leaf and CA certificate, for DANE-TA) and
127.0.0.4 (no STARTTLS), on one common ephemeral port. The issue's cases: a DANE-EE
match is delivered over TLS; a mismatch, a missing STARTTLS and a failing TLSA lookup
defer without the MX ever seeing the message; insecure answers and ``dane = false``
deliver as before.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import ssl
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from dnsfixture import DnsFixture
from mtasts_fixtures import PolicyServer, TestCA
from outbound_helpers import FakeCtx, FakeStore, free_port

# Enqueue one message and run one attempt (the row left, None once delivered); the TLS-noting handler.
from test_mtasts_delivery import Recorder as StsRecorder
from test_mtasts_delivery import deliver_once

from postroom.config import from_dict
from postroom.outbound.delivery import Runner
from postroom.outbound.dns import DestinationResolver
from postroom.outbound.queue import RcptState, SqliteQueue
from postroom.outbound.settings import parse
from postroom.outbound.stspolicy import Policy, render_policy

EE_IP, TA_IP, PLAIN_IP = "127.0.0.2", "127.0.0.3", "127.0.0.4"


class Recorder(StsRecorder):
    """aiosmtpd handler: each message's recipients and whether it came over TLS."""

    def to(self, domain: str) -> list[bool]:
        """TLS flags of the messages received for ``domain``."""
        return [tls for rcpts, tls in self.got if any(r.endswith("@" + domain) for r in rcpts)]


def tlsa_of(cert: x509.Certificate, usage: int, selector: int) -> str:
    data = cert.public_bytes(Encoding.DER) if selector == 0 else \
        cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return f"{usage} {selector} 1 {hashlib.sha256(data).hexdigest()}"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("dane")
    ca = TestCA(root / "pki")
    port = free_port((EE_IP, TA_IP, PLAIN_IP))
    ee_cert, ee_key = ca.issue("mx-ee", "mx.ee.test")  # 127.0.0.2: the name matters to no one
    ta_cert, ta_key = ca.issue("mx-ta", "mx.ta.test")
    chain = root / "mx-ta-chain.pem"  # RFC 7671 §5.2.2: a DANE-TA server sends its TA
    chain.write_bytes(ta_cert.read_bytes() + ca.ca_file.read_bytes())
    ee_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ee_ctx.load_cert_chain(ee_cert, ee_key)
    ta_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ta_ctx.load_cert_chain(chain, ta_key)
    ee, ta, plain = Recorder(), Recorder(), Recorder()
    servers = [Controller(ee, hostname=EE_IP, port=port, server_hostname="mx.ee.test", tls_context=ee_ctx),
               Controller(ta, hostname=TA_IP, port=port, server_hostname="mx.ta.test", tls_context=ta_ctx),
               Controller(plain, hostname=PLAIN_IP, port=port, server_hostname="mx.plain.test")]
    leaf = x509.load_pem_x509_certificate(ee_cert.read_bytes())
    wrong = "3 1 1 " + "00" * 32
    https_ctx = ca.server_context("https", "mta-sts.stsdane.test")
    with DnsFixture() as dns, PolicyServer(https_ctx) as web:
        for s in servers:
            s.start()

        def dest(domain: str, mx: str, ip: str, *tlsa: str, secure: bool = True) -> None:
            dns.mx(domain, [(10, mx)])
            dns.a(mx, ip)
            if tlsa:
                dns.tlsa(f"_25._tcp.{mx}", *tlsa)
            else:
                dns.a(f"_25._tcp.{mx}", "127.0.0.1")  # the name exists, no TLSA: secure denial
            if secure:
                dns.secure(domain, mx, f"_25._tcp.{mx}")

        dest("ee.test", "mx.ee.test", EE_IP, tlsa_of(leaf, 3, 1), "1 1 1 " + "11" * 32)
        dest("mismatch.test", "mx.mismatch.test", EE_IP, wrong)
        dest("notls.test", "mx.notls.test", PLAIN_IP, tlsa_of(leaf, 3, 1))
        dest("insecure.test", "mx.insecure.test", EE_IP, wrong, secure=False)
        dest("notlsa.test", "mx.notlsa.test", PLAIN_IP)
        dest("pkix.test", "mx.pkix.test", PLAIN_IP, "1 1 1 " + "11" * 32)  # only unusable records
        dest("servfail.test", "mx.servfail.test", EE_IP, wrong)
        dns.servfail("_25._tcp.mx.servfail.test")
        dest("ta.test", "mx.ta.test", TA_IP, tlsa_of(ca.cert, 2, 0))
        dest("taname.test", "mx.taname.test", TA_IP, tlsa_of(ca.cert, 2, 0))  # the cert names mx.ta.test
        # Two MX hosts: the preferred one fails authentication, the other passes.
        dns.mx("twohosts.test", [(10, "mx.mismatch.test"), (20, "mx.ee.test")])
        dns.secure("twohosts.test")
        # RFC 7672 §2.2.2: the MX name is an alias; TLSA records at the expanded name come
        # first (cname.test: they match, those at the alias don't), the alias's only when the
        # expanded name has none (cnamefallback.test: the alias's records don't match).
        dest("cname.test", "mx.cname.test", EE_IP, wrong)
        dns.remove("mx.cname.test")
        dns.cname("mx.cname.test", "real.cname.test")
        dns.a("real.cname.test", EE_IP)
        dns.tlsa("_25._tcp.real.cname.test", tlsa_of(leaf, 3, 1))
        dns.secure("real.cname.test", "_25._tcp.real.cname.test")
        dest("cnamefallback.test", "mx.cnamefallback.test", EE_IP, wrong)
        dns.remove("mx.cnamefallback.test")
        dns.cname("mx.cnamefallback.test", "real.cnamefallback.test")
        dns.a("real.cnamefallback.test", EE_IP)
        dns.a("_25._tcp.real.cnamefallback.test", "127.0.0.1")  # exists, no TLSA
        dns.secure("real.cnamefallback.test", "_25._tcp.real.cnamefallback.test")
        # An MTA-STS policy in enforce mode that does not list the MX; its TLSA records
        # match, and DANE takes precedence (RFC 8461 §2).
        dest("stsdane.test", "mx.stsdane.test", EE_IP, tlsa_of(leaf, 3, 1))
        dns.a("mta-sts.stsdane.test", "127.0.0.1")
        dns.txt("_mta-sts.stsdane.test", "v=STSv1; id=1")
        web.policies["mta-sts.stsdane.test"] = (200, "text/plain", render_policy(
            Policy("enforce", 86400, ("mx.elsewhere.test",))).encode())
        yield {"root": root, "dns": dns, "port": port, "ee": ee, "ta": ta, "plain": plain, "ca": ca, "web": web}
        for s in servers:
            s.stop()


def make_runner(world, name: str, dane: bool = True) -> tuple[Runner, SqliteQueue, Path]:
    tmp = world["root"] / name
    tmp.mkdir(exist_ok=True)
    cfg = from_dict({"hostname": "mx.here.test", "domains": ["here.test"],
                     "storage": {"path": str(tmp / "data")},
                     "outbound": {"resolver": world["dns"].address, "port": world["port"], "dane": dane,
                                  "retry_schedule": ["1h"], "connect_timeout": "3s"},
                     "mta_sts": {"ca_file": str(world["ca"].ca_file)}},
                    tmp / "postroom.toml")
    problems: list[str] = []
    settings = parse(cfg, problems)
    assert not problems, problems
    assert settings.dane is dane
    runner = Runner(FakeCtx(cfg, FakeStore({"a@here.test": 1})), SqliteQueue(tmp / "queue"), settings,
                    resolver=DestinationResolver(settings.resolver, timeout=2))
    assert runner.sts is not None
    runner.sts.https_port = world["web"].port  # the test hook; production uses 443
    runner.sts.allow_private = True  # the policy server is on loopback
    return runner, runner.queue, cfg.data_dir


def run(world, name: str, rcpt: str, dane: bool = True):
    runner, queue, data = make_runner(world, name, dane)
    return asyncio.run(deliver_once(runner, queue, rcpt)), data


def tlsrpt_failures(data: Path) -> dict[str, dict]:
    counts = json.loads(next((data / "tlsrpt").glob("*.json")).read_text())
    return {e["domain"]: e for e in counts["domains"].values()}


def test_dane_ee_match_is_delivered_over_tls(world):
    left, data = run(world, "ee", "x@ee.test")
    assert left is None
    assert world["ee"].to("ee.test") == [True]
    entry = tlsrpt_failures(data)["ee.test"]
    assert entry["policy_type"] == "tlsa" and entry["successes"] == 1 and not entry["failures"]


def test_dane_ee_mismatch_defers_and_never_sends(world, caplog):
    caplog.set_level(logging.INFO, logger="postroom.outbound")
    left, data = run(world, "mismatch", "x@mismatch.test")
    assert left is not None and left.state is RcptState.DEFERRED and left.last_status == "4.7.5"
    assert "DANE" in left.last_error and "TLSA" in left.last_error
    assert world["ee"].to("mismatch.test") == []
    assert any("DANE" in r.getMessage() and "mx.mismatch.test" in r.getMessage() for r in caplog.records)
    entry = tlsrpt_failures(data)["mismatch.test"]
    assert entry["policy_type"] == "tlsa" and entry["successes"] == 0
    assert list(entry["failures"]) == [f"tlsa-invalid\tmx.mismatch.test\t{EE_IP}"]


def test_tlsa_but_no_starttls_defers(world):
    left, _ = run(world, "notls", "x@notls.test")
    assert left is not None and left.state is RcptState.DEFERRED and left.last_status == "4.7.4"
    assert "STARTTLS" in left.last_error
    assert world["plain"].to("notls.test") == []


def test_only_unusable_records_still_require_tls(world):
    left, _ = run(world, "pkix", "x@pkix.test")
    assert left is not None and left.state is RcptState.DEFERRED and "STARTTLS" in left.last_error
    assert world["plain"].to("pkix.test") == []


def test_secure_denial_of_tlsa_delivers_as_usual(world):
    left, _ = run(world, "notlsa", "x@notlsa.test")
    assert left is None
    assert world["plain"].to("notlsa.test") == [False]


def test_insecure_answers_deliver_opportunistically(world):
    left, _ = run(world, "insecure", "x@insecure.test")
    assert left is None
    assert world["ee"].to("insecure.test") == [True]


def test_dane_off_ignores_tlsa(world):
    left, _ = run(world, "off", "y@mismatch.test", dane=False)
    assert left is None
    assert world["ee"].to("mismatch.test") == [True]


def test_tlsa_servfail_for_secure_name_defers(world):
    left, data = run(world, "servfail", "x@servfail.test")
    assert left is not None and left.state is RcptState.DEFERRED and left.last_status == "4.4.3"
    assert "TLSA" in left.last_error
    assert world["ee"].to("servfail.test") == []
    assert list(tlsrpt_failures(data)["servfail.test"]["failures"]) == ["dnssec-invalid\tmx.servfail.test\t"]


def test_dane_ta_chain_and_name(world):
    left, _ = run(world, "ta", "x@ta.test")
    assert left is None
    assert world["ta"].to("ta.test") == [True]


def test_dane_ta_wrong_name_defers(world):
    left, data = run(world, "taname", "x@taname.test")
    assert left is not None and left.state is RcptState.DEFERRED and left.last_status == "4.7.5"
    assert world["ta"].to("taname.test") == []
    assert list(tlsrpt_failures(data)["taname.test"]["failures"]) == [
        f"certificate-host-mismatch\tmx.taname.test\t{TA_IP}"]


def test_failed_host_is_skipped_for_the_next_mx(world):
    left, _ = run(world, "twohosts", "x@twohosts.test")
    assert left is None
    # Both MX hosts live on 127.0.0.2; only the one whose TLSA records match got the message.
    assert world["ee"].to("twohosts.test") == [True]


def test_tlsa_at_the_cname_expanded_name_first(world):
    left, _ = run(world, "cname", "x@cname.test")
    assert left is None
    assert world["ee"].to("cname.test") == [True]


def test_tlsa_at_the_alias_when_the_expanded_name_has_none(world):
    left, _ = run(world, "cnamefallback", "x@cnamefallback.test")
    assert left is not None and left.state is RcptState.DEFERRED and left.last_status == "4.7.5"
    assert world["ee"].to("cnamefallback.test") == []


def test_dane_takes_precedence_over_mta_sts(world):
    left, data = run(world, "stsdane", "x@stsdane.test")
    assert left is None
    assert world["ee"].to("stsdane.test") == [True]
    assert (data / "mta-sts" / "stsdane.test.json").exists()  # the policy was fetched and applies
