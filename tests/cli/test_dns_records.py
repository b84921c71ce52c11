"""``postroom dns records|check``: the snippet loads into a real DNS server, and check reads it back."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import dns.resolver
import pytest

from postroom.cli import main
from postroom.config import load
from postroom.mailauth import keys

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/dnsfixture.py
from dnsfixture import DnsFixture  # noqa: E402

PY = [sys.executable, "-m", "postroom.cli"]
DOMAIN = "example.test"
HOST = "mail.example.test."
SERVICES = {  # SRV service → (listener protocol, TLS mode)
    "submissions": ("submission", "implicit"), "submission": ("submission", "starttls"),
    "imaps": ("imap", "implicit"), "imap": ("imap", "starttls"),
    "pop3s": ("pop3", "implicit"), "pop3": ("pop3", "starttls"),
}


def run(cfgp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*PY, "-c", str(cfgp), *args], capture_output=True, text=True, timeout=60)


def check(cfgp: Path) -> tuple[int, dict[str, str], str]:
    """Exit status, {"NAME TYPE": status line rest}, and the whole output of ``dns check``."""
    p = run(cfgp, "dns", "check", DOMAIN)
    assert "Traceback" not in p.stderr, p.stderr
    lines = {}
    for line in p.stdout.splitlines():
        m = re.match(r"^(\S+ [A-Z]+)(?: \([^)]*\))?: (.*)$", line)
        if m:
            lines[m.group(1)] = m.group(2)
    return p.returncode, lines, p.stdout


@pytest.fixture
def dns_srv() -> Iterator[DnsFixture]:
    with DnsFixture() as srv:
        yield srv


def make_config(d: Path, resolver: str) -> Path:
    assert main(["init", str(d), "--domain", DOMAIN, "--port-offset", "33000"]) == 0
    cfgp = d / "postroom.toml"
    with cfgp.open("a") as f:
        f.write(f'\n[dns]\nresolver = "{resolver}"\ntimeout = "1s"\nattempts = 1\n')
    return cfgp


@pytest.fixture
def cfgp(tmp_path: Path, dns_srv: DnsFixture) -> Path:
    cfgp = make_config(tmp_path / "srv", dns_srv.address)
    for args in (["--selector", "r1"], ["--selector", "e1", "--algorithm", "ed25519"], ["--selector", "r2"]):
        assert run(cfgp, "dkim", "keygen", DOMAIN, *args).returncode == 0  # r2 is pending
    return cfgp


def publish(cfgp: Path, dns_srv: DnsFixture) -> str:
    p = run(cfgp, "dns", "records", DOMAIN)
    assert p.returncode == 0 and p.stderr == "", p.stderr
    assert dns_srv.load_zone(p.stdout) > 10
    return p.stdout


def test_records_load_and_check_is_all_ok(cfgp: Path, dns_srv: DnsFixture) -> None:
    zone = publish(cfgp, dns_srv)
    lines = zone.splitlines()
    for before, line in zip(lines, lines[1:]):
        if line and line[0] not in "; ":
            assert before.startswith("; "), line  # a comment explains each record
    res = dns.resolver.Resolver(configure=False)
    res.nameservers, res.port = [dns_srv.host], dns_srv.port

    def ask(name: str, rdtype: str) -> list[str]:
        return [r.to_text() for r in res.resolve(name, rdtype)]

    assert ask(DOMAIN, "MX") == [f"10 {HOST}"]
    txt = [b"".join(r.strings).decode() for r in res.resolve(DOMAIN, "TXT")]
    assert txt == ["v=spf1 mx -all"]
    assert ask(f"_dmarc.{DOMAIN}", "TXT")[0].startswith('"v=DMARC1; p=quarantine; rua=mailto:postmaster@')
    for k in keys.list_keys(load(cfgp).data_dir, DOMAIN):  # active and pending
        got = [b"".join(r.strings).decode() for r in res.resolve(k.record_name, "TXT")]
        assert got == [f"v=DKIM1; k={k.algorithm}; p={k.public_b64()}"]
    assert "r2 (rsa), pending: publish it before 'postroom dkim activate example.test r2'" in zone

    # SRV: the configured listeners' ports and the hostname; implicit TLS preferred; no listener → "0 0 0 .".
    listeners = load(cfgp).listeners
    prio = {}
    for service, (protocol, tls) in SERVICES.items():
        (srv,) = res.resolve(f"_{service}._tcp.{DOMAIN}", "SRV")
        ports = [lst.port for lst in listeners if lst.protocol == protocol and lst.tls == tls]
        if ports:
            assert (srv.target.to_text(), srv.port, srv.weight) == (HOST, ports[0], 1)
        else:
            assert srv.to_text() == "0 0 0 ."
        prio[service] = srv.priority
    for implicit, starttls in (("submissions", "submission"), ("imaps", "imap"), ("pop3s", "pop3")):
        assert prio[implicit] < prio[starttls] or prio[starttls] == 0  # RFC 8314 §5.1

    code, lines, out = check(cfgp)
    assert code == 0, out
    # MX, 2 SPF, 3 DKIM, DMARC, MTA-STS TXT and host, TLS-RPT, 6 SRV, autoconfig and autodiscover hosts and SRV
    assert len(lines) == 19 and set(lines.values()) == {"ok"}, out
    assert f"{DOMAIN}: all {len(lines)} records ok" in out
    assert "note: mail.example.test has no A/AAAA record" in out  # advice, not a failure


def test_absent_listener_is_not_provided(tmp_path: Path, dns_srv: DnsFixture) -> None:
    cfgp = make_config(tmp_path / "srv", dns_srv.address)
    text = re.sub(r"\[listeners\.(pop3s|imap)\]\n[^\[]*", "", cfgp.read_text())
    cfgp.write_text(text + '[listeners.plain]\nprotocol = "imap"\naddress = "127.0.0.1:33999"\ntls = "none"\n')
    zone = run(cfgp, "dns", "records", DOMAIN, "--ttl", "300").stdout
    assert f"_pop3s._tcp.{DOMAIN}. 300 IN SRV 0 0 0 ." in zone
    assert f"_imap._tcp.{DOMAIN}. 300 IN SRV 0 0 0 ." in zone  # a listener without TLS is not advertised
    assert "33999" not in zone and re.search(rf"_imaps\._tcp\.{DOMAIN}\. 300 IN SRV 0 1 \d+ {HOST}", zone)
    assert "v=DKIM1" not in zone and "no active DKIM key" in zone  # no keys yet
    dns_srv.load_zone(zone)
    code, lines, out = check(cfgp)
    assert code == 0 and lines[f"_pop3s._tcp.{DOMAIN}. SRV"] == "ok", out
    assert "note: example.test has no active DKIM key" in out


def test_check_finds_missing_and_different(cfgp: Path, dns_srv: DnsFixture) -> None:
    publish(cfgp, dns_srv)
    dns_srv.remove(f"_dmarc.{DOMAIN}")
    r1 = next(k for k in keys.list_keys(load(cfgp).data_dir, DOMAIN) if k.selector == "r1")
    r2 = next(k for k in keys.list_keys(load(cfgp).data_dir, DOMAIN) if k.selector == "r2")
    dns_srv.txt(r1.record_name, r2.txt_record())  # an old key still published under r1
    imaps = next(lst.port for lst in load(cfgp).listeners if lst.name == "imaps")
    dns_srv.srv(f"_imaps._tcp.{DOMAIN}", 0, 1, imaps + 1, HOST)
    dns_srv.mx(DOMAIN, [(10, "mx.elsewhere.test")])
    code, lines, out = check(cfgp)
    assert code == 1
    assert lines[f"_dmarc.{DOMAIN}. TXT"] == "missing"
    assert lines[f"r1._domainkey.{DOMAIN}. TXT"].startswith("different (found: v=DKIM1; k=rsa; p=")
    assert lines[f"r2._domainkey.{DOMAIN}. TXT"] == "ok"
    assert lines[f"_imaps._tcp.{DOMAIN}. SRV"] == f"different (found: 0 1 {imaps + 1} {HOST})"
    assert lines[f"{DOMAIN}. MX"] == "different (found: 10 mx.elsewhere.test.)"
    assert lines[f"{DOMAIN}. TXT"] == "ok"
    assert f"{DOMAIN}: 4 of {len(lines)} records not as" in out


def test_check_judges_spf_and_dmarc_by_meaning(cfgp: Path, dns_srv: DnsFixture) -> None:
    publish(cfgp, dns_srv)
    dns_srv.txt(DOMAIN, "v=spf1 ip4:192.0.2.0/24 -all", "google-site-verification=abc")
    dns_srv.txt(f"_dmarc.{DOMAIN}", "v=DMARC1; p=none")
    code, lines, out = check(cfgp)
    assert code == 0, out
    assert lines[f"{DOMAIN}. TXT"] == "ok (published: v=spf1 ip4:192.0.2.0/24 -all)"
    assert "warning: it does not authorize mail.example.test" in out
    assert lines[f"_dmarc.{DOMAIN}. TXT"] == "ok (published: v=DMARC1; p=none)" and "warning: p=none" in out
    dns_srv.a("mail.example.test", "192.0.2.7")  # now the ip4: range covers this host
    assert "does not authorize" not in check(cfgp)[2]

    dns_srv.txt(DOMAIN, "v=spf1 mx -all", "v=spf1 a -all")  # RFC 7208 §4.5: permerror
    dns_srv.txt(f"_dmarc.{DOMAIN}", "v=DMARC1; p=bogus")
    code, lines, out = check(cfgp)
    assert code == 1
    assert lines[f"{DOMAIN}. TXT"].startswith("different (2 SPF records")
    assert lines[f"_dmarc.{DOMAIN}. TXT"].startswith("different (found: v=DMARC1; p=bogus; no valid p= tag")
    dns_srv.txt(DOMAIN, "v=spf1 mx frobnicate -all")
    assert "not valid SPF at 'frobnicate'" in check(cfgp)[1][f"{DOMAIN}. TXT"]
    dns_srv.txt(DOMAIN, "some other text")
    assert check(cfgp)[1][f"{DOMAIN}. TXT"] == "missing (found only: some other text)"


def test_retired_keys(cfgp: Path, dns_srv: DnsFixture) -> None:
    assert run(cfgp, "dkim", "activate", DOMAIN, "r2").returncode == 0  # r1 retired now
    zone = run(cfgp, "dns", "records", DOMAIN).stdout
    assert re.search(r"; DKIM key r1 \(rsa\), retired \S+: keep published until \S+", zone)
    assert re.search(r"^r1\._domainkey", zone, re.M)
    # A week later the record may go: printed commented out, and not checked.
    pem = keys.key_dir(load(cfgp).data_dir, DOMAIN) / "r1.json"
    meta = json.loads(pem.read_text())
    meta["changed"] -= 8 * 86400
    pem.write_text(json.dumps(meta))
    zone = run(cfgp, "dns", "records", DOMAIN).stdout
    assert re.search(r"; DKIM key r1 \(rsa\), retired \S+: remove this record", zone)
    assert re.search(r"^; r1\._domainkey", zone, re.M) and not re.search(r"^r1\._domainkey", zone, re.M)
    dns_srv.load_zone(zone)
    code, lines, out = check(cfgp)
    assert code == 0 and f"r1._domainkey.{DOMAIN}. TXT" not in lines, out


def test_silent_nameserver_is_a_temporary_failure_in_bounded_time(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:  # bound, never answers
        silent.bind(("127.0.0.1", 0))
        cfgp = make_config(tmp_path / "srv", f"127.0.0.1:{silent.getsockname()[1]}")
        start = time.monotonic()
        code, lines, out = check(cfgp)
        elapsed = time.monotonic() - start
    assert code == 1
    assert lines and all(v.startswith("temporary failure") for v in lines.values()), out
    assert elapsed < 15  # every query at once: one resolver lifetime (1s here), not one per record


def test_bad_usage(cfgp: Path) -> None:
    for args in (["records", "not_a_domain"], ["check", "-x-.test"], ["records", DOMAIN, "--ttl", "-1"],
                 ["records"], ["frobnicate", DOMAIN]):
        p = run(cfgp, "dns", *args)
        assert p.returncode == 2 and "Traceback" not in p.stderr, (args, p.stderr)
        assert p.stderr.startswith("postroom: ") and p.stderr.count("\n") == 1, p.stderr
    p = run(cfgp, "dns", "records", "other.test")  # not served: a warning, the records anyway
    assert p.returncode == 0 and "other.test is not served here" in p.stderr and "MX 10 mail.example.test." in p.stdout
