"""All the checks of one message together (mailauth.inbound): hostile input never breaks
them, and the Authentication-Results field they write always parses (RFC 8601)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Iterator

import authres
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # tests/dnsfixture.py

from dnsfixture import DnsFixture  # noqa: E402
from postroom.mailauth import inbound, keys  # noqa: E402
from postroom.mailauth.dkim import sign  # noqa: E402
from postroom.mailauth.model import ARC_RESULTS, DKIM_RESULTS, DMARC_RESULTS, SPF_RESULTS  # noqa: E402
from postroom.mailauth.settings import DEFAULT_SIGN_HEADERS, MailauthSettings  # noqa: E402
from postroom.resolver import DnsSettings, Resolver  # noqa: E402

AUTHSERV = "mx.example.test"
BODY = b"From: Ann <ann@sender.test>\r\nTo: bob@example.test\r\nSubject: hi\r\nMessage-ID: <1@sender.test>\r\n\r\nhello\r\n"


class World:
    def __init__(self, dns: DnsFixture, signed: bytes) -> None:
        self.dns, self.signed = dns, signed
        self.settings = MailauthSettings(timeout=2.0)

    def check(self, message: bytes, mail_from: str = "ann@sender.test", helo: str = "mta.sender.test",
              ip: str = "127.0.0.1") -> inbound.Inbound:
        resolver = Resolver(DnsSettings((self.dns.host, self.dns.port), 1.0, 1))
        return asyncio.run(inbound.check(resolver, self.settings, AUTHSERV, ip=ip, helo=helo, mail_from=mail_from,
                                         message=message))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with DnsFixture(ttl=300) as dns:
        ks = [keys.keygen(tmp_path_factory.mktemp("keys"), "sender.test", algorithm=a) for a in ("rsa", "ed25519")]
        for k in ks:
            dns.txt(k.record_name, k.txt_record())
        dns.txt("sender.test", "v=spf1 ip4:127.0.0.0/8 -all")
        dns.txt("_dmarc.sender.test", "v=DMARC1; p=reject")
        yield World(dns, sign(BODY, ks, DEFAULT_SIGN_HEADERS) + BODY)


def valid(res: inbound.Inbound) -> None:
    c = res.checks
    assert c.spf is not None and c.spf.result in SPF_RESULTS
    assert c.dkim and all(d.result in DKIM_RESULTS for d in c.dkim)
    assert c.dmarc is not None and c.dmarc.result in DMARC_RESULTS
    assert c.arc is not None and c.arc.result in ARC_RESULTS
    header = res.header.decode("ascii")  # never anything but ASCII
    assert header.endswith("\r\n") and all(len(line) < 998 for line in header.split("\r\n"))
    parsed = authres.AuthenticationResultsHeader.parse(" ".join(header.split()))
    assert parsed.authserv_id == AUTHSERV
    assert res.message.startswith(res.header)


def test_a_signed_message_passes_everything(world: World) -> None:
    res = world.check(world.signed)
    valid(res)
    assert inbound.summary(res.checks) == "spf=pass dkim=pass,pass dmarc=pass arc=none"


def test_an_unsigned_forgery_fails_dmarc_and_says_dkim_none(world: World) -> None:
    res = world.check(BODY, ip="192.0.2.1")
    valid(res)
    assert inbound.summary(res.checks) == "spf=fail dkim=none dmarc=fail arc=none"
    assert res.checks.dmarc is not None and res.checks.dmarc.policy == "reject"


_NOISE = st.sampled_from([
    b"DKIM-Signature: v=1; a=rsa-sha256; d=sender.test; s=", b"ARC-Seal: i=1; cv=none; a=rsa-sha256; b=",
    b"From: ", b"From: <@>, x@y.test", b"Authentication-Results: mx.example.test; dkim=pass", b";", b"=",
    b"\r\n", b"\r\n ", b"\x00", b"\xff", b"(", b")", b"\\", b"@", b"..", b" ", b"b=AAAA", b"h=from:from",
])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_mutated_messages_never_break_the_checks(world: World, data: st.DataObject) -> None:
    raw = bytearray(world.signed)
    head_end = raw.find(b"\r\n\r\n")
    for _ in range(data.draw(st.integers(1, 6))):
        at = data.draw(st.integers(0, head_end))
        if data.draw(st.booleans()):
            raw[at:at] = data.draw(_NOISE)
        else:
            raw[at:at + data.draw(st.integers(0, 20))] = data.draw(st.binary(max_size=8))
    mail_from = data.draw(st.sampled_from(["ann@sender.test", "", "x@[127.0.0.1]", "a@b@c", "x@-bad-.test"]))
    helo = data.draw(st.sampled_from(["mta.sender.test", "[127.0.0.1]", "", "localhost", "x" * 300]))
    valid(world.check(bytes(raw), mail_from=mail_from, helo=helo))
