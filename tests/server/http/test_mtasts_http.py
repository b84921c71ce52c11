"""``/.well-known/mta-sts.txt`` served by a real Postroom runtime over real HTTPS (RFC 8461 §3.3).

The server's certificate (from a test CA) names ``mta-sts.example.test``, as a real
deployment's must. The body is checked against RFC 8461 §3.2's grammar, fetched both
by the stdlib's client and by Postroom's own outbound policy fetcher (PKIX, no
redirects, 64 KiB limit), whose result must carry the id ``postroom dns records``
prints.
"""

from __future__ import annotations

import asyncio
import http.client
import socket
import ssl
import sys
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

pytest.importorskip("aiohttp")

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "outbound"))  # mtasts_fixtures
from dnsfixture import DnsFixture
from http_harness import HOSTNAME, Harness, write_http_config
from mtasts_fixtures import TestCA
from mtasts_grammar import grammar_ok

from postroom.config import load
from postroom.outbound.mtasts import PolicySource
from postroom.outbound.stspolicy import MtaStsSettings, parse_policy, published
from postroom.resolver import DnsSettings, Resolver

DOMAIN = "example.test"
STS_HOST = f"mta-sts.{DOMAIN}"
MTA_STS = '\n[mta_sts]\nmode = "enforce"\nmax_age = "14d"\nmx = ["mail.example.test", "*.backup.example.test"]\n'


@pytest.fixture(scope="module")
def sts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Harness, TestCA]]:
    d = tmp_path_factory.mktemp("mtastshttp")
    cfg = write_http_config(d, http='keepalive_timeout = "3s"\n' + MTA_STS,
                            listeners={"smtp": "starttls", "http": "none", "https": "implicit"})
    ca = TestCA(d / "pki")
    cert, key = ca.issue("server", HOSTNAME, STS_HOST)
    (d / "cert.pem").write_bytes(cert.read_bytes())
    (d / "key.pem").write_bytes(key.read_bytes())
    with closing(Harness(cfg)) as h:
        yield h, ca


class _PinnedHTTPS(http.client.HTTPSConnection):
    """HTTPS to a fixed loopback address, verifying the certificate against ``host`` (as a sender does)."""

    def __init__(self, host: str, address: tuple[str, int], ctx: ssl.SSLContext) -> None:
        super().__init__(host, address[1], timeout=10, context=ctx)
        self.address, self.ctx = address, ctx

    def connect(self) -> None:
        sock = socket.create_connection(self.address, timeout=10)
        self.sock = self.ctx.wrap_socket(sock, server_hostname=self.host)


def fetch(h: Harness, ca: TestCA, host: str, path: str = "/.well-known/mta-sts.txt", host_header: str = ""
          ) -> tuple[int, dict[str, str], bytes]:
    c = _PinnedHTTPS(host, ("127.0.0.1", h.ports["https"]), ssl.create_default_context(cafile=str(ca.ca_file)))
    try:
        c.request("GET", path, headers={"Host": host_header} if host_header else {})
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        c.close()


def test_policy_over_https_matches_the_grammar(sts):
    h, ca = sts
    status, headers, body = fetch(h, ca, STS_HOST)
    assert status == 200
    assert headers["content-type"].split(";")[0] == "text/plain"  # RFC 8461 §3.2
    text = body.decode("ascii")
    assert grammar_ok(text), text
    assert text == ("version: STSv1\r\nmode: enforce\r\nmx: mail.example.test\r\nmx: *.backup.example.test\r\n"
                    "max_age: 1209600\r\n")
    assert parse_policy(body).mode == "enforce"


def test_other_hosts_get_404(sts):
    h, ca = sts
    status, _, unknown_path = fetch(h, ca, STS_HOST, "/no-such-path")
    assert status == 404
    for host in ("mta-sts.elsewhere.test", DOMAIN, HOSTNAME, "mta-sts."):
        status, _, body = fetch(h, ca, STS_HOST, host_header=host)
        assert status == 404 and body == unknown_path  # says nothing about which domains exist


def test_plain_http_serves_the_same_text(sts):
    h, _ = sts
    status, _, body = h.get("/.well-known/mta-sts.txt", host=STS_HOST)
    assert status == 200 and grammar_ok(body.decode())
    assert h.get("/.well-known/mta-sts.txt", host=STS_HOST, method="HEAD")[0] == 200


def test_postrooms_own_fetcher_reads_it_with_the_published_id(sts, tmp_path):
    """What another Postroom does before sending here: TXT record, HTTPS fetch, PKIX check."""
    h, ca = sts
    cfg = load(h.cfg_path)
    _, body, pid = published(cfg)
    with DnsFixture() as dns_srv:
        dns_srv.txt(f"_mta-sts.{DOMAIN}", f"v=STSv1; id={pid}")
        dns_srv.a(STS_HOST, "127.0.0.1")
        resolver = Resolver(DnsSettings(("127.0.0.1", dns_srv.port), timeout=1.0, attempts=2))
        source = PolicySource(resolver, MtaStsSettings(ca_file=ca.ca_file), tmp_path / "cache",
                              https_port=h.ports["https"])
        source.allow_private = True  # the test hook: this server is on loopback
        lookup = asyncio.run(source.lookup(DOMAIN))
    assert lookup.failure == ""
    assert lookup.cached is not None and lookup.cached.id == pid and lookup.cached.body == body
    assert lookup.cached.policy.matches("mail.example.test")
    assert lookup.cached.policy.matches("mx1.backup.example.test")
    assert not lookup.cached.policy.matches("mail.evil.test")
