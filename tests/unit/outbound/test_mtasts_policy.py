"""MTA-STS policy text (RFC 8461 §3.1, §3.2, §4.1), the [mta_sts] settings, TLS-RPT counts (RFC 8460)."""

from __future__ import annotations

import json
import re
import ssl
from pathlib import Path

import pytest
from mtasts_grammar import grammar_ok

from postroom.config import from_dict
from postroom.outbound.stspolicy import (
    MAX_AGE_LIMIT,
    Policy,
    PolicyError,
    is_sts_record,
    mx_matches,
    parse_policy,
    parse_settings,
    parse_sts_record,
    policy_id,
    published,
    render_policy,
)
from postroom.outbound.tlsrpt import TlsReportCounts, build_report, classify


@pytest.mark.parametrize("policy", [
    Policy("enforce", 604800, ("mx.example.org",)),
    Policy("testing", 86400, ("mx1.example.org", "*.example.net")),
    Policy("none", 1, ()),
    Policy("enforce", MAX_AGE_LIMIT, ("a.b",)),
])
def test_rendered_policy_matches_the_grammar_and_parses_back(policy):
    body = render_policy(policy)
    assert grammar_ok(body), body
    assert body.endswith("\r\n") and body.startswith("version: STSv1\r\n")
    assert parse_policy(body) == policy


def test_grammar_checker_rejects_what_the_rfc_rejects():
    assert not grammar_ok("version: STSv1\r\n mode: enforce\r\nmax_age: 1\r\nmx: a.b\r\n")  # leading WSP
    assert not grammar_ok("version: STSv1\r\nmode: enforce\r\nmax_age: 1\r\n")  # no mx
    assert not grammar_ok("version: STSv1\r\nmode: Enforce\r\nmax_age: 1\r\nmx: a.b\r\n")  # case-sensitive
    assert not grammar_ok("version: STSv1\r\nmode: enforce\r\nmax_age: 12345678901\r\nmx: a.b\r\n")


RFC_EXAMPLE = "version: STSv1\r\nmode: enforce\nmx: mail.example.com\nmx: *.example.net\nmx: backupmx.example.com\n" \
              "max_age: 604800"


@pytest.mark.parametrize("body,expected", [
    (RFC_EXAMPLE, Policy("enforce", 604800, ("mail.example.com", "*.example.net", "backupmx.example.com"))),
    ("version: STSv1\nmode: testing\nmx: MX.Example.ORG  \nmax_age: 86400\n",
     Policy("testing", 86400, ("mx.example.org",))),
    ("version: STSv1\nmode: none\nmax_age: 0\n", Policy("none", 0, ())),
    ("version:STSv1\nmode:\tenforce\nmx:a.example\nmax_age:9999999999\n",  # capped at one year
     Policy("enforce", MAX_AGE_LIMIT, ("a.example",))),
    ("version: STSv1\nfuture_field: some value here\nmode: enforce\nmx: a.example\nmax_age: 5\n",
     Policy("enforce", 5, ("a.example",))),
])
def test_parse_valid(body, expected):
    assert parse_policy(body) == expected
    assert parse_policy(body.encode()) == expected


@pytest.mark.parametrize("body,why", [
    ("", "empty"),
    ("version: STSv2\nmode: enforce\nmx: a.b\nmax_age: 1\n", "version"),
    ("mode: enforce\nmx: a.b\nmax_age: 1\n", "no version"),
    ("version: STSv1\nmode: strict\nmx: a.b\nmax_age: 1\n", "mode"),
    ("version: STSv1\nmode: enforce\nmx: a.b\n", "max_age"),
    ("version: STSv1\nmode: enforce\nmx: a.b\nmax_age: -1\n", "max_age"),
    ("version: STSv1\nmode: enforce\nmax_age: 1\n", "no mx"),
    ("version: STSv1\nmode: enforce\nmx: *.*.b\nmax_age: 1\n", "mx"),
    ("version: STSv1\nmode: enforce\nmx: a..b\nmax_age: 1\n", "mx"),
    ("version: STSv1\nmode: enforce\nmode: none\nmx: a.b\nmax_age: 1\n", "twice"),
    (" version: STSv1\nmode: enforce\nmx: a.b\nmax_age: 1\n", "name: value"),
    ("version: STSv1\nmode: enforce\rmx: a.b\nmax_age: 1\n", "bare CR"),
    ("<html><body>hello</body></html>\n", "name: value"),
    ("version: STSv1\nmode: enforce\nmx: a.b\nmax_age: 1\nx: v;v\n", "bad value"),
])
def test_parse_invalid(body, why):
    with pytest.raises(PolicyError, match=why):
        parse_policy(body)


def test_parse_rejects_non_ascii():
    with pytest.raises(PolicyError, match="ASCII"):
        parse_policy("version: STSv1\nmode: enforce\nmx: bücher.example\nmax_age: 1\n".encode())


@pytest.mark.parametrize("pattern,host,ok", [
    ("mail.example.com", "mail.example.com", True),
    ("mail.example.com", "MAIL.Example.COM.", True),
    ("mail.example.com", "mx.example.com", False),
    ("*.example.net", "mx1.example.net", True),
    ("*.example.net", "example.net", False),  # §4.1: the wildcard is exactly one label
    ("*.example.net", "a.b.example.net", False),
    ("*.example.net", "mx1.example.net.evil", False),
])
def test_mx_matching(pattern, host, ok):
    assert mx_matches(pattern, host) is ok
    assert Policy("enforce", 1, (pattern,)).matches(host) is ok


@pytest.mark.parametrize("text,expected", [
    ("v=STSv1; id=20160831085700Z;", "20160831085700Z"),
    ("v=STSv1;id=abc", "abc"),
    ("v=STSv1; ext=1; id=A1 ", "A1"),
])
def test_txt_record(text, expected):
    assert is_sts_record(text)
    assert parse_sts_record(text) == expected


@pytest.mark.parametrize("text", ["v=STSv1", "v=STSv1; id=", "v=STSv1; id=a-b", "v=STSv1; id=" + "a" * 33,
                                  "v=STSv1; id=a; id=b", "v=spf1 -all", "v=STSv1; =x; id=a"])
def test_txt_record_invalid(text):
    with pytest.raises(PolicyError):
        parse_sts_record(text)


def test_policy_id_follows_the_text():
    a = render_policy(Policy("enforce", 86400, ("mx.example.org",)))
    b = render_policy(Policy("testing", 86400, ("mx.example.org",)))
    assert policy_id(a) == policy_id(a) and policy_id(a) != policy_id(b)
    assert re.fullmatch(r"[A-Za-z0-9]{1,32}", policy_id(a))  # RFC 8461 §3.1 sts-id-value


def config(section, hostname="mx.example.test"):
    return from_dict({"hostname": hostname, "mta_sts": section}, Path("/tmp/postroom.toml"))


def test_settings_defaults_and_published_policy():
    problems: list[str] = []
    s = parse_settings(config({}), problems)
    assert problems == []
    assert s.mode == "testing" and s.max_age == 604800 and s.enforce_outbound
    assert s.rua("example.org") == "mailto:postmaster@example.org"
    _, body, pid = published(config({"mode": "enforce", "mx": ["mx1.example.test", "*.example.net"],
                                      "max_age": "30d", "report_mailbox": "tls@reports.example"}))
    assert body == "version: STSv1\r\nmode: enforce\r\nmx: mx1.example.test\r\nmx: *.example.net\r\n" \
                   "max_age: 2592000\r\n"
    assert pid == policy_id(body)
    _, default_body, _ = published(config({}))
    assert "mx: mx.example.test\r\n" in default_body


@pytest.mark.parametrize("section,key", [
    ({"mode": "strict"}, "mta_sts.mode"),
    ({"max_age": "2y"}, "mta_sts.max_age"),
    ({"max_age": 0}, "mta_sts.max_age"),
    ({"mx": ["not a host"]}, "mta_sts.mx"),
    ({"mx": "mx.example.test"}, "mta_sts.mx"),
    ({"report_mailbox": "a b"}, "mta_sts.report_mailbox"),
    ({"ca_file": "/nonexistent/ca.pem"}, "mta_sts.ca_file"),
    ({"fetch_timeout": "10m"}, "mta_sts.fetch_timeout"),
    ({"enforce_outbound": "yes"}, "mta_sts.enforce_outbound"),
    ({"colour": "blue"}, "mta_sts.colour"),
])
def test_settings_problems(section, key):
    problems: list[str] = []
    parse_settings(config(section), problems)
    assert any(p.startswith(key + ":") for p in problems), problems


def test_settings_need_a_dns_hostname_without_mx():
    problems: list[str] = []
    parse_settings(config({"mode": "testing"}, hostname="localhost"), problems)
    assert any(p.startswith("mta_sts.mx:") for p in problems)


def test_localhost_without_mta_sts_settings_starts():
    """Regression: every config with ``hostname = "localhost"`` (the demo, the test and
    bench harnesses) was refused by ``check`` once the [mta_sts] section existed."""
    problems: list[str] = []
    s = parse_settings(config({}, hostname="localhost"), problems)
    assert problems == [] and s.mode == "none"


def test_outbound_check_settings_reports_mta_sts_problems():
    from postroom.outbound.service import check_settings

    problems: list[str] = []
    check_settings(config({"mode": "strict"}), problems)
    assert any(p.startswith("mta_sts.mode:") for p in problems)


# -- TLS-RPT ----------------------------------------------------------------------------
def test_classify_tls_failures():
    def verr(code: int) -> ssl.SSLCertVerificationError:
        e = ssl.SSLCertVerificationError("x")
        e.verify_code = code
        return e

    assert classify(verr(62)) == "certificate-host-mismatch"
    assert classify(verr(10)) == "certificate-expired"
    assert classify(verr(20)) == "certificate-not-trusted"
    assert classify(verr(7)) == "validation-failure"
    assert classify(ConnectionResetError()) == "validation-failure"


def test_counts_are_kept_per_day_and_survive_a_restart(tmp_path):
    now = [1_700_000_000.0]
    body = render_policy(Policy("enforce", 86400, ("mx.example.org",)))
    counts = TlsReportCounts(tmp_path, clock=lambda: now[0])
    counts.success("example.org", "id1", body, ("mx.example.org",))
    counts.success("example.org", "id1", body, ("mx.example.org",))
    counts.failure("example.org", "id1", body, ("mx.example.org",), "certificate-expired", "mx.example.org",
                   "192.0.2.1", "expired yesterday")
    counts.flush()
    files = list(tmp_path.glob("*.json"))
    assert [f.name for f in files] == ["2023-11-14.json"]
    again = TlsReportCounts(tmp_path, clock=lambda: now[0])
    again.success("example.org", "id1", body, ("mx.example.org",))
    again.flush()
    data = json.loads(files[0].read_text())
    report = build_report(data, "example.org", organization="mx.here.test", contact="mailto:postmaster@here.test",
                          sending_ip="192.0.2.9")
    assert report["date-range"] == {"start-datetime": "2023-11-14T00:00:00Z", "end-datetime": "2023-11-14T23:59:59Z"}
    (pol,) = report["policies"]
    assert pol["policy"] == {"policy-type": "sts", "policy-string": body.splitlines(),
                             "policy-domain": "example.org", "mx-host": ["mx.example.org"]}
    assert pol["summary"] == {"total-successful-session-count": 3, "total-failure-session-count": 1}
    assert pol["failure-details"] == [{"result-type": "certificate-expired", "failed-session-count": 1,
                                       "sending-mta-ip": "192.0.2.9", "receiving-mx-hostname": "mx.example.org",
                                       "receiving-ip": "192.0.2.1", "failure-reason-code": "expired yesterday"}]
    assert not list(tmp_path.glob("*.tmp"))


def test_unreadable_counts_file_starts_afresh(tmp_path):
    (tmp_path / "2023-11-14.json").write_text("{broken")
    counts = TlsReportCounts(tmp_path, clock=lambda: 1_700_000_000.0)
    counts.success("example.org", "id1", "version: STSv1\r\n", ())
    counts.flush()
    assert json.loads((tmp_path / "2023-11-14.json").read_text())["domains"]["example.org id1"]["successes"] == 1


# -- postroom dns records / check ------------------------------------------------------
def test_dns_records_carry_the_served_policy_id():
    import dns.rdata

    from postroom.mailauth.dnsrecords import judge, render_zone, wanted

    cfg = from_dict({"hostname": "mail.example.test", "domains": ["example.test"],
                     "mta_sts": {"mode": "enforce", "report_mailbox": "tls-reports@example.net"},
                     "listeners": {"https": {"address": "127.0.0.1:0", "tls": "implicit"}}},
                    Path("/tmp/postroom.toml"))
    _, _, pid = published(cfg)
    plan = wanted(cfg, "example.test", [])
    zone = render_zone(plan)
    assert f'_mta-sts.example.test. 3600 IN TXT "v=STSv1; id={pid}"' in zone
    assert '_smtp._tls.example.test. 3600 IN TXT "v=TLSRPTv1; rua=mailto:tls-reports@example.net"' in zone
    assert "mta-sts.example.test. 3600 IN CNAME mail.example.test." in zone
    assert "configure an https listener" not in zone
    by_kind = {r.kind: r for r in plan.records}

    def txt(*texts: str) -> list:
        return [dns.rdata.from_text("IN", "TXT", f'"{t}"') for t in texts]

    sts, rpt = by_kind["mta-sts"], by_kind["tlsrpt"]
    assert judge(sts, txt(f"v=STSv1; id={pid}"), plan).status == "ok"
    old = judge(sts, txt("v=STSv1; id=old1"), plan)
    assert old.status == "different" and f"id={pid}" in old.detail
    assert judge(sts, txt("v=STSv1; id=a", "v=STSv1; id=b"), plan).status == "different"
    assert judge(sts, txt("v=spf1 -all"), plan).status == "missing"
    assert judge(rpt, txt("v=TLSRPTv1; rua=mailto:other@example.org"), plan).status == "ok"
    assert judge(rpt, txt("v=TLSRPTv1;"), plan).status == "different"
    host = by_kind["mta-sts-host"]
    cname = [dns.rdata.from_text("IN", "CNAME", "mail.example.test.")]
    assert judge(host, cname, plan).status == "ok"
    assert judge(host, [dns.rdata.from_text("IN", "CNAME", "web.example.test.")], plan).status == "different"


def test_dns_records_note_a_missing_https_listener():
    from postroom.mailauth.dnsrecords import wanted

    cfg = from_dict({"hostname": "mail.example.test", "domains": ["example.test"]}, Path("/tmp/postroom.toml"))
    assert any("configure an https listener" in n for n in wanted(cfg, "example.test", []).notes)


def test_dns_check_accepts_a_records_for_the_policy_host():
    import asyncio

    from dnsfixture import DnsFixture

    from postroom.mailauth.dnsrecords import check, wanted
    from postroom.resolver import DnsSettings, Resolver

    cfg = from_dict({"hostname": "mail.example.test", "domains": ["example.test"]}, Path("/tmp/postroom.toml"))
    plan = wanted(cfg, "example.test", [])
    with DnsFixture() as dns_srv:
        dns_srv.a("mail.example.test", "192.0.2.10")
        dns_srv.a("mta-sts.example.test", "192.0.2.10")
        resolver = Resolver(DnsSettings(("127.0.0.1", dns_srv.port), timeout=1.0, attempts=1))
        findings, _ = asyncio.run(check(resolver, plan))
        (host,) = [f for f in findings if f.record.kind == "mta-sts-host"]
        assert host.status == "ok" and host.detail == "A/AAAA 192.0.2.10"
        dns_srv.a("mta-sts.example.test", "192.0.2.99")  # somebody else's web server
        resolver = Resolver(DnsSettings(("127.0.0.1", dns_srv.port), timeout=1.0, attempts=1))
        findings, _ = asyncio.run(check(resolver, plan))
        (host,) = [f for f in findings if f.record.kind == "mta-sts-host"]
        assert host.status == "missing"


@pytest.mark.parametrize("texts,expected", [
    (["v=TLSRPTv1; rua=mailto:a@example.org"], ["mailto:a@example.org"]),
    (["v=TLSRPTv1;rua=mailto:a@example.org, https://r.example.org/x"],
     ["mailto:a@example.org", "https://r.example.org/x"]),
    (["v=spf1 -all", "v=TLSRPTv1; rua=mailto:a@example.org"], ["mailto:a@example.org"]),
    (["v=TLSRPTv1; rua=mailto:a@x.org", "v=TLSRPTv1; rua=mailto:b@x.org"], []),  # §3: several → none
    (["v=TLSRPTv1; rua=http://insecure.example.org/"], []),
    (["v=TLSRPTv2; rua=mailto:a@example.org"], []),
    ([], []),
])
def test_rua(texts, expected):
    from postroom.outbound.tlsrpt import parse_rua

    assert parse_rua(texts) == expected


def test_report_filename_uses_the_days_unix_times():
    from postroom.outbound.tlsrpt import report_filename

    assert report_filename("mx.here.test", "example.org", "2023-11-14", "ab12") == \
        "mx.here.test!example.org!1699920000!1700006399!ab12.json.gz"
