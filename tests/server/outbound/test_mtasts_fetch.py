"""Policy discovery and fetch (RFC 8461 §3.1, §3.3, §5.1) against a local DNS and HTTPS server.

:class:`PolicySource` is driven directly: every failure kind has its RFC 8460 result
type, redirects are not followed, the cache honours the record's id and max_age.
"""

from __future__ import annotations

import asyncio
import ssl

import pytest
from dnsfixture import DnsFixture
from mtasts_fixtures import PolicyServer, TestCA

from postroom.outbound.mtasts import PolicySource, is_public, post_report
from postroom.outbound.stspolicy import MtaStsSettings, Policy, render_policy
from postroom.resolver import DnsSettings, Resolver

ENFORCE = render_policy(Policy("enforce", 3600, ("mx.a.test",))).encode()


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("fetch")
    ca = TestCA(root / "pki")
    names = [f"mta-sts.{d}.test" for d in ("a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k")]
    with DnsFixture() as dns_srv, PolicyServer(ca.server_context("https", *names)) as web_srv:
        for n in names:
            dns_srv.a(n, "127.0.0.1")
        yield root, ca, dns_srv, web_srv


def source(env, name: str, clock=None, ca=True, allow_private=True) -> PolicySource:
    root, ca_obj, dns_srv, web_srv = env
    dns = Resolver(DnsSettings(("127.0.0.1", dns_srv.port), timeout=1.0, attempts=1))
    settings = MtaStsSettings(ca_file=ca_obj.ca_file if ca else None, fetch_timeout=5.0)
    kwargs = {"clock": clock} if clock else {}
    src = PolicySource(dns, settings, root / name, https_port=web_srv.port, **kwargs)
    src.allow_private = allow_private  # the test hook: the policy server is on loopback
    return src


def publish(env, domain: str, pid: str, reply: tuple[int, str, bytes]) -> None:
    _, _, dns_srv, web_srv = env
    dns_srv.txt(f"_mta-sts.{domain}", f"v=STSv1; id={pid}")
    web_srv.policies[f"mta-sts.{domain}"] = reply


def fetches(env, domain: str) -> int:
    return sum(1 for host, _ in env[3].requests if host.startswith(f"mta-sts.{domain}:"))


@pytest.mark.parametrize("domain,reply,result", [
    ("b.test", (404, "text/plain", b"nothing"), "sts-policy-fetch-error"),
    ("c.test", (302, "text/plain", b""), "sts-policy-fetch-error"),
    ("d.test", (200, "text/html", ENFORCE), "sts-policy-invalid"),
    ("e.test", (200, "text/plain", b"version: STSv1\nmode: enforce\n"), "sts-policy-invalid"),
    ("f.test", (200, "text/plain", ENFORCE + b"x: " + b"y" * 70000 + b"\n"), "sts-policy-invalid"),
])
def test_failures_have_their_result_type(env, domain, reply, result):
    publish(env, domain, "one", reply)
    lookup = asyncio.run(source(env, f"fail-{domain}").lookup(domain))
    assert lookup.cached is None and lookup.mode == "none"
    assert lookup.failure == result
    # §3.3: a redirect is not followed.
    assert not any(path == "/elsewhere" for _, path in env[3].requests)


def test_untrusted_certificate_is_webpki_invalid(env):
    publish(env, "g.test", "one", (200, "text/plain", ENFORCE))
    lookup = asyncio.run(source(env, "untrusted", ca=False).lookup("g.test"))  # system store: test CA unknown
    assert lookup.cached is None and lookup.failure == "sts-webpki-invalid"


def test_cache_follows_the_record_id(env):
    publish(env, "a.test", "v1", (200, "text/plain", ENFORCE))
    src = source(env, "ids")

    async def run() -> None:
        first = await src.lookup("a.test")
        assert first.cached and first.cached.policy.mode == "enforce" and first.cached.id == "v1"
        n = fetches(env, "a.test")
        again = await src.lookup("a.test")
        assert again.cached == first.cached and fetches(env, "a.test") == n  # same id: no fetch
        publish(env, "a.test", "v2", (200, "text/plain", render_policy(Policy("none", 60, ())).encode()))
        await asyncio.sleep(1.1)  # the fixture's TTL is 1 s
        changed = await src.lookup("a.test")
        assert fetches(env, "a.test") == n + 1
        assert changed.cached and changed.cached.id == "v2" and changed.mode == "none"

    asyncio.run(run())


def test_policy_expires_after_max_age(env):
    now = [1_000_000.0]
    publish(env, "h.test", "v1", (200, "text/plain", ENFORCE))
    src = source(env, "expiry", clock=lambda: now[0])

    async def run() -> None:
        assert (await src.lookup("h.test")).mode == "enforce"
        env[2].remove("_mta-sts.h.test")  # no live record from now on
        await asyncio.sleep(1.1)
        now[0] += 3000
        assert (await src.lookup("h.test")).mode == "enforce"  # §5.1: the cached policy still applies
        now[0] += 1000  # past max_age (3600 s)
        assert (await src.lookup("h.test")).cached is None

    asyncio.run(run())


def test_several_records_mean_no_policy(env):
    _, _, dns_srv, web_srv = env
    dns_srv.txt("_mta-sts.i.test", "v=STSv1; id=one", "v=STSv1; id=two")
    web_srv.policies["mta-sts.i.test"] = (200, "text/plain", ENFORCE)
    lookup = asyncio.run(source(env, "several").lookup("i.test"))
    assert lookup.cached is None and lookup.failure == ""
    assert fetches(env, "i.test") == 0


def test_concurrent_lookups_fetch_once(env):
    publish(env, "j.test", "v1", (200, "text/plain", ENFORCE))
    src = source(env, "concurrent")

    async def run() -> list:
        return await asyncio.gather(*(src.lookup("j.test") for _ in range(10)))

    results = asyncio.run(run())
    assert all(r.mode == "enforce" for r in results)
    assert fetches(env, "j.test") == 1


def test_policy_host_on_a_private_address_is_not_contacted(env):
    """Request forgery: the recipient domain's DNS must not steer our HTTPS fetch to loopback,
    private or link-local addresses (here: the real policy server on 127.0.0.1)."""
    publish(env, "k.test", "one", (200, "text/plain", ENFORCE))
    before = fetches(env, "k.test")
    lookup = asyncio.run(source(env, "private", allow_private=False).lookup("k.test"))
    assert lookup.cached is None and lookup.failure == "sts-policy-fetch-error"
    assert fetches(env, "k.test") == before  # no connection was made


@pytest.mark.parametrize("url", ["https://127.0.0.1/r", "https://[::1]/r", "https://169.254.169.254/latest",
                                 "https://10.0.0.1/r", "https://[::ffff:192.168.1.1]/r"])
def test_report_post_to_a_private_address_literal_is_refused(env, url):
    _, _, dns_srv, _ = env
    dns = Resolver(DnsSettings(("127.0.0.1", dns_srv.port), timeout=1.0, attempts=1))
    with pytest.raises(OSError, match="refused"):
        asyncio.run(post_report(url, b"x", ssl.create_default_context(), dns, timeout=2.0))


def test_is_public():
    assert is_public("192.0.2.1") is False and is_public("8.8.8.8") and is_public("2001:4860::8888")
    assert not any(is_public(a) for a in ("127.0.0.1", "::1", "10.1.2.3", "172.16.0.1", "192.168.0.1",
                                           "169.254.169.254", "fe80::1", "fd00::1", "100.64.0.1", "0.0.0.0",
                                           "::ffff:127.0.0.1", "224.0.0.1", "not-an-ip"))
