"""DMARC (RFC 7489) against a real DNS server on loopback: discovery, alignment, policy."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # tests/dnsfixture.py

from dnsfixture import DnsFixture  # noqa: E402
from postroom.mailauth.dmarc import (  # noqa: E402
    check_dmarc,
    from_domains,
    organizational_domain,
    parse_record,
)
from postroom.mailauth.model import DkimResult, DmarcResult, SpfResult  # noqa: E402
from postroom.resolver import DnsSettings, Resolver  # noqa: E402


@pytest.fixture(scope="module")
def server() -> Iterator[DnsFixture]:
    with DnsFixture() as srv:
        yield srv


@pytest.fixture
def dns(server: DnsFixture) -> DnsFixture:
    with server._lock:
        server.records.clear()
        server.failing.clear()
        server.queries.clear()
    return server


def resolver(srv: DnsFixture) -> Resolver:
    return Resolver(DnsSettings(nameserver=(srv.host, srv.port), timeout=2.0, attempts=1))


def msg(*froms: str) -> bytes:
    head = b"".join(b"From: " + f.encode() + b"\r\n" for f in froms)
    return head + b"To: you@example.net\r\nSubject: hi\r\n\r\nbody\r\n"


def run(srv: DnsFixture, message: bytes, spf: SpfResult | None = None, dkim: tuple[DkimResult, ...] = (),
        sample: bool | None = None) -> DmarcResult:
    calls: list[int] = []

    def sampler(pct: int) -> bool:
        calls.append(pct)
        assert sample is not None, "sampled although no pct applies"
        return sample

    return asyncio.run(check_dmarc(resolver(srv), message, spf, dkim, sample=sampler))


SPF_PASS = SpfResult("pass", "example.com")
DKIM_PASS = (DkimResult("pass", "example.com", "sel", "rsa-sha256", "abcdefgh"),)


# -- alignment -----------------------------------------------------------------------


def test_pass_via_aligned_spf(dns: DnsFixture) -> None:
    dns.txt("_dmarc.example.com", "v=DMARC1; p=reject")
    r = run(dns, msg("Alice <alice@example.com>"), SpfResult("pass", "bounces.example.com"))
    assert (r.result, r.spf_aligned, r.dkim_aligned) == ("pass", True, False)
    assert (r.from_domain, r.org_domain, r.published_policy, r.policy) == ("example.com", "example.com",
                                                                             "reject", "reject")


def test_pass_via_aligned_dkim(dns: DnsFixture) -> None:
    dns.txt("_dmarc.example.com", "v=DMARC1; p=reject")
    spf = SpfResult("pass", "mailer.example.net")  # a third party's envelope: not aligned
    r = run(dns, msg("alice@example.com"), spf, DKIM_PASS)
    assert (r.result, r.spf_aligned, r.dkim_aligned) == ("pass", False, True)


def test_dkim_fail_or_unaligned_does_not_pass(dns: DnsFixture) -> None:
    dns.txt("_dmarc.example.com", "v=DMARC1; p=reject")
    dkim = (DkimResult("fail", "example.com"), DkimResult("pass", "example.net"))
    r = run(dns, msg("alice@example.com"), SpfResult("softfail", "example.com"), dkim)
    assert (r.result, r.policy) == ("fail", "reject")


@pytest.mark.parametrize("record, dkim_domain, spf_domain, result", [
    ("v=DMARC1; p=reject", "mail.example.com", "x.example.net", "pass"),  # relaxed: same org domain
    ("v=DMARC1; p=reject; adkim=s", "mail.example.com", "x.example.net", "fail"),
    ("v=DMARC1; p=reject; adkim=s", "EXAMPLE.com.", "x.example.net", "pass"),  # strict is exact, any case
    ("v=DMARC1; p=reject; adkim=S", "mail.example.com", "x.example.net", "fail"),
    ("v=DMARC1; p=reject", "x.example.net", "bounce.example.com", "pass"),
    ("v=DMARC1; p=reject; aspf=s", "x.example.net", "bounce.example.com", "fail"),
    ("v=DMARC1; p=reject; aspf=s; adkim=r", "mail.example.com", "bounce.example.com", "pass"),
    ("v=DMARC1; p=reject; adkim=x", "mail.example.com", "x.example.net", "pass"),  # bad value: default r
    ("v=DMARC1; p=reject", "example.com.evil.net", "x.example.net", "fail"),
])
def test_relaxed_and_strict(dns: DnsFixture, record: str, dkim_domain: str, spf_domain: str, result: str) -> None:
    dns.txt("_dmarc.example.com", record)
    r = run(dns, msg("alice@example.com"), SpfResult("pass", spf_domain), (DkimResult("pass", dkim_domain),))
    assert r.result == result


def test_null_sender_helo_result_counts(dns: DnsFixture) -> None:
    # MAIL FROM:<> makes the MAIL FROM identity postmaster@<HELO> (RFC 7208 §2.4).
    dns.txt("_dmarc.example.com", "v=DMARC1; p=reject")
    r = run(dns, msg("mailer-daemon@example.com"), SpfResult("pass", "mx.example.com", scope="helo"))
    assert (r.result, r.spf_aligned) == ("pass", True)


# -- discovery -----------------------------------------------------------------------


def test_subdomain_policy_from_org_record(dns: DnsFixture) -> None:
    dns.txt("_dmarc.example.com", "v=DMARC1; p=reject; sp=quarantine")
    r = run(dns, msg("news@news.example.com"))
    assert (r.result, r.from_domain, r.org_domain) == ("fail", "news.example.com", "example.com")
    assert (r.published_policy, r.policy) == ("reject", "quarantine")


def test_sp_absent_subdomain_gets_p(dns: DnsFixture) -> None:
    dns.txt("_dmarc.example.com", "v=DMARC1; p=reject")
    assert run(dns, msg("news@news.example.com")).policy == "reject"


def test_record_at_subdomain_itself_uses_its_p(dns: DnsFixture) -> None:
    dns.txt("_dmarc.example.com", "v=DMARC1; p=none; sp=none")
    dns.txt("_dmarc.news.example.com", "v=DMARC1; p=reject; sp=none")
    r = run(dns, msg("news@news.example.com"))
    assert (r.result, r.policy) == ("fail", "reject")
    assert ("_dmarc.example.com.", "TXT") not in dns.queries


def test_org_domain_fallback_under_multi_label_suffix(dns: DnsFixture) -> None:
    dns.txt("_dmarc.example.co.uk", "v=DMARC1; p=quarantine")
    r = run(dns, msg("a@mail.example.co.uk"))
    assert (r.result, r.org_domain, r.policy) == ("fail", "example.co.uk", "quarantine")
    assert dns.queries == [("_dmarc.mail.example.co.uk.", "TXT"), ("_dmarc.example.co.uk.", "TXT")]


def test_reject_and_quarantine_fail(dns: DnsFixture) -> None:
    dns.txt("_dmarc.example.com", "v=DMARC1; p=reject")
    dns.txt("_dmarc.example.org", "v=DMARC1;p=quarantine;rua=mailto:d@example.org")
    spf = SpfResult("fail", "evil.example")
    r = run(dns, msg("a@example.com"), spf)
    assert (r.result, r.policy, r.published_policy, r.spf_aligned, r.dkim_aligned) == (
        "fail", "reject", "reject", False, False)
    r = run(dns, msg("a@example.org"), spf)
    assert (r.result, r.policy) == ("fail", "quarantine")


def test_no_record_is_none(dns: DnsFixture) -> None:
    dns.txt("example.com", "v=spf1 -all")
    r = run(dns, msg("a@example.com"), SPF_PASS, DKIM_PASS)
    assert (r.result, r.from_domain, r.policy, r.published_policy) == ("none", "example.com", "none", "")


@pytest.mark.parametrize("records, result", [
    (["v=DMARC1; p=reject", "v=DMARC1; p=none"], "none"),  # §6.6.3 step 5
    (["v=DMARC1; p=reject", "some-verification=abc"], "fail"),  # others are discarded first
    (["v=spf1 -all"], "none"),
    (["v=DMARC2; p=reject"], "none"),
    (["v=dmarc1; p=reject"], "none"),  # "DMARC1" is case-sensitive in the ABNF (§6.4)
    (["V = DMARC1 ; P = Reject"], "fail"),  # tag names and policy values are not
    (["v=DMARC1"], "none"),  # no p=, no rua=
    (["v=DMARC1; p=bogus"], "none"),
    (["v=DMARC1; rua=mailto:dmarc@example.com"], "fail"),  # §6.6.3 step 6: as p=none
    (["v=DMARC1; p=reject; sp=bogus; rua=mailto:d@example.com"], "fail"),
    (["v=DMARC1; p=reject; sp=bogus"], "none"),
    (["v=DMARC1;p=reject"], "fail"),
    (["v=DMARC1; p=reject; pct=abc; foo=bar"], "fail"),
])
def test_record_sets(dns: DnsFixture, records: list[str], result: str) -> None:
    dns.txt("_dmarc.example.com", *records)
    assert run(dns, msg("a@example.com")).result == result


def test_missing_p_with_rua_acts_as_none(dns: DnsFixture) -> None:
    dns.txt("_dmarc.example.com", "v=DMARC1; rua=mailto:dmarc@example.com")
    r = run(dns, msg("a@example.com"))
    assert (r.result, r.policy, r.published_policy) == ("fail", "none", "none")


def test_several_records_at_from_domain_do_not_fall_back(dns: DnsFixture) -> None:
    dns.txt("_dmarc.mail.example.com", "v=DMARC1; p=none", "v=DMARC1; p=none; adkim=s")
    dns.txt("_dmarc.example.com", "v=DMARC1; p=reject")
    r = run(dns, msg("a@mail.example.com"))
    assert r.result == "none" and "several" in r.reason
    assert ("_dmarc.example.com.", "TXT") not in dns.queries


def test_temperror_on_servfail(dns: DnsFixture) -> None:
    dns.servfail("_dmarc.example.com")
    r = run(dns, msg("a@example.com"), SpfResult("pass", "bounce.example.com"))
    assert (r.result, r.published_policy, r.from_domain) == ("temperror", "", "example.com")
    assert r.spf_aligned  # relaxed alignment: tells policy a retry could not matter


def test_temperror_on_servfail_at_org_domain(dns: DnsFixture) -> None:
    dns.servfail("_dmarc.example.com")
    r = run(dns, msg("a@mail.example.com"))
    assert (r.result, r.spf_aligned, r.dkim_aligned) == ("temperror", False, False)


def test_aligned_spf_temperror_makes_a_fail_temperror(dns: DnsFixture) -> None:
    dns.txt("_dmarc.example.com", "v=DMARC1; p=reject")
    r = run(dns, msg("a@example.com"), SpfResult("temperror", "example.com"))
    assert (r.result, r.policy, r.published_policy) == ("temperror", "reject", "reject")
    r = run(dns, msg("a@example.com"), SpfResult("temperror", "evil.example"))  # not aligned: no hope
    assert r.result == "fail"


def test_aligned_dkim_temperror_makes_a_fail_temperror(dns: DnsFixture) -> None:
    dns.txt("_dmarc.example.com", "v=DMARC1; p=quarantine")
    r = run(dns, msg("a@example.com"), None, (DkimResult("temperror", "example.com"),))
    assert (r.result, r.policy) == ("temperror", "quarantine")


def test_np_for_non_existent_subdomain(dns: DnsFixture) -> None:
    dns.txt("_dmarc.example.com", "v=DMARC1; p=quarantine; sp=none; np=reject")
    dns.a("real.example.com", "192.0.2.1")
    assert run(dns, msg("a@ghost.example.com")).policy == "reject"  # RFC 9091 §4.1
    assert run(dns, msg("a@real.example.com")).policy == "none"
    dns.txt("txtonly.example.com", "hello")  # exists, but no A/AAAA/MX: "non-existent" (§2.1)
    assert run(dns, msg("a@txtonly.example.com")).policy == "reject"
    assert run(dns, msg("a@example.com")).policy == "quarantine"  # np is for subdomains


def test_np_lookup_servfail_is_temperror_with_strictest(dns: DnsFixture) -> None:
    dns.txt("_dmarc.example.com", "v=DMARC1; p=quarantine; sp=none; np=reject")
    dns.servfail("ghost.example.com")
    r = run(dns, msg("a@ghost.example.com"))
    assert (r.result, r.policy) == ("temperror", "reject")


# -- From ----------------------------------------------------------------------------


def test_several_from_domains_permerror_with_strictest_failing_policy(dns: DnsFixture) -> None:
    dns.txt("_dmarc.example.com", "v=DMARC1; p=reject")
    dns.txt("_dmarc.example.net", "v=DMARC1; p=none")
    r = run(dns, msg("a@example.net", "b@example.com"), SpfResult("pass", "example.net"))
    assert (r.result, r.from_domain, r.policy) == ("permerror", "example.net", "reject")
    assert "several From domains" in r.reason
    r = run(dns, msg("a@example.net, b@example.com"), SpfResult("pass", "example.net"))
    assert (r.result, r.policy) == ("permerror", "reject")


def test_several_from_fields_same_domain_is_evaluated(dns: DnsFixture) -> None:
    dns.txt("_dmarc.example.com", "v=DMARC1; p=reject")
    r = run(dns, msg("a@example.com", "B <b@EXAMPLE.com>"), SPF_PASS)
    assert r.result == "pass"


@pytest.mark.parametrize("message", [
    b"To: a@example.com\r\nSubject: no from\r\n\r\nFrom: a@example.com\r\n",
    b"",
    b"From: \r\n\r\n",
    b"From: undisclosed-recipients:;\r\n\r\n",
    b"From: just a name\r\n\r\n",
    b"From: a@[192.0.2.1]\r\n\r\n",
    b"From: a@example..com\r\n\r\n",
    b"From: a@-example.com\r\n\r\n",
    b"From: a@b\xff.com\r\n\r\n",
])
def test_unusable_from_is_permerror(dns: DnsFixture, message: bytes) -> None:
    r = run(dns, message)
    assert (r.result, r.policy) == ("permerror", "none")
    assert dns.queries == []


def test_from_with_a_bad_mailbox_still_checks_the_good_domain(dns: DnsFixture) -> None:
    dns.txt("_dmarc.example.com", "v=DMARC1; p=reject")
    r = run(dns, msg("a@example.com, garbage"))
    assert (r.result, r.policy) == ("permerror", "reject")


# -- pct -----------------------------------------------------------------------------


@pytest.mark.parametrize("record, sampled, policy", [
    ("v=DMARC1; p=reject; pct=50", True, "reject"),
    ("v=DMARC1; p=reject; pct=50", False, "quarantine"),
    ("v=DMARC1; p=quarantine; pct=10", False, "none"),
    ("v=DMARC1; p=reject; pct=0", False, "quarantine"),
    ("v=DMARC1; p=reject; pct=100", None, "reject"),  # no sampling at all
    ("v=DMARC1; p=reject; pct=101", None, "reject"),  # invalid: ignored
    ("v=DMARC1; p=none; pct=10", None, "none"),
])
def test_pct(dns: DnsFixture, record: str, sampled: bool | None, policy: str) -> None:
    dns.txt("_dmarc.example.com", record)
    r = run(dns, msg("a@example.com"), sample=sampled)
    assert (r.result, r.policy, r.published_policy) == ("fail", policy, record.split("p=")[1].split(";")[0])


def test_pct_does_not_touch_a_pass(dns: DnsFixture) -> None:
    dns.txt("_dmarc.example.com", "v=DMARC1; p=reject; pct=0")
    assert run(dns, msg("a@example.com"), SPF_PASS).result == "pass"  # sampler would assert


def test_default_sampling_is_about_pct(dns: DnsFixture) -> None:
    dns.txt("_dmarc.example.com", "v=DMARC1; p=reject; pct=50")
    res = resolver(dns)

    async def many() -> list[str]:
        return [(await check_dmarc(res, msg("a@example.com"), None, ())).policy for _ in range(60)]

    policies = asyncio.run(many())
    assert set(policies) == {"reject", "quarantine"}  # 2 * 0.5**60: never flaky in practice


# -- pure parts ----------------------------------------------------------------------


@pytest.mark.parametrize("domain, org", [
    ("example.com", "example.com"),
    ("a.b.example.com", "example.com"),
    ("mail.example.co.uk", "example.co.uk"),
    ("MAIL.Example.CO.UK.", "example.co.uk"),
    ("co.uk", "co.uk"),  # a public suffix is its own
    ("com", "com"),
    ("user.github.io", "user.github.io"),  # the list's private section counts
    ("bücher.example.de", "example.de"),
    ("a.bücher.de", "xn--bcher-kva.de"),
])
def test_organizational_domain(domain: str, org: str) -> None:
    assert organizational_domain(domain) == org


@pytest.mark.parametrize("message, domains", [
    (b"From: Alice <alice@Example.COM>\r\n\r\n", ["example.com"]),
    (b"from : alice@example.com\n\n", ["example.com"]),
    (b"FROM:\r\n  =?utf-8?q?A?= <a@example.com>\r\n\r\n", ["example.com"]),
    (b"From: \"x@evil.test\" <a@example.com>\r\n\r\n", ["example.com"]),
    (b"From: a@example.com (b@evil.test)\r\n\r\n", ["example.com"]),
    (b"From: a@x.test, b@y.test, c@x.test\r\n\r\n", ["x.test", "y.test"]),
    (b"From: a@x.test\r\nFrom: b@y.test\r\n\r\n", ["x.test", "y.test"]),
    (b"From: a@b\xc3\xbccher.de\r\n\r\n", ["xn--bcher-kva.de"]),
    (b"From: a@example.com.\r\n\r\n", ["example.com"]),
    (b"From: group: a@x.test, b@x.test;\r\n\r\n", ["x.test"]),
    (b"Subject: x\r\n\r\nFrom: a@x.test\r\n", None),
    (b"From a@x.test Mon Jan 1\r\nSubject: x\r\n\r\n", None),  # an mbox line, no field
    (b"From: junk\r\n\r\n", []),
    (b"From: a@x.test, junk\r\n\r\n", []),
    (b"From:\r\n\r\n", []),
])
def test_from_domains(message: bytes, domains: list[str] | None) -> None:
    assert from_domains(message) == domains


@given(st.binary(max_size=400))
@settings(max_examples=300, deadline=None)
def test_from_domains_never_raises(data: bytes) -> None:
    got = from_domains(b"From: " + data + b"\r\n\r\nbody")
    assert got is None or all(isinstance(d, str) and d == d.lower() for d in got)


_RECORD_TEXT = st.one_of(
    st.text(max_size=200),
    st.lists(st.sampled_from(["v=DMARC1", "p=reject", "p=", "sp=none", "np=x", "pct=", "pct=999", "pct=-1",
                              "adkim=s", "aspf=q", "rua=", "rua=mailto:a@b", ";", "=", " ", "\t", "v=DMARC1;",
                              "p=quarantine", "\x00", "é"]), max_size=12).map("".join),
)


@given(_RECORD_TEXT)
@settings(max_examples=400, deadline=None)
def test_parse_record_never_raises(text: str) -> None:
    rec = parse_record(text)
    if rec is not None:
        assert rec.p in ("none", "quarantine", "reject") and 0 <= rec.pct <= 100


@given(st.lists(st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=0x2FF), max_size=120)
                .filter(lambda t: t.strip() != ""), min_size=1, max_size=3))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_garbage_records_never_raise(dns: DnsFixture, texts: list[str]) -> None:
    dns.txt("_dmarc.example.com", *(t if i % 2 else "v=DMARC1;" + t for i, t in enumerate(texts)))
    r = run(dns, msg("a@example.com"), SPF_PASS, sample=False)
    assert r.result in ("pass", "none")
    assert r.policy in ("none", "quarantine", "reject")
