"""DKIM interop with OpenDKIM (Debian's ``opendkim`` 2.11, RSA and Ed25519).

Both ways, every key in the DNS fixture:

* mail signed by Postroom's :func:`sign` verifies in OpenDKIM, and
* mail signed by OpenDKIM verifies in Postroom's :func:`verify`.

OpenDKIM runs in its test mode (``opendkim -x CONF -t FILE``: the filter's own code,
no milter connection, the verdict printed as the Authentication-Results field it would
add). ``opendkim-testmsg`` is not used: it has no configuration file, so it can only ask
the system resolver. OpenDKIM reaches the fixture through ``Nameservers IP@PORT``
(libunbound's forwarder syntax, so no port 53 and no root needed), and a
``ResolverConfiguration`` file tells libunbound not to answer ``.test`` itself (it
serves the RFC 6761 special-use names as empty local zones by default).
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from dnsfixture import DnsFixture
from postroom.mailauth.dkim import sign, verify
from postroom.mailauth.keys import DkimKey, keygen
from postroom.resolver import DnsSettings, Resolver

# /usr/sbin is not on every user's PATH.
OPENDKIM = shutil.which("opendkim", path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(OPENDKIM is None,
                       reason="OpenDKIM is not installed (scripts/install-test-deps.sh installs opendkim)"),
]

DOMAIN = "example.test"
MESSAGE = (
    b"From: Alice <alice@example.test>\r\n"
    b"To: bob@example.org\r\n"
    b"Subject: interop\r\n"
    b"Date: Mon, 01 Jan 2024 12:00:00 +0000\r\n"
    b"Message-ID: <interop@example.test>\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=us-ascii\r\n"
    b"\r\n"
    b"Signed on one side,  checked on the other.   \r\n"
    b"\r\n"
    b"\r\n"
)


@dataclass
class Setup:
    dns: DnsFixture
    work: Path
    keys: dict[str, DkimKey]  # "rsa" / "ed25519"


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    work = tmp_path_factory.mktemp("opendkim")
    keys = {alg: keygen(work / "data", DOMAIN, f"{alg[:3]}1", alg) for alg in ("rsa", "ed25519")}
    with DnsFixture() as dns_srv:
        for k in keys.values():
            dns_srv.txt(k.record_name, k.txt_record())
        (work / "unbound.conf").write_text('server:\n  local-zone: "test." nodefault\n'
                                           "  do-not-query-localhost: no\n")
        yield Setup(dns_srv, work, keys)


def opendkim(setup: Setup, name: str, conf: list[str], message: bytes) -> str:
    """Run OpenDKIM's test mode on ``message``; its stdout (the fields it would add)."""
    conf_path = setup.work / f"{name}.conf"
    conf_path.write_text("\n".join(conf + [
        "Syslog no",
        f"Nameservers {setup.dns.host}@{setup.dns.port}",
        f"ResolverConfiguration {setup.work / 'unbound.conf'}",
    ]) + "\n")
    msg_path = setup.work / f"{name}.eml"
    msg_path.write_bytes(message)
    p = subprocess.run([str(OPENDKIM), "-x", str(conf_path), "-t", str(msg_path), "-vvv"], capture_output=True,
                       timeout=60)
    assert p.returncode == 0, p.stderr.decode(errors="replace")[-2000:]
    return p.stdout.decode(errors="replace")


def opendkim_verdicts(setup: Setup, name: str, message: bytes) -> dict[str, str]:
    """selector → dkim= result, from the Authentication-Results field OpenDKIM would add."""
    out = opendkim(setup, name, ["Mode v"], message)
    # One line per signature: "dkim=pass (2048-bit key; unprotected) header.d=... header.s=rsa1 ..."
    verdicts = {m.group(2): m.group(1) for m in re.finditer(r"dkim=(\w+).*?header\.s=([\w-]+)", out)}
    assert verdicts, out
    return verdicts


def opendkim_sign(setup: Setup, name: str, key: DkimKey, canonicalization: str, message: bytes) -> bytes:
    """``message`` with the DKIM-Signature field OpenDKIM makes with ``key`` prepended."""
    out = opendkim(setup, name, [
        "Mode s",
        f"Domain {key.domain}",
        f"Selector {key.selector}",
        f"KeyFile {key.path}",  # Postroom's PKCS#8 PEM, as it is on disk
        f"SignatureAlgorithm {key.signature_algorithm.decode()}",
        f"Canonicalization {canonicalization}",
        "RequireSafeKeys no",  # pytest's tmp dir is under the world-writable /tmp
    ], message)
    m = re.search(r"hname='DKIM-Signature' hvalue='([^']*)'", out)
    assert m, out
    return b"DKIM-Signature: " + m.group(1).replace("\n", "\r\n").encode() + b"\r\n" + message


def postroom_verify(setup: Setup, message: bytes) -> list[tuple[str, str, str]]:
    resolver = Resolver(DnsSettings(nameserver=(setup.dns.host, setup.dns.port), timeout=5.0, attempts=1))
    return [(r.result, r.selector, r.algorithm) for r in asyncio.run(verify(resolver, message, 10.0))]


# -- Postroom signs, OpenDKIM verifies ----------------------------------------------------------

@pytest.mark.parametrize("algs", [("rsa",), ("ed25519",), ("rsa", "ed25519")])
def test_opendkim_verifies_postroom_signatures(setup: Setup, algs: tuple[str, ...]) -> None:
    keys = [setup.keys[a] for a in algs]
    setup.dns.queries.clear()
    verdicts = opendkim_verdicts(setup, "verify-" + "-".join(algs), sign(MESSAGE, keys) + MESSAGE)
    assert verdicts == {k.selector: "pass" for k in keys}
    # OpenDKIM fetched every key from the fixture.
    assert {q[0] for q in setup.dns.queries} == {k.record_name + "." for k in keys}


def test_opendkim_agrees_on_tampering(setup: Setup) -> None:
    keys = list(setup.keys.values())
    signed = sign(MESSAGE, keys) + MESSAGE
    body = signed.replace(b"checked on", b"forged on")
    second_from = signed.replace(b"\r\n\r\nSigned", b"\r\nFrom: Mallory <m@evil.test>\r\n\r\nSigned", 1)
    reply_to = signed.replace(b"\r\n\r\nSigned", b"\r\nReply-To: m@evil.test\r\n\r\nSigned", 1)
    for name, message in (("body", body), ("from", second_from), ("reply-to", reply_to)):
        assert set(opendkim_verdicts(setup, "tampered-" + name, message).values()) == {"fail"}, name
        assert {r[0] for r in postroom_verify(setup, message)} == {"fail"}, name


# -- OpenDKIM signs, Postroom verifies -----------------------------------------------------------

# OpenDKIM 2.11.0's Ed25519 signer hashes its DKIM-Signature field with "b=" on the line
# before, then writes it with "b=" folded onto a line of its own. Under simple header
# canonicalization (RFC 6376 §3.4.1) folding counts, so neither OpenDKIM nor dkimpy nor
# Postroom can verify such a signature; unfolding "h=...;\r\n\tb=" to "h=...; b=" by hand
# makes all three pass. Strict, so that a fixed OpenDKIM shows up here.
OPENDKIM_ED25519_SIMPLE_BUG = pytest.mark.xfail(
    strict=True, reason="OpenDKIM 2.11.0 folds its Ed25519 signature after hashing it (simple header c14n)")


@pytest.mark.parametrize("alg, canonicalization", [
    ("rsa", "relaxed/relaxed"), ("rsa", "simple/simple"), ("rsa", "relaxed/simple"),
    ("ed25519", "relaxed/relaxed"), ("ed25519", "relaxed/simple"),
    pytest.param("ed25519", "simple/simple", marks=OPENDKIM_ED25519_SIMPLE_BUG),
])
def test_postroom_verifies_opendkim_signatures(setup: Setup, alg: str, canonicalization: str) -> None:
    key = setup.keys[alg]
    signed = opendkim_sign(setup, f"sign-{alg}-{canonicalization.replace('/', '-')}", key, canonicalization,
                           MESSAGE)
    # The signature checked by OpenDKIM too (the round trip closes).
    assert opendkim_verdicts(setup, f"reverify-{alg}-{canonicalization.replace('/', '-')}", signed) == \
        {key.selector: "pass"}
    assert postroom_verify(setup, signed) == [("pass", key.selector, key.signature_algorithm.decode())]
    assert postroom_verify(setup, signed.replace(b"Subject: interop", b"Subject: changed"))[0][0] == "fail"


def test_postroom_verifies_both_opendkim_signatures(setup: Setup) -> None:
    """RSA and Ed25519 side by side (RFC 8463 §4), each added by its own OpenDKIM run."""
    once = opendkim_sign(setup, "both-1", setup.keys["rsa"], "relaxed/relaxed", MESSAGE)
    twice = opendkim_sign(setup, "both-2", setup.keys["ed25519"], "relaxed/relaxed", once)
    assert [r[:2] for r in postroom_verify(setup, twice)] == [("pass", "ed21"), ("pass", "rsa1")]


def test_opendkim_ed25519_simple_bug_is_only_the_folding(setup: Setup) -> None:
    """The xfail above, pinned down: with "b=" put back where OpenDKIM hashed it, its
    Ed25519 simple/simple signature verifies in OpenDKIM and in Postroom alike."""
    key = setup.keys["ed25519"]
    signed = opendkim_sign(setup, "ed-simple-bug", key, "simple/simple", MESSAGE)
    assert postroom_verify(setup, signed)[0][0] == "fail"
    unfolded = re.sub(rb";\r\n\tb=", b"; b=", signed, count=1)
    assert unfolded != signed
    assert opendkim_verdicts(setup, "ed-simple-unfolded", unfolded) == {key.selector: "pass"}
    assert postroom_verify(setup, unfolded) == [("pass", key.selector, "ed25519-sha256")]
