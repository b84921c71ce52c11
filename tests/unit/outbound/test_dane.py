"""DANE TLSA matching (RFC 6698 §2.1, RFC 7672 §3): records, chains and names, no I/O."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.oid import NameOID

from postroom.outbound.dane import (
    CERT_EXPIRED,
    CERT_HOST_MISMATCH,
    TLSA_INVALID,
    Tlsa,
    matches,
    name_matches,
    verify_chain,
)

NOW = dt.datetime.now(dt.UTC)


def _cert(subject: str, key, issuer_name: str, issuer_key, *, ca: bool, sans=(), days=(-1, 1)):
    b = (x509.CertificateBuilder()
         .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
         .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_name)]))
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(NOW + dt.timedelta(days=days[0])).not_valid_after(NOW + dt.timedelta(days=days[1]))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if sans:
        b = b.add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in sans]), critical=False)
    return b.sign(issuer_key, hashes.SHA256())


@pytest.fixture(scope="module")
def pki():
    ca_key, int_key, leaf_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    ca = _cert("Test Root", ca_key, "Test Root", ca_key, ca=True)
    inter = _cert("Test Intermediate", int_key, "Test Root", ca_key, ca=True)
    leaf = _cert("mx.example.test", leaf_key, "Test Intermediate", int_key, ca=False, sans=("mx.example.test",))
    expired = _cert("mx.example.test", leaf_key, "Test Intermediate", int_key, ca=False,
                    sans=("mx.example.test",), days=(-3, -1))
    other = _cert("mx.example.test", ec.generate_private_key(ec.SECP256R1()), "Test Intermediate", int_key,
                  ca=False, sans=("mx.example.test",))
    stranger_key = ec.generate_private_key(ec.SECP256R1())
    forged = _cert("mx.example.test", leaf_key, "Test Intermediate", stranger_key, ca=False,
                   sans=("mx.example.test",))
    return {"ca": ca, "inter": inter, "leaf": leaf, "expired": expired, "other": other, "forged": forged}


def der(c: x509.Certificate) -> bytes:
    return c.public_bytes(Encoding.DER)


def spki(c: x509.Certificate) -> bytes:
    return c.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


def rec(usage: int, selector: int, mtype: int, c: x509.Certificate) -> Tlsa:
    data = der(c) if selector == 0 else spki(c)
    data = {0: data, 1: hashlib.sha256(data).digest(), 2: hashlib.sha512(data).digest()}[mtype]
    return Tlsa(usage, selector, mtype, data)


@pytest.mark.parametrize("record, usable", [
    (Tlsa(3, 1, 1, bytes(32)), True),
    (Tlsa(2, 0, 2, bytes(64)), True),
    (Tlsa(3, 0, 0, b"\x30\x00"), True),
    (Tlsa(1, 1, 1, bytes(32)), False),  # PKIX-EE: unusable for SMTP (RFC 7672 §3.1.3)
    (Tlsa(0, 0, 1, bytes(32)), False),  # PKIX-TA
    (Tlsa(3, 2, 1, bytes(32)), False),  # unknown selector
    (Tlsa(3, 1, 3, bytes(32)), False),  # unknown matching type
    (Tlsa(3, 1, 1, bytes(31)), False),  # SHA-256 digest of the wrong length
    (Tlsa(3, 1, 2, bytes(32)), False),  # SHA-512 digest of the wrong length
    (Tlsa(3, 1, 0, b""), False),
])
def test_usable(record, usable):
    assert record.usable is usable


@pytest.mark.parametrize("selector, mtype", [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)])
def test_matches_every_selector_and_matching_type(pki, selector, mtype):
    r = rec(3, selector, mtype, pki["leaf"])
    assert matches(r, pki["leaf"])
    assert not matches(r, pki["other"])


def test_presentation_form():
    assert Tlsa(3, 1, 1, bytes.fromhex("ab" * 32)).text() == "3 1 1 " + "ab" * 32


def test_dane_ee_matches_leaf_without_name_or_date_checks(pki):
    # §3.1.1: an expired certificate with the published key is fine, and names don't matter.
    assert verify_chain([rec(3, 1, 1, pki["leaf"])], [der(pki["expired"])], ["elsewhere.test"]) is None
    assert verify_chain([rec(3, 0, 1, pki["leaf"])], [der(pki["leaf"]), der(pki["inter"])], []) is None


def test_dane_ee_mismatch(pki):
    f = verify_chain([rec(3, 1, 1, pki["other"])], [der(pki["leaf"])], ["mx.example.test"])
    assert f is not None and f.result_type == TLSA_INVALID


def test_dane_ee_key_in_a_non_leaf_does_not_count(pki):
    f = verify_chain([rec(3, 1, 1, pki["inter"])], [der(pki["leaf"]), der(pki["inter"])], ["mx.example.test"])
    assert f is not None


def test_unusable_records_never_authenticate(pki):
    # A PKIX-EE record with the right digest is still no match for SMTP.
    f = verify_chain([rec(1, 1, 1, pki["leaf"])], [der(pki["leaf"])], ["mx.example.test"])
    assert f is not None and f.result_type == TLSA_INVALID


def test_dane_ta_intermediate_and_root(pki):
    chain = [der(pki["leaf"]), der(pki["inter"]), der(pki["ca"])]
    assert verify_chain([rec(2, 1, 1, pki["inter"])], chain, ["mx.example.test"]) is None
    assert verify_chain([rec(2, 0, 1, pki["ca"])], chain, ["mx.example.test"]) is None
    assert verify_chain([rec(2, 0, 2, pki["ca"])], chain, ["tlsa-base.test", "mx.example.test"]) is None


def test_dane_ta_checks_names(pki):
    chain = [der(pki["leaf"]), der(pki["inter"])]
    f = verify_chain([rec(2, 1, 1, pki["inter"])], chain, ["mx.other.test"])
    assert f is not None and f.result_type == CERT_HOST_MISMATCH


def test_dane_ta_checks_leaf_dates(pki):
    f = verify_chain([rec(2, 1, 1, pki["inter"])], [der(pki["expired"]), der(pki["inter"])], ["mx.example.test"])
    assert f is not None and f.result_type == CERT_EXPIRED


def test_dane_ta_checks_signatures(pki):
    # The leaf names the intermediate as issuer but was signed by another key.
    f = verify_chain([rec(2, 1, 1, pki["inter"])], [der(pki["forged"]), der(pki["inter"])], ["mx.example.test"])
    assert f is not None and f.result_type == TLSA_INVALID


def test_dane_ta_needs_the_anchor_in_the_chain(pki):
    # RFC 7671 §5.2.2: the server sends the TA; a chain without it does not verify.
    f = verify_chain([rec(2, 0, 1, pki["ca"])], [der(pki["leaf"]), der(pki["inter"])], ["mx.example.test"])
    assert f is not None and f.result_type == TLSA_INVALID


def test_no_certificate_or_garbage(pki):
    assert verify_chain([rec(3, 1, 1, pki["leaf"])], [], ["mx.example.test"]).result_type == TLSA_INVALID
    assert verify_chain([rec(3, 1, 1, pki["leaf"])], [b"\x30\x03junk"], ["x"]).result_type == TLSA_INVALID


@pytest.mark.parametrize("presented, reference, ok", [
    ("mx.example.test", "MX.Example.Test.", True),
    ("*.example.test", "mx.example.test", True),
    ("*.example.test", "a.mx.example.test", False),  # one label only
    ("*.example.test", "example.test", False),
    ("*.test", "example.test", False),  # not a wildcard over a top-level label
    ("m*.example.test", "mx.example.test", False),  # partial-label wildcards are not honoured
    ("mx.example.test", "mx2.example.test", False),
])
def test_name_matches(presented, reference, ok):
    assert name_matches(presented, reference) is ok


def test_tlsrpt_counts_and_report_for_a_tlsa_policy(tmp_path):
    """RFC 8460 §4.4: DANE sessions are reported under policy-type "tlsa", without mx-host."""
    from postroom.outbound.tlsrpt import TlsReportCounts, build_report

    counts = TlsReportCounts(tmp_path, clock=lambda: 1_700_000_000.0)
    text = "3 1 1 " + "ab" * 32
    counts.success("example.test", "tlsa mx.example.test 1", text, ("mx.example.test",), policy_type="tlsa")
    counts.failure("example.test", "tlsa mx.example.test 1", text, ("mx.example.test",), TLSA_INVALID,
                   "mx.example.test", "192.0.2.1", "no match", policy_type="tlsa")
    counts.success("example.test", "sts1", "version: STSv1\nmode: enforce", ("mx.example.test",))
    counts.flush()
    data = counts.load("2023-11-14")
    report = build_report(data, "example.test", organization="here.test", contact="postmaster@here.test")
    by_type = {p["policy"]["policy-type"]: p for p in report["policies"]}
    assert set(by_type) == {"tlsa", "sts"}
    tlsa = by_type["tlsa"]
    assert tlsa["policy"] == {"policy-type": "tlsa", "policy-string": [text], "policy-domain": "example.test"}
    assert tlsa["summary"] == {"total-successful-session-count": 1, "total-failure-session-count": 1}
    assert tlsa["failure-details"][0]["result-type"] == "tlsa-invalid"
    assert tlsa["failure-details"][0]["receiving-mx-hostname"] == "mx.example.test"
    assert by_type["sts"]["policy"]["mx-host"] == ["mx.example.test"]


def test_query_secure_reports_the_ad_bit_and_the_cname_target():
    """``Resolver.query_secure`` against the DNS fixture: AD only where the fixture (as a
    validating resolver) sets it, the whole CNAME chain secure or nothing, SERVFAIL temporary."""
    import asyncio

    from dnsfixture import DnsFixture

    from postroom.resolver import DnsSettings, DnsTemporary, Resolver

    async def ask(r: Resolver):
        return [await r.query_secure(n, t) for n, t in (
            ("mx.example.test", "A"), ("plain.example.test", "A"), ("alias.example.test", "A"),
            ("half.example.test", "A"), ("mx.example.test", "TLSA"), ("nowhere.example.test", "A"))]

    with DnsFixture() as dns:
        dns.a("mx.example.test", "192.0.2.1")
        dns.a("plain.example.test", "192.0.2.2")
        dns.cname("alias.example.test", "mx.example.test")
        dns.cname("half.example.test", "plain.example.test")
        dns.secure("mx.example.test", "alias.example.test", "half.example.test", "nowhere.example.test")
        dns.servfail("_25._tcp.mx.example.test")
        r = Resolver(DnsSettings(("127.0.0.1", dns.port), 1.0, 1))
        secure, plain, alias, half, nodata, nx = asyncio.run(ask(r))
        assert [x.address for x in secure.records] == ["192.0.2.1"] and secure.secure
        assert plain.records and not plain.secure
        assert alias.secure and alias.canonical == "mx.example.test"
        assert half.records and not half.secure and half.canonical == "plain.example.test"
        assert nodata.records == [] and nodata.secure  # secure denial of the type
        assert nx.records is None and nx.secure
        with pytest.raises(DnsTemporary):
            asyncio.run(r.query_secure("_25._tcp.mx.example.test", "TLSA"))
        # Ordinary lookups are unchanged: records, no DNSSEC verdict.
        assert [x.address for x in asyncio.run(r.query("alias.example.test", "A"))] == ["192.0.2.1"]
