"""ARC (RFC 8617): chains built hop by hop with our sealer, checked by our verifier and by
dkimpy's own ``arc_verify``; every key lookup answered by a real DNS server on loopback."""

from __future__ import annotations

import asyncio
import re
import sys
import time
from pathlib import Path
from typing import Callable, Iterator

import dkim
import dns.resolver
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # tests/dnsfixture.py

from dnsfixture import DnsFixture  # noqa: E402
from postroom.mailauth.arc import TEMPORARY, ArcSealError, is_temporary, seal, verify_arc  # noqa: E402
from postroom.mailauth.keys import DkimKey, keygen  # noqa: E402
from postroom.mailauth.model import ArcResult  # noqa: E402
from postroom.resolver import DnsSettings, Resolver  # noqa: E402

ORIGINAL = (b"From: Alice <alice@origin.test>\r\n"
            b"To: list@a.test\r\n"
            b"Subject: Meeting notes\r\n"
            b"Date: Mon, 02 Nov 2026 10:00:00 +0000\r\n"
            b"Message-ID: <1@origin.test>\r\n"
            b"MIME-Version: 1.0\r\n"
            b"Content-Type: text/plain; charset=us-ascii\r\n"
            b"\r\n"
            b"See you at ten.\r\n")
HOP1, HOP2, HOP3 = "mx.a.test", "mx.b.test", "mx.c.test"


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, DkimKey]:
    d = tmp_path_factory.mktemp("keys")
    return {"origin": keygen(d, "origin.test", "o1", bits=1024), "a": keygen(d, "a.test", "arc1"),
            "b": keygen(d, "b.test", "arc2"), "c": keygen(d, "c.test", "arc3", bits=1024),
            "ed": keygen(d, "b.test", "arc2e", algorithm="ed25519")}


@pytest.fixture(scope="module")
def server() -> Iterator[DnsFixture]:
    with DnsFixture() as s:
        yield s


@pytest.fixture
def srv(server: DnsFixture, keys: dict[str, DkimKey]) -> DnsFixture:
    """The module's server with every key published and nothing failing."""
    server.records.clear()
    server.failing.clear()
    server.silenced.clear()
    for k in keys.values():
        server.txt(k.record_name, k.txt_record())
    return server


def verify(srv: DnsFixture, message: bytes, timeout: float = 3.0) -> ArcResult:
    # A long per-attempt timeout: only verify_arc's own deadline may end a silent lookup.
    resolver = Resolver(DnsSettings(nameserver=(srv.host, srv.port), timeout=5.0, attempts=2))
    return asyncio.run(verify_arc(resolver, message, timeout))


def dnsfunc(srv: DnsFixture) -> Callable[..., bytes | None]:
    """A dkimpy dnsfunc of its own (plain dnspython), asking the same server."""
    def get_txt(name: bytes, timeout: float = 5) -> bytes | None:
        r = dns.resolver.Resolver(configure=False)
        r.nameservers, r.port, r.lifetime = [srv.host], srv.port, 3.0
        try:
            answer = r.resolve(name.decode().rstrip("."), "TXT")
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return None
        return b"".join(answer[0].strings)  # type: ignore[attr-defined]
    return get_txt


def origin_signed(keys: dict[str, DkimKey], message: bytes = ORIGINAL) -> bytes:
    linesep = b"\n" if b"\r\n" not in message else b"\r\n"
    sig = dkim.sign(message, b"o1", b"origin.test", keys["origin"].dkimpy_private(), linesep=linesep,
                    include_headers=[b"from", b"to", b"subject", b"date", b"message-id"])
    return sig + message


def listify(message: bytes) -> bytes:
    """What a mailing list does: a subject tag and a footer (breaking the author's DKIM)."""
    nl = b"\r\n" if b"\r\n" in message else b"\n"
    return message.replace(b"Subject: Meeting notes", b"Subject: [list] Meeting notes", 1) + b"-- " + nl + \
        b"list footer" + nl


def hop(srv: DnsFixture, message: bytes, key: DkimKey, authserv_id: str,
        modify: Callable[[bytes], bytes] | None = None) -> bytes:
    """One ARC intermediary: check, add its Authentication-Results field, change the
    message if it is a list, seal, pass on."""
    nl = "\r\n" if b"\r\n" in message else "\n"
    arc = verify(srv, message)
    dkim_ok = dkim.verify(message, dnsfunc=dnsfunc(srv))
    ar = (f"Authentication-Results: {authserv_id};{nl} dkim={'pass' if dkim_ok else 'fail'} "
          f"header.d=origin.test;{nl} arc={arc.result} (i={arc.instances}){nl}")
    message = ar.encode() + message
    if modify is not None:
        message = modify(message)
    return seal(message, key, authserv_id, arc.result) + message


def two_hops(srv: DnsFixture, keys: dict[str, DkimKey], message: bytes = ORIGINAL) -> tuple[bytes, bytes, bytes]:
    m0 = origin_signed(keys, message)
    m1 = hop(srv, m0, keys["a"], HOP1)
    m2 = hop(srv, m1, keys["b"], HOP2, modify=listify)
    return m0, m1, m2


def arc_field(message: bytes, name: str, instance: int) -> bytes:
    """The raw field (with continuation lines) ``name: i=<instance>; ...``."""
    m = re.search(rb"(?im)^" + name.encode() + rb":[ \t]*i=" + str(instance).encode() + rb";.*\r?\n(?:[ \t].*\r?\n)*",
                  message)
    assert m, (name, instance)
    return m.group(0)


# -- the forwarding story -------------------------------------------------------------------

def test_arc_survives_a_forward_that_breaks_dkim(srv: DnsFixture, keys: dict[str, DkimKey]) -> None:
    m0, m1, m2 = two_hops(srv, keys)
    assert verify(srv, m0) == ArcResult("none")
    assert verify(srv, m1) == ArcResult("pass", 1)
    assert verify(srv, m2) == ArcResult("pass", 2)
    # The author's signature held up to the list and broke there ...
    assert dkim.verify(m0, dnsfunc=dnsfunc(srv)) and dkim.verify(m1, dnsfunc=dnsfunc(srv))
    assert not dkim.verify(m2, dnsfunc=dnsfunc(srv))
    # ... and what the list saw before changing the message is what ARC carries on.
    assert b"dkim=pass" in arc_field(m2, "ARC-Authentication-Results", 2)
    assert b"arc=pass" in arc_field(m2, "ARC-Authentication-Results", 2)
    assert b"cv=none" in arc_field(m2, "ARC-Seal", 1) and b"cv=pass" in arc_field(m2, "ARC-Seal", 2)
    # dkimpy's own verifier, with its own DNS client, agrees.
    cv, results, reason = dkim.arc_verify(m2, dnsfunc=dnsfunc(srv))
    assert cv == dkim.CV_Pass, reason
    assert [(r["instance"], r["as-domain"]) for r in results] == [(2, b"b.test"), (1, b"a.test")]


def test_sealed_fields_are_ready_to_prepend(srv: DnsFixture, keys: dict[str, DkimKey]) -> None:
    m0 = origin_signed(keys)
    message = f"Authentication-Results: {HOP1}; dkim=pass header.d=origin.test; arc=none\r\n".encode() + m0
    out = seal(message, keys["a"], HOP1, "none")
    names = re.findall(rb"(?m)^([A-Za-z-]+):", out)
    assert names == [b"ARC-Seal", b"ARC-Message-Signature", b"ARC-Authentication-Results"]
    assert out.endswith(b"\r\n") and out.count(b"\n") == out.count(b"\r\n")
    assert b"i=1; cv=none; a=rsa-sha256; d=a.test; s=arc1;" in out
    assert out.startswith(b"ARC-Seal: i=1;")
    assert arc_field(out, "ARC-Authentication-Results", 1).startswith(
        b"ARC-Authentication-Results: i=1; mx.a.test;")
    h = re.search(rb"h=([^;]*);", out.replace(b"\r\n ", b" "))
    assert h and b"from" in h.group(1) and b"authentication-results" not in h.group(1).lower()
    assert verify(srv, out + message) == ArcResult("pass", 1)


def test_lf_messages_get_lf_fields_and_verify(srv: DnsFixture, keys: dict[str, DkimKey]) -> None:
    m0, m1, m2 = two_hops(srv, keys, ORIGINAL.replace(b"\r\n", b"\n"))
    assert b"\r" not in m2
    assert verify(srv, m2) == ArcResult("pass", 2)
    assert dkim.arc_verify(m2, dnsfunc=dnsfunc(srv))[0] == dkim.CV_Pass


def test_signed_header_list_can_be_given(srv: DnsFixture, keys: dict[str, DkimKey]) -> None:
    message = f"Authentication-Results: {HOP1}; arc=none\r\n".encode() + ORIGINAL
    out = seal(message, keys["a"], HOP1, "none", headers=["From", "Subject"])
    assert b"h=from : subject;" in out
    assert verify(srv, out + message) == ArcResult("pass", 1)
    # Only the Subject is covered: a changed To: passes, a changed Subject does not.
    assert verify(srv, out + message.replace(b"To: list@a.test", b"To: x@a.test")).result == "pass"
    assert verify(srv, out + message.replace(b"Meeting", b"Greeting")).result == "fail"
    with pytest.raises(ArcSealError, match="From"):
        seal(message, keys["a"], HOP1, "none", headers=["Subject"])


def test_only_the_newest_message_signature_is_checked(srv: DnsFixture, keys: dict[str, DkimKey],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    # RFC 8617 §5.2: AMS N (step 4) and every AS (step 6). AMS 1 no longer matches the
    # message (the list changed it) and costs a body hash: it is not looked at.
    m2 = two_hops(srv, keys)[2]
    seen: list[tuple[bytes, bytes]] = []
    real = dkim.DomainSigner.verify_sig

    def spy(self: dkim.DomainSigner, sig: dict[bytes, bytes], *args: object) -> bool:
        seen.append((args[1][0].lower(), sig[b"i"]))  # type: ignore[index]
        return bool(real(self, sig, *args))

    monkeypatch.setattr(dkim.DomainSigner, "verify_sig", spy)
    assert verify(srv, m2) == ArcResult("pass", 2)
    assert seen == [(b"arc-message-signature", b"2"), (b"arc-seal", b"2"), (b"arc-seal", b"1")]


# -- verification failures -----------------------------------------------------------------

def test_no_arc_is_none(srv: DnsFixture, keys: dict[str, DkimKey]) -> None:
    signed = origin_signed(keys)
    before = len(srv.queries)
    assert verify(srv, ORIGINAL) == ArcResult("none")
    assert verify(srv, signed) == ArcResult("none")
    assert verify(srv, b"") == ArcResult("none")
    assert len(srv.queries) == before  # nothing to look up


def test_body_changed_after_the_last_seal_fails(srv: DnsFixture, keys: dict[str, DkimKey]) -> None:
    m2 = two_hops(srv, keys)[2]
    r = verify(srv, m2.replace(b"See you at ten.", b"See you at six."))
    assert (r.result, r.instances) == ("fail", 2)
    assert "ARC-Message-Signature" in r.reason and not is_temporary(r)


def test_tampered_arc_seal_fails(srv: DnsFixture, keys: dict[str, DkimKey]) -> None:
    m2 = two_hops(srv, keys)[2]
    seal1 = arc_field(m2, "ARC-Seal", 1)
    b = re.search(rb"b=([A-Za-z0-9+/])", seal1)
    assert b
    flipped = seal1[:b.start(1)] + (b"B" if b.group(1) != b"B" else b"C") + seal1[b.end(1):]
    r = verify(srv, m2.replace(seal1, flipped))
    assert (r.result, r.instances) == ("fail", 2) and "ARC-Seal" in r.reason
    assert dkim.arc_verify(m2.replace(seal1, flipped), dnsfunc=dnsfunc(srv))[0] == dkim.CV_Fail
    # A seal's cv= changed: the structure is wrong before any signature is checked.
    r = verify(srv, m2.replace(seal1, seal1.replace(b"cv=none", b"cv=pass")))
    assert r == ArcResult("fail", 2, "ARC-Seal i=1 says cv=pass, not none")


def test_a_set_without_the_sets_below_fails(srv: DnsFixture, keys: dict[str, DkimKey]) -> None:
    m2 = two_hops(srv, keys)[2]
    for name in ("ARC-Seal", "ARC-Message-Signature", "ARC-Authentication-Results"):
        m2 = m2.replace(arc_field(m2, name, 1), b"")
    assert verify(srv, m2) == ArcResult("fail", 2, "ARC set i=1 is missing")


def test_duplicate_and_incomplete_sets_fail(srv: DnsFixture, keys: dict[str, DkimKey]) -> None:
    m2 = two_hops(srv, keys)[2]
    ams1 = arc_field(m2, "ARC-Message-Signature", 1)
    assert verify(srv, m2.replace(ams1, b"")) == ArcResult("fail", 2, "ARC set i=1 has 0 ARC-Message-Signature fields")
    assert verify(srv, ams1 + m2) == ArcResult("fail", 2, "ARC set i=1 has 2 ARC-Message-Signature fields")


def _fake_set(i: int, cv: str = "", domain: str = "a.test") -> bytes:
    cv = cv or ("none" if i == 1 else "pass")
    return (f"ARC-Seal: i={i}; cv={cv}; a=rsa-sha256; d={domain}; s=arc1; t=1; b=AAAA\r\n"
            f"ARC-Message-Signature: i={i}; a=rsa-sha256; c=relaxed/relaxed; d={domain}; s=arc1; t=1;"
            f" h=from; bh=AAAA; b=AAAA\r\n"
            f"ARC-Authentication-Results: i={i}; mx.{domain}; arc={cv}\r\n").encode()


def test_more_than_fifty_sets_fail_without_a_lookup(srv: DnsFixture) -> None:
    many = b"".join(_fake_set(i) for i in range(51, 0, -1)) + ORIGINAL
    before = len(srv.queries)
    assert verify(srv, many) == ArcResult("fail", 51, "more than 50 ARC sets")
    assert verify(srv, _fake_set(51) + ORIGINAL) == ArcResult("fail", 51, "more than 50 ARC sets")
    assert len(srv.queries) == before


GARBAGE = [
    b"ARC-Seal: garbage\r\n",
    b"ARC-Seal: i=x; cv=none; a=rsa-sha256; d=a.test; s=arc1; b=AAAA\r\n",
    b"ARC-Message-Signature: ;;;==;\r\n",
    b"ARC-Authentication-Results: no instance here\r\n",
    b"ARC-Seal: i=1; i=1\r\n",
    b"ARC-Seal: \xff\xfe\x00 i=1\r\n",
    b"ARC-Seal: i=99999999999999999999999999999999\r\n",
    b"ARC-Seal: i=" + b"9" * 5000 + b"\r\n",
    b"arc-seal:\r\n",
    _fake_set(0),
    _fake_set(1),  # well-formed, signatures that are not
    _fake_set(1, cv="bogus"),
    _fake_set(1).replace(b"cv=none;", b"cv=none; h=from;"),
    _fake_set(1).replace(b"d=a.test", b"d=\xc3\xa9.test"),
    _fake_set(1).replace(b"a=rsa-sha256", b"a=rsa-sha1"),
    _fake_set(1).replace(b"a=rsa-sha256", b"a=ed25519-sha256"),
    # Well-formed, but not as dkimpy expects an AMS (" i=1;"): IndexError inside dkimpy.
    _fake_set(1).replace(b"ARC-Message-Signature: i=1; a=rsa-sha256;", b"ARC-Message-Signature: a=rsa-sha256;i=1 ;"),
    _fake_set(1).replace(b"h=from;", b"h=from : arc-seal;"),
    _fake_set(1).replace(b"b=AAAA", b"b=!!!!"),
    _fake_set(1).replace(b"s=arc1", b"s=" + b"x" * 300),
    _fake_set(1) + _fake_set(1),
    _fake_set(1) + b"this line is no header field\r\n",
    _fake_set(2) + _fake_set(1, domain="nowhere.test"),
]


@pytest.mark.parametrize("fields", GARBAGE, ids=range(len(GARBAGE)))
def test_garbage_arc_fields_fail_without_raising(srv: DnsFixture, fields: bytes) -> None:
    r = verify(srv, fields + ORIGINAL)
    assert r.result == "fail" and r.reason and not is_temporary(r), r
    assert r.reason.isprintable() and r.reason.isascii() and len(r.reason) <= 200


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(["ARC-Seal", "ARC-Message-Signature", "ARC-Authentication-Results"]),
       value=st.binary(max_size=120).map(lambda b: b.replace(b"\n", b" ").replace(b"\r", b" ")))
def test_any_arc_field_value_gives_a_result(srv: DnsFixture, name: str, value: bytes) -> None:
    r = verify(srv, name.encode() + b": " + value + b"\r\n" + _fake_set(1) + ORIGINAL)
    assert r.result == "fail" and r.reason


def test_missing_key_record_fails(srv: DnsFixture, keys: dict[str, DkimKey]) -> None:
    m2 = two_hops(srv, keys)[2]
    srv.remove(keys["b"].record_name)
    r = verify(srv, m2)
    assert (r.result, r.instances) == ("fail", 2) and not is_temporary(r)


def test_servfail_is_a_temporary_fail(srv: DnsFixture, keys: dict[str, DkimKey]) -> None:
    m2 = two_hops(srv, keys)[2]
    srv.servfail(keys["a"].record_name)
    r = verify(srv, m2)
    assert (r.result, r.instances) == ("fail", 2)
    assert is_temporary(r) and r.reason.startswith(TEMPORARY) and "arc1._domainkey.a.test" in r.reason


def test_silent_nameserver_answers_within_the_timeout(srv: DnsFixture, keys: dict[str, DkimKey]) -> None:
    m2 = two_hops(srv, keys)[2]
    srv.silent(keys["b"].record_name)
    start = time.monotonic()
    r = verify(srv, m2, timeout=1.0)
    elapsed = time.monotonic() - start
    assert 0.9 <= elapsed < 2.0, elapsed
    assert r.result == "fail" and is_temporary(r), r


def test_is_temporary() -> None:
    assert is_temporary(ArcResult("fail", 1, f"{TEMPORARY}: timed out"))
    assert not is_temporary(ArcResult("fail", 1, "ARC-Seal[1] did not validate"))
    assert not is_temporary(ArcResult("pass", 1))


# -- sealing a chain that failed -------------------------------------------------------------

def test_broken_chain_is_sealed_fail_once_and_then_left_alone(srv: DnsFixture, keys: dict[str, DkimKey]) -> None:
    m1 = hop(srv, origin_signed(keys), keys["a"], HOP1)
    broken = m1.replace(b"See you at ten.", b"See you at six.")  # changed in transit, unsealed
    m2 = hop(srv, broken, keys["b"], HOP2)
    as2 = arc_field(m2, "ARC-Seal", 2)
    assert b"cv=fail" in as2 and b"arc=fail" in arc_field(m2, "ARC-Authentication-Results", 2)
    # RFC 8617 §5.2 step 2: the next receiver stops at the failed seal (dkimpy says None).
    assert verify(srv, m2) == ArcResult("fail", 2, "the chain was marked failed at i=2")
    assert dkim.arc_verify(m2, dnsfunc=dnsfunc(srv))[0] is None
    # §5.1.2: the cv=fail seal covers its own set only, so it verifies with the rest gone.
    alone = m2
    for name in ("ARC-Seal", "ARC-Message-Signature", "ARC-Authentication-Results"):
        alone = alone.replace(arc_field(alone, name, 1), b"")
    a = dkim.ARC(alone)
    newest, fields = a.sorted_arc_headers()
    assert newest == 2 and a.verify_instance(fields, 2, dnsfunc=dnsfunc(srv))["as-valid"]
    # §5.1.3: once broken, the chain is not continued, whatever the caller says.
    ar = f"Authentication-Results: {HOP3}; arc=fail\r\n".encode()
    assert seal(ar + m2, keys["c"], HOP3, "fail") == b""
    assert seal(ar + m2, keys["c"], HOP3, "pass") == b""


def test_chain_argument_wins_over_the_ar_field(srv: DnsFixture, keys: dict[str, DkimKey]) -> None:
    m1 = hop(srv, origin_signed(keys), keys["a"], HOP1)
    # Two A-R fields of ours, one claiming arc=pass: merged, and cv comes from `chain`.
    message = (f"Authentication-Results: {HOP2}; arc=pass\r\n"
               f"Authentication-Results: {HOP2.upper()}; spf=pass smtp.mailfrom=alice@origin.test\r\n"
               f"Authentication-Results: mx.other.test; arc=pass\r\n").encode() + m1
    out = seal(message, keys["b"], HOP2, "fail")
    aar = arc_field(out, "ARC-Authentication-Results", 2)
    assert b"cv=fail" in arc_field(out, "ARC-Seal", 2)
    assert b"arc=fail" in aar and b"arc=pass" not in aar and b"spf=pass" in aar and b"other" not in aar
    assert out.endswith(b"\r\n")


def test_fail_on_garbage_without_instances_adds_nothing(keys: dict[str, DkimKey]) -> None:
    message = f"Authentication-Results: {HOP2}; arc=fail\r\n".encode() + b"ARC-Seal: garbage\r\n" + ORIGINAL
    assert seal(message, keys["b"], HOP2, "fail") == b""
    # With a readable instance there is a set to mark: i=2, cv=fail.
    message = f"Authentication-Results: {HOP2}; arc=fail\r\n".encode() + b"ARC-Seal: i=1; x\r\n" + ORIGINAL
    assert seal(message, keys["b"], HOP2, "fail").startswith(b"ARC-Seal: i=2; cv=fail;")


def test_no_fifty_first_set(keys: dict[str, DkimKey]) -> None:
    fifty = b"".join(_fake_set(i) for i in range(50, 0, -1))
    message = f"Authentication-Results: {HOP2}; arc=pass\r\n".encode() + fifty + ORIGINAL
    assert seal(message, keys["b"], HOP2, "pass") == b""
    assert seal(message, keys["b"], HOP2, "fail") == b""


@pytest.mark.parametrize("prefix,chain,key,match", [
    (b"Authentication-Results: mx.b.test; arc=none\r\n" + _fake_set(1), "none", "b", "carries ARC"),
    (b"Authentication-Results: mx.b.test; arc=pass\r\n", "pass", "b", "not valid"),
    (b"Authentication-Results: mx.b.test; arc=pass\r\n" + _fake_set(2), "pass", "b", "not valid"),
    (b"Authentication-Results: mx.other.test; arc=none\r\n", "none", "b", "no Authentication-Results"),
    (b"", "none", "b", "no Authentication-Results"),
    (b"Authentication-Results: mx.b.test; arc=none\r\n", "temperror", "b", "one of"),
    (b"Authentication-Results: mx.b.test; arc=none\r\n", "none", "ed", "RSA"),
    (b"Authentication-Results: mx.b.test; (unclosed comment\r\n", "none", "b", "cannot be parsed"),
])
def test_contradictions_raise(keys: dict[str, DkimKey], prefix: bytes, chain: str, key: str, match: str) -> None:
    with pytest.raises(ArcSealError, match=match):
        seal(prefix + ORIGINAL, keys[key], HOP2, chain)


def test_message_without_from_cannot_be_sealed(keys: dict[str, DkimKey]) -> None:
    message = b"Authentication-Results: mx.b.test; arc=none\r\nSubject: x\r\n\r\nbody\r\n"
    with pytest.raises(ArcSealError, match="From"):
        seal(message, keys["b"], HOP2, "none")
