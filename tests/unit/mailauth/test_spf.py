"""SPF (RFC 7208) through pyspf, every lookup answered by a real DNS server on loopback."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest
import spf as pyspf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # tests/dnsfixture.py

from dnsfixture import DnsFixture  # noqa: E402
from postroom.mailauth.model import SPF_RESULTS, SpfResult  # noqa: E402
from postroom.mailauth.spf import REASON_MAX, check_spf, kept  # noqa: E402
from postroom.resolver import DnsSettings, Resolver  # noqa: E402

IP = "192.0.2.7"
HELO = "mx.client.test"


@pytest.fixture(scope="module")
def server() -> Iterator[DnsFixture]:
    with DnsFixture() as s:
        yield s


@pytest.fixture
def srv(server: DnsFixture) -> DnsFixture:
    """The module's server, emptied: each test publishes its own records."""
    server.records.clear()
    server.failing.clear()
    server.silenced.clear()
    server.queries.clear()
    return server


def check(srv: DnsFixture, mail_from: str, ip: str = IP, helo: str = HELO,
          timeout: float = 1.0) -> tuple[SpfResult, SpfResult | None]:
    # A long per-attempt timeout: only check_spf's own deadline may end a silent lookup.
    resolver = Resolver(DnsSettings(nameserver=(srv.host, srv.port), timeout=5.0, attempts=2))
    return asyncio.run(check_spf(resolver, ip, mail_from, helo, timeout))


def mailfrom(srv: DnsFixture, mail_from: str, ip: str = IP, **kw: object) -> SpfResult:
    return check(srv, mail_from, ip, **kw)[0]  # type: ignore[arg-type]


# -- the results ---------------------------------------------------------------------------

def test_pass_ip4_through_the_fixture(srv: DnsFixture) -> None:
    srv.txt("example.test", "v=spf1 ip4:192.0.2.0/24 -all")
    r = mailfrom(srv, "alice@example.test")
    assert r == SpfResult("pass", "example.test", "mailfrom", "example.test permits 192.0.2.7 via ip4:192.0.2.0/24")
    # pyspf asked our fixture, never the system resolver.
    assert ("example.test.", "TXT") in srv.queries


def test_pass_a_and_a_with_domain(srv: DnsFixture) -> None:
    srv.txt("example.test", "v=spf1 a -all")
    srv.a("example.test", IP)
    srv.txt("other.test", "v=spf1 a:hosts.other.test/30 -all")
    srv.a("hosts.other.test", "192.0.2.5")
    assert mailfrom(srv, "alice@example.test").result == "pass"
    assert mailfrom(srv, "alice@other.test").result == "pass"  # 192.0.2.4/30 holds .7
    assert mailfrom(srv, "alice@other.test", ip="192.0.2.8").result == "fail"


def test_pass_mx(srv: DnsFixture) -> None:
    srv.txt("example.test", "v=spf1 mx -all")
    srv.mx("example.test", [(10, "mx1.example.test"), (20, "mx2.example.test")])
    srv.a("mx1.example.test", "198.51.100.1")
    srv.a("mx2.example.test", IP)
    r = mailfrom(srv, "alice@example.test")
    assert (r.result, r.reason) == ("pass", "example.test permits 192.0.2.7 via mx")
    assert ("mx2.example.test.", "A") in srv.queries


def test_pass_include(srv: DnsFixture) -> None:
    srv.txt("example.test", "v=spf1 include:_spf.provider.test -all")
    srv.txt("_spf.provider.test", "v=spf1 ip4:198.51.100.0/24 -all")
    r = mailfrom(srv, "alice@example.test", ip="198.51.100.20")
    assert (r.result, r.reason) == ("pass", "example.test permits 198.51.100.20 via include:_spf.provider.test")
    # RFC 7208 §5.2: the included record's "-all" only means "no match" for the include.
    assert mailfrom(srv, "alice@example.test").result == "fail"


@pytest.mark.parametrize("record,result", [
    ("v=spf1 ip4:198.51.100.1 -all", "fail"),
    ("v=spf1 ip4:198.51.100.1 ~all", "softfail"),
    ("v=spf1 ip4:198.51.100.1 ?all", "neutral"),
    ("v=spf1 ip4:198.51.100.1", "neutral"),  # RFC 7208 §4.7: no match, no redirect
    ("v=spf1 -ip4:192.0.2.0/24 +all", "fail"),
])
def test_qualifiers(srv: DnsFixture, record: str, result: str) -> None:
    srv.txt("example.test", record)
    r = mailfrom(srv, "alice@example.test")
    assert r.result == result
    assert r.reason.startswith("example.test ") and "192.0.2.7" in r.reason


def test_none_without_record_or_domain(srv: DnsFixture) -> None:
    srv.txt("example.test", "google-site-verification=abc", "v=spf10 -all")  # not "v=spf1" (§4.5)
    r = mailfrom(srv, "alice@example.test")
    assert (r.result, r.reason) == ("none", "no SPF record for example.test")
    assert mailfrom(srv, "alice@nowhere.test").result == "none"  # NXDOMAIN (§4.3)
    assert ("nowhere.test.", "TXT") in srv.queries


def test_long_record_in_several_strings(srv: DnsFixture) -> None:
    # RFC 7208 §3.3: the strings of one TXT record are joined without spaces.
    nets = " ".join(f"ip4:198.51.{i}.0/24" for i in range(40))
    srv.txt("example.test", f"v=spf1 {nets} ip4:192.0.2.7 -all")
    assert mailfrom(srv, "alice@example.test").result == "pass"


# -- temporary errors: never read as "no record" (§2.6.6) ---------------------------------

def test_servfail_is_temperror(srv: DnsFixture) -> None:
    srv.servfail("example.test")
    r = mailfrom(srv, "alice@example.test")
    assert r.result == "temperror" and r.reason.startswith("example.test: ")
    srv.servfail("example.test", False)
    srv.txt("example.test", "v=spf1 include:broken.test -all")
    srv.servfail("broken.test")
    assert mailfrom(srv, "alice@example.test").result == "temperror"


def test_silent_nameserver_is_temperror_within_the_timeout(srv: DnsFixture) -> None:
    srv.silent("example.test")
    started = time.monotonic()
    r = mailfrom(srv, "alice@example.test", timeout=0.6)
    elapsed = time.monotonic() - started
    assert r.result == "temperror" and "timed out" in r.reason
    assert 0.5 <= elapsed < 1.3, elapsed


def test_one_deadline_for_all_the_lookups(srv: DnsFixture) -> None:
    # The record answers, an include never does: the whole check still ends in time.
    srv.txt("example.test", "v=spf1 include:slow.test -all")
    srv.silent("slow.test")
    started = time.monotonic()
    first, helo = check(srv, "alice@example.test", timeout=0.6)
    assert first.result == "temperror"
    assert helo is not None and helo.result == "none"  # the HELO check ran alongside
    assert time.monotonic() - started < 1.3


# -- permanent errors ------------------------------------------------------------------------

def test_two_records_are_permerror(srv: DnsFixture) -> None:
    srv.txt("example.test", "v=spf1 ip4:192.0.2.7 -all", "v=spf1 -all")  # RFC 7208 §4.5
    r = mailfrom(srv, "alice@example.test")
    assert r.result == "permerror" and "Two or more" in r.reason


@pytest.mark.parametrize("record", [
    "v=spf1 ip4:300.1.1.1 -all",
    "v=spf1 foo:bar -all",  # unknown mechanism (§4.6.1)
    "v=spf1 ip4:192.0.2.0/33 -all",
    "v=spf1 a:exa%mple.test -all",  # bad macro (§7.1)
    "v=spf1 redirect=a.test redirect=b.test",  # §6: at most once
    "v=spf1 include -all",
])
def test_syntax_errors_are_permerror(srv: DnsFixture, record: str) -> None:
    srv.txt("example.test", record)
    assert mailfrom(srv, "alice@example.test").result == "permerror"


def _chain(srv: DnsFixture, n: int) -> None:
    """example.test includes l1.test, which includes l2.test ... ln.test, which passes IP."""
    names = ["example.test"] + [f"l{i}.test" for i in range(1, n + 1)]
    for here, nxt in zip(names, names[1:]):
        srv.txt(here, f"v=spf1 include:{nxt} -all")
    srv.txt(names[-1], f"v=spf1 ip4:{IP} -all")


def test_ten_lookups_are_allowed(srv: DnsFixture) -> None:
    _chain(srv, 10)
    assert mailfrom(srv, "alice@example.test").result == "pass"


def test_eleven_lookups_are_permerror(srv: DnsFixture) -> None:
    # RFC 7208 §4.6.4: more than 10 DNS-querying terms.
    _chain(srv, 11)
    r = mailfrom(srv, "alice@example.test")
    assert r.result == "permerror" and "Too many DNS lookups" in r.reason
    assert ("l11.test.", "TXT") not in srv.queries  # stopped before the 11th was looked up


def test_more_than_two_void_lookups_are_permerror(srv: DnsFixture) -> None:
    # RFC 7208 §4.6.4: at most two lookups may answer NXDOMAIN or no data.
    srv.txt("example.test", "v=spf1 a:nx1.example.test a:nx2.example.test -all")
    assert mailfrom(srv, "alice@example.test").result == "fail"
    srv.txt("example.test", "v=spf1 a:nx1.example.test a:nx2.example.test a:nx3.example.test -all")
    r = mailfrom(srv, "alice@example.test")
    assert r.result == "permerror" and "Void lookup limit" in r.reason


def test_more_than_ten_mx_names_are_permerror(srv: DnsFixture) -> None:
    srv.txt("example.test", "v=spf1 mx -all")
    srv.mx("example.test", [(i, f"mx{i}.example.test") for i in range(11)])
    assert mailfrom(srv, "alice@example.test").result == "permerror"


@pytest.mark.parametrize("a,b", [
    ("v=spf1 include:b.test -all", "v=spf1 include:example.test -all"),
    ("v=spf1 redirect=b.test", "v=spf1 redirect=example.test"),
    ("v=spf1 include:example.test -all", None),  # includes itself
])
def test_loops_are_permerror(srv: DnsFixture, a: str, b: str | None) -> None:
    srv.txt("example.test", a)
    if b:
        srv.txt("b.test", b)
    assert mailfrom(srv, "alice@example.test").result == "permerror"
    assert len(srv.queries) <= 12


def test_unexpected_exception_is_permerror_and_logged(srv: DnsFixture, monkeypatch: pytest.MonkeyPatch,
                                                     postroom_log: list[str]) -> None:
    def boom(self: object, spf: object = None) -> object:
        raise RuntimeError("pyspf bug")

    monkeypatch.setattr(pyspf.query, "check", boom)
    r = mailfrom(srv, "alice@example.test")
    assert r.result == "permerror" and r.reason == "example.test: record could not be evaluated"
    assert any("pyspf failed" in line for line in postroom_log)


# -- identities ----------------------------------------------------------------------------

def test_ip6(srv: DnsFixture) -> None:
    srv.txt("example.test", "v=spf1 ip6:2001:db8::/32 a -all")
    srv.aaaa("example.test", "2001:db9::25")
    assert mailfrom(srv, "alice@example.test", ip="2001:db8::5").result == "pass"
    assert mailfrom(srv, "alice@example.test", ip="2001:db9::25").result == "pass"  # a → AAAA
    assert mailfrom(srv, "alice@example.test", ip="2001:dba::1").result == "fail"
    assert mailfrom(srv, "alice@example.test", ip=IP).result == "fail"  # ip6 never matches IPv4
    # An IPv4-mapped client is checked as IPv4 (RFC 7208 §5).
    srv.txt("example.test", "v=spf1 ip4:192.0.2.0/24 -all")
    assert mailfrom(srv, "alice@example.test", ip="::ffff:192.0.2.7").result == "pass"


def test_helo_identity_checked_too(srv: DnsFixture) -> None:
    srv.txt("example.test", "v=spf1 ip4:192.0.2.0/24 -all")
    srv.txt(HELO, "v=spf1 a -all")
    srv.a(HELO, "198.51.100.1")
    first, helo = check(srv, "alice@example.test")
    assert first.result == "pass" and first.scope == "mailfrom"
    assert helo == SpfResult("fail", HELO, "helo", "mx.client.test does not permit 192.0.2.7 via -all")


@pytest.mark.parametrize("name", ["[192.0.2.7]", "[IPv6:2001:db8::1]", "192.0.2.7", "", "bad name!", "a..b"])
def test_helo_that_is_not_a_domain_has_no_result(srv: DnsFixture, name: str) -> None:
    srv.txt("example.test", "v=spf1 ip4:192.0.2.0/24 -all")
    first, helo = check(srv, "alice@example.test", helo=name)
    assert first.result == "pass" and helo is None


def test_single_label_helo_is_none_without_lookups(srv: DnsFixture) -> None:
    srv.txt("example.test", "v=spf1 -all")
    _, helo = check(srv, "alice@example.test", helo="localhost")
    assert helo is not None and (helo.result, helo.domain, helo.scope) == ("none", "localhost", "helo")
    assert not any(name.startswith("localhost") for name, _ in srv.queries)


def test_null_sender_uses_helo(srv: DnsFixture) -> None:
    # RFC 7208 §2.4: MAIL FROM:<> is checked as postmaster@<HELO>.
    srv.txt(HELO, "v=spf1 ip4:192.0.2.0/24 -all")
    first, helo = check(srv, "")
    assert first == helo == SpfResult("pass", HELO, "helo", "mx.client.test permits 192.0.2.7 via ip4:192.0.2.0/24")
    assert srv.queries.count((HELO + ".", "TXT")) == 1  # checked once, not twice


def test_null_sender_with_literal_helo(srv: DnsFixture) -> None:
    first, helo = check(srv, "", helo="[192.0.2.7]")
    assert (first.result, first.scope, helo) == ("none", "helo", None)
    assert srv.queries == []


def test_mail_from_domain_normalised(srv: DnsFixture) -> None:
    srv.txt("example.test", "v=spf1 ip4:192.0.2.0/24 -all")
    assert mailfrom(srv, "Alice@Example.TEST.").domain == "example.test"
    # The domain follows the last "@": a quoted local part may hold one.
    r = mailfrom(srv, '"bob@evil.test"@example.test')
    assert (r.result, r.domain) == ("pass", "example.test")
    assert mailfrom(srv, "@example.test").result == "pass"  # §4.3: local part "postmaster"


@pytest.mark.parametrize("sender", ["alice@[192.0.2.1]", "alice@", "alice@exa mple.test", "alice@-bad-.test"])
def test_mail_from_that_is_no_domain_is_none(srv: DnsFixture, sender: str) -> None:
    r = mailfrom(srv, sender)
    assert r.result == "none" and r.scope == "mailfrom"
    assert not any(n.startswith(("192.", "exa", "-bad")) for n, _ in srv.queries)


def test_idn_domain_as_a_label(srv: DnsFixture) -> None:
    srv.txt("xn--bcher-kva.test", "v=spf1 ip4:192.0.2.0/24 -all")
    r = mailfrom(srv, "alice@bücher.test")
    assert (r.result, r.domain) == ("pass", "xn--bcher-kva.test")


# -- macros and modifiers ------------------------------------------------------------------

def test_exists_with_ip_macro(srv: DnsFixture) -> None:
    # RFC 7208 §7: %{i} is the client address, %{ir} reversed, %{l} the local part.
    srv.txt("example.test", "v=spf1 exists:%{i}._ip.example.test exists:%{l}.%{ir}._u.example.test -all")
    srv.a("192.0.2.7._ip.example.test", "127.0.0.2")
    srv.a("bob.8.2.0.192._u.example.test", "127.0.0.2")
    assert mailfrom(srv, "alice@example.test").result == "pass"
    assert mailfrom(srv, "bob@example.test", ip="192.0.2.8").result == "pass"
    assert mailfrom(srv, "alice@example.test", ip="192.0.2.8").result == "fail"
    assert ("192.0.2.7._ip.example.test.", "A") in srv.queries


def test_redirect(srv: DnsFixture) -> None:
    srv.txt("example.test", "v=spf1 redirect=_spf.example.test")
    srv.txt("_spf.example.test", "v=spf1 ip4:192.0.2.0/24 -all")
    r = mailfrom(srv, "alice@example.test")
    assert (r.result, r.domain) == ("pass", "example.test")
    assert mailfrom(srv, "alice@example.test", ip="198.51.100.1").result == "fail"
    # §6.1: a redirect to a domain without a record is permerror.
    srv.txt("example.test", "v=spf1 redirect=norecord.test")
    assert mailfrom(srv, "alice@example.test").result == "permerror"


def test_exp_text_stays_out_of_the_reason(srv: DnsFixture) -> None:
    srv.txt("example.test", "v=spf1 -all exp=explain.example.test")
    srv.txt("explain.example.test", "Trust this mail (really)")
    r = mailfrom(srv, "alice@example.test")
    assert (r.result, r.reason) == ("fail", "example.test does not permit 192.0.2.7 via -all")


def test_reason_is_one_short_ascii_line(srv: DnsFixture) -> None:
    # Published with _quoted: the fixture's txt() cannot split non-ASCII text over 255 bytes.
    srv.set("example.test", "TXT", [_quoted(("v=spf1 " + "bogus(\\)ünïcode" * 40 + " -all").encode())])
    r = mailfrom(srv, "alice@example.test")
    assert r.result == "permerror"
    assert len(r.reason) <= REASON_MAX and r.reason.isascii() and r.reason.isprintable()
    assert not set("()\\\r\n") & set(r.reason)


# -- the DNS plumbing ----------------------------------------------------------------------

def test_pyspf_outside_check_spf_never_uses_the_system_resolver() -> None:
    q = pyspf.query(i=IP, s="alice@example.com", h=HELO)
    result, _, explanation = q.check()
    assert result == "temperror" and "outside check_spf" in explanation


def test_concurrent_checks_use_their_own_resolver(srv: DnsFixture) -> None:
    # Same name, different answers on two servers: each check's thread asks its own.
    srv.txt("example.test", "v=spf1 ip4:192.0.2.0/24 -all")
    with DnsFixture() as other:
        other.txt("example.test", "v=spf1 -all")

        async def both() -> list[tuple[SpfResult, SpfResult | None]]:
            r1 = Resolver(DnsSettings(nameserver=(srv.host, srv.port), timeout=2, attempts=1))
            r2 = Resolver(DnsSettings(nameserver=(other.host, other.port), timeout=2, attempts=1))
            return await asyncio.gather(*(check_spf(r1 if i % 2 else r2, IP, "a@example.test", HELO, 2.0)
                                          for i in range(20)))

        results = asyncio.run(both())
    assert [r[0].result for r in results] == ["fail", "pass"] * 10


# -- garbage never raises ------------------------------------------------------------------

def _quoted(record: bytes) -> str:
    """A TXT rdata in zone-file form for any bytes (\\DDD escapes), 255 bytes a string."""
    parts = [record[i:i + 255] for i in range(0, len(record), 255)] or [b""]
    return " ".join('"' + "".join(chr(b) if 0x20 <= b < 0x7F and b not in b'"\\' else f"\\{b:03d}"
                                  for b in p) + '"' for p in parts)


TOKENS = ["v=spf1 ", " ", "ip4:", "ip6:", "a", "mx", "ptr", "exists:", "include:", "redirect=", "exp=",
          "all", "-", "+", "~", "?", "%{", "}", "%{i}", "%{ir}", "%{l}", "%{d2}", "%{h}", "%{p}", "%{c}",
          "%%", "%_", "%-", ".", "/", "//", ":", "=", "fuzz.test", "other.test", "192.0.2.7", "::1",
          "/33", "/129", "\t", "é", "\x00", "\n", "(", ")", ","]
RECORDS = st.one_of(
    st.lists(st.sampled_from(TOKENS) | st.text(max_size=4), max_size=30).map(lambda xs: ("v=spf1 " + "".join(xs)).encode()),
    st.binary(max_size=300),
    st.text(max_size=80).map(lambda s: s.encode()),
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records=st.lists(RECORDS, min_size=1, max_size=2), other=RECORDS,
       sender=st.sampled_from(["a@fuzz.test", "", "%{i}@fuzz.test", "x@other.test"]) | st.text(max_size=20),
       helo=st.sampled_from(["fuzz.test", "[1.2.3.4]", "other.test"]) | st.text(max_size=20),
       ip=st.sampled_from(["192.0.2.7", "2001:db8::1", "::ffff:192.0.2.7"]))
def test_garbage_never_raises(server: DnsFixture, records: list[bytes], other: bytes, sender: str,
                              helo: str, ip: str) -> None:
    server.failing.clear()
    server.silenced.clear()
    server.set("fuzz.test", "TXT", [_quoted(r) for r in records])
    server.set("other.test", "TXT", [_quoted(other)])
    first, second = check(server, sender, ip=ip, helo=helo, timeout=2.0)
    for r in (first, second):
        if r is not None:
            assert r.result in SPF_RESULTS
            assert r.scope in ("mailfrom", "helo")
            assert len(r.reason) <= REASON_MAX and r.reason.isascii() and r.reason.isprintable()


def test_results_are_kept_as_long_as_their_answers() -> None:
    """A result is reused until the shortest TTL of the answers it used; never across resolvers."""
    with DnsFixture(ttl=300) as long_ttl:
        long_ttl.txt("cached.test", f"v=spf1 ip4:{IP} -all")
        long_ttl.txt(HELO, "v=spf1 -all")
        resolver = Resolver(DnsSettings(nameserver=(long_ttl.host, long_ttl.port), timeout=1.0, attempts=1))

        async def twice() -> tuple[SpfResult, SpfResult]:
            first = (await check_spf(resolver, IP, "a@cached.test", HELO, 1.0))[0]
            asked = len(long_ttl.queries)
            long_ttl.txt("cached.test", "v=spf1 -all")  # changed at the source: the TTL still holds
            second = (await check_spf(resolver, IP, "a@cached.test", HELO, 1.0))[0]
            assert len(long_ttl.queries) == asked  # no lookup at all
            return first, second
        first, second = asyncio.run(twice())
        assert first.result == second.result == "pass"
        other = Resolver(DnsSettings(nameserver=(long_ttl.host, long_ttl.port), timeout=1.0, attempts=1))
        assert asyncio.run(check_spf(other, IP, "a@cached.test", HELO, 1.0))[0].result == "fail"
    with DnsFixture(ttl=1) as short_ttl:  # answers that expire at once: every check asks again
        short_ttl.txt("cached.test", f"v=spf1 ip4:{IP} -all")
        resolver = Resolver(DnsSettings(nameserver=(short_ttl.host, short_ttl.port), timeout=1.0, attempts=1))

        async def again() -> str:
            await check_spf(resolver, IP, "a@cached.test", HELO, 1.0)
            short_ttl.txt("cached.test", "v=spf1 -all")
            await asyncio.sleep(1.1)
            return (await check_spf(resolver, IP, "a@cached.test", HELO, 1.0))[0].result
        assert asyncio.run(again()) == "fail"


def test_kept_answers_as_check_spf_without_a_lookup() -> None:
    """``kept`` (inbound.check's way to skip the SPF task) gives what check_spf gives once
    both results are kept, and ``None`` whenever check_spf would have to do more."""
    with DnsFixture(ttl=300) as dns:
        dns.txt("kept.test", f"v=spf1 ip4:{IP} -all")
        dns.txt(HELO, "v=spf1 -all")
        resolver = Resolver(DnsSettings(nameserver=(dns.host, dns.port), timeout=1.0, attempts=1))
        assert kept(resolver, IP, "a@kept.test", HELO) is None  # nothing kept yet
        first = asyncio.run(check_spf(resolver, IP, "a@kept.test", HELO, 1.0))
        asked = len(dns.queries)
        assert kept(resolver, IP, "a@kept.test", f"  {HELO} ") == first  # HELO stripped, as check_spf
        assert (first[0].result, first[1] and first[1].result) == ("pass", "fail")
        assert len(dns.queries) == asked
        assert kept(resolver, "192.0.2.8", "a@kept.test", HELO) is None  # another client
        assert kept(resolver, IP, "b@kept.test", HELO) is None  # another local part (macros may use it)
        assert kept(resolver, IP, "", HELO) is None  # null sender: check_spf asks the HELO check once
        assert kept(resolver, IP, "a@kept.test", "[192.0.2.7]") is None  # no HELO domain
        assert kept(resolver, "not an ip", "a@kept.test", HELO) is None
