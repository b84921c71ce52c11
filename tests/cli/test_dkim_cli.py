"""``postroom dkim keygen|list|activate|retire|record``: the real command, against a config from ``init``."""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path

import dns.zone
import pytest

from postroom.cli import main
from postroom.config import load
from postroom.mailauth import keys

PY = [sys.executable, "-m", "postroom.cli"]


def run(cfgp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*PY, "-c", str(cfgp), *args], capture_output=True, text=True, timeout=60)


def one_line_error(p: subprocess.CompletedProcess[str], code: int) -> None:
    assert p.returncode == code, (p.returncode, p.stdout, p.stderr)
    assert "Traceback" not in p.stderr
    assert p.stderr.strip().count("\n") == 0 and p.stderr.startswith("postroom: "), p.stderr


def txt_of(output: str, name: str) -> list[bytes]:
    """The strings of the TXT record ``name`` in a zone snippet (the zone's $TTL supplied)."""
    zone = dns.zone.from_text("$TTL 3600\n" + output, origin=".", relativize=False, check_origin=False)
    rds = zone.find_rdataset(name, "TXT")
    assert len(rds) == 1
    return list(next(iter(rds)).strings)


def key_of(cfgp: Path, domain: str, selector: str) -> keys.DkimKey:
    return next(k for k in keys.list_keys(load(cfgp).data_dir, domain) if k.selector == selector)


@pytest.fixture
def cfgp(tmp_path: Path) -> Path:
    assert main(["init", str(tmp_path / "srv"), "--domain", "example.test", "--port-offset", "32000"]) == 0
    return tmp_path / "srv" / "postroom.toml"


@pytest.mark.parametrize("algorithm", ["rsa", "ed25519"])
def test_keygen_prints_the_record_of_the_key(cfgp: Path, algorithm: str) -> None:
    p = run(cfgp, "dkim", "keygen", "example.test", "--algorithm", algorithm, "--selector", "s1")
    assert p.returncode == 0 and p.stderr == "", p.stderr
    assert "active" in p.stdout.splitlines()[0]
    strings = txt_of(p.stdout, "s1._domainkey.example.test.")
    assert all(len(s) <= 255 for s in strings)  # RFC 6376 §3.6.2.2
    assert len(strings) == (2 if algorithm == "rsa" else 1)
    text = b"".join(strings).decode()
    key = key_of(cfgp, "example.test", "s1")
    assert key.algorithm == algorithm and key.state == "active"
    assert text == f"v=DKIM1; k={algorithm}; p={key.public_b64()}"
    if algorithm == "ed25519":
        assert len(base64.b64decode(key.public_b64())) == 32  # RFC 8463 §4.2: the raw key
    # The brief's exact shape: SEL._domainkey.DOMAIN. IN TXT ( "…" … ) for a long record.
    record = [line for line in p.stdout.splitlines() if not line.startswith(";")]
    assert record[0].startswith('s1._domainkey.example.test. IN TXT ' + ('( "' if algorithm == "rsa" else '"'))
    r = run(cfgp, "dkim", "record", "example.test")
    assert r.returncode == 0 and txt_of(r.stdout, "s1._domainkey.example.test.") == strings


def test_rotation_list_and_record(cfgp: Path) -> None:
    assert run(cfgp, "dkim", "keygen", "example.test", "--selector", "old").returncode == 0
    assert run(cfgp, "dkim", "keygen", "example.test", "--selector", "ed", "--algorithm", "ed25519").returncode == 0
    p = run(cfgp, "dkim", "keygen", "example.test", "--selector", "new", "--bits", "3072")
    assert p.returncode == 0
    assert "pending" in p.stdout and "dkim activate example.test new" in p.stdout and "old keeps signing" in p.stdout
    assert key_of(cfgp, "example.test", "new").state == "pending"
    assert len(base64.b64decode(key_of(cfgp, "example.test", "new").public_b64())) > 384  # 3072 bits asked

    lines = run(cfgp, "dkim", "list").stdout.splitlines()
    assert lines[0].split()[:4] == ["DOMAIN", "SELECTOR", "ALGORITHM", "STATE"]
    rows = {line.split()[1]: line.split() for line in lines[1:]}
    assert rows["old"][:4] == ["example.test", "old", "rsa", "active"]
    assert rows["ed"][2:4] == ["ed25519", "active"] and rows["new"][2:4] == ["rsa", "pending"]
    assert len(rows["old"][4]) == 10  # created: YYYY-MM-DD HH:MM

    # record: the active and pending keys, not the retired ones.
    rec = run(cfgp, "dkim", "record", "example.test").stdout
    assert {"old._domainkey", "ed._domainkey", "new._domainkey"} <= set(rec.replace(".example", " ").split())

    p = run(cfgp, "dkim", "activate", "example.test", "new")
    assert p.returncode == 0
    assert "new (rsa) is active" in p.stdout and "old (rsa) retired" in p.stdout and "ed25519" not in p.stdout
    states = {k.selector: k.state for k in keys.list_keys(load(cfgp).data_dir, "example.test")}
    assert states == {"old": "retired", "ed": "active", "new": "active"}
    rec = run(cfgp, "dkim", "record", "example.test").stdout
    assert "old._domainkey" not in rec and "new._domainkey" in rec
    rec = run(cfgp, "dkim", "record", "example.test", "old").stdout  # a named key, whatever its state
    assert "old._domainkey" in rec and "retired" in rec

    p = run(cfgp, "dkim", "retire", "example.test", "ed")
    assert p.returncode == 0 and "ed (ed25519) retired" in p.stdout and p.stderr == ""
    p = run(cfgp, "dkim", "retire", "example.test", "new")
    assert p.returncode == 0 and "no active key" in p.stderr  # its mail now leaves unsigned
    assert {k.state for k in keys.list_keys(load(cfgp).data_dir)} == {"retired"}
    one_line_error(run(cfgp, "dkim", "record", "example.test"), 1)  # nothing active or pending

    assert run(cfgp, "dkim", "list", "other.test").stdout.startswith("no DKIM keys for other.test")


def test_errors_are_one_line(cfgp: Path) -> None:
    assert run(cfgp, "dkim", "keygen", "example.test", "--selector", "s1", "--algorithm", "ed25519").returncode == 0
    # The operation cannot be done: exit 1.
    one_line_error(run(cfgp, "dkim", "activate", "example.test", "nosuch"), 1)
    one_line_error(run(cfgp, "dkim", "retire", "example.test", "nosuch"), 1)
    one_line_error(run(cfgp, "dkim", "record", "example.test", "nosuch"), 1)
    one_line_error(run(cfgp, "dkim", "activate", "nokeys.test", "s1"), 1)
    p = run(cfgp, "dkim", "keygen", "example.test", "--selector", "s1", "--algorithm", "ed25519")
    one_line_error(p, 1)
    assert "already exists" in p.stderr
    # Bad usage: exit 2.
    for args in (["keygen", "not a domain"], ["keygen", "localhost"], ["keygen", "example.test", "--algorithm", "dsa"],
                 ["keygen", "example.test", "--selector", "bad_selector"], ["keygen", "example.test", "--bits", "512"],
                 ["keygen", "example.test", "--bits", "many"],
                 ["keygen", "example.test", "--algorithm", "ed25519", "--bits", "2048"],
                 ["activate", "example.test", "bad.selector"], ["activate", "example.test"], ["frobnicate"], []):
        one_line_error(run(cfgp, "dkim", *args), 2)
    assert [k.selector for k in keys.list_keys(load(cfgp).data_dir)] == ["s1"]  # nothing made by the failures


def test_domain_not_served_warns_but_works(cfgp: Path) -> None:
    for domain in ("mail.example.test", "example.test"):  # the hostname and its domain: no warning
        p = run(cfgp, "dkim", "keygen", domain, "--algorithm", "ed25519", "--selector", "a")
        assert p.returncode == 0 and p.stderr == "", p.stderr
    assert run(cfgp, "domain", "add", "added.test").returncode == 0
    p = run(cfgp, "dkim", "keygen", "Added.Test.", "--algorithm", "ed25519", "--selector", "a")
    assert p.returncode == 0 and p.stderr == "", p.stderr
    p = run(cfgp, "dkim", "keygen", "elsewhere.test", "--algorithm", "ed25519", "--selector", "a")
    assert p.returncode == 0 and "a._domainkey.elsewhere.test." in p.stdout
    assert p.stderr.startswith("postroom: warning: elsewhere.test is not served here") and p.stderr.count("\n") == 1
