"""DANE for outbound SMTP (RFC 7672, RFC 6698, RFC 7671): which MX hosts must be
authenticated through TLSA records, and whether a peer's certificate chain matches them.

Opt-in (``[outbound] dane = true``), and only as strong as ``[dns] resolver``: the AD bit
of its answers is the whole DNSSEC verdict, so it must be a validating resolver on a
trusted path (loopback; RFC 7672 §8.4). Two halves:

* :class:`DaneSource` asks DNS (through :meth:`postroom.resolver.Resolver.query_secure`)
  and returns a :class:`DanePlan`: for each MX host, whether DANE applies and with which
  records. No DANE (insecure MX RRset, insecure address or TLSA records, no TLSA) leaves
  the host to opportunistic TLS and MTA-STS, exactly as with ``dane = false``.
* :func:`verify_chain` is pure: TLSA records, the DER certificates the peer presented,
  the reference names and a time in, a failure (RFC 8460 result type and reason) or
  nothing out. DANE-EE(3) matches the leaf with no name or date check (§3.1.1);
  DANE-TA(2) needs the trust anchor among the presented certificates (RFC 7671 §5.2.2
  says servers MUST send it), checks each link's signature and dates up to it and the
  leaf's names against the TLSA base name and the MX name (§3.2.2).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ..resolver import DnsTemporary, Resolver
from .dns import Host, address_literal

log = logging.getLogger("postroom.outbound.dane")

# RFC 6698 §2.1 / RFC 7218 names.
PKIX_TA, PKIX_EE, DANE_TA, DANE_EE = 0, 1, 2, 3
SEL_CERT, SEL_SPKI = 0, 1
MATCH_FULL, MATCH_SHA256, MATCH_SHA512 = 0, 1, 2
_DIGEST_LEN = {MATCH_SHA256: 32, MATCH_SHA512: 64}

# RFC 8460 §4.3.2.1 (DANE policy) and §4.3.1 result types used here.
TLSA_INVALID = "tlsa-invalid"
DNSSEC_INVALID = "dnssec-invalid"
CERT_HOST_MISMATCH = "certificate-host-mismatch"
CERT_EXPIRED = "certificate-expired"


@dataclass(frozen=True, slots=True)
class Tlsa:
    """One TLSA record (RFC 6698 §2.1)."""

    usage: int
    selector: int
    mtype: int
    data: bytes

    @property
    def usable(self) -> bool:
        """RFC 7672 §3.1: only DANE-TA and DANE-EE serve SMTP (PKIX-TA/EE are unusable,
        §3.1.3); unknown selectors or matching types, and digests of the wrong length
        (RFC 7671 §5.4 would call such a record malformed), are unusable too."""
        if self.usage not in (DANE_TA, DANE_EE) or self.selector not in (SEL_CERT, SEL_SPKI):
            return False
        if self.mtype == MATCH_FULL:
            return bool(self.data)
        return _DIGEST_LEN.get(self.mtype) == len(self.data)

    def text(self) -> str:
        """Presentation form, for logs and the TLS-RPT ``policy-string``."""
        return f"{self.usage} {self.selector} {self.mtype} {self.data.hex()}"


def associated_data(cert: x509.Certificate, selector: int) -> bytes:
    """RFC 6698 §2.1.2: the full certificate or its SubjectPublicKeyInfo, DER."""
    if selector == SEL_CERT:
        return cert.public_bytes(Encoding.DER)
    return cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


def matches(rec: Tlsa, cert: x509.Certificate) -> bool:
    """RFC 6698 §2.1.3: the selected data, as is or hashed, equals the record's data."""
    data = associated_data(cert, rec.selector)
    if rec.mtype == MATCH_SHA256:
        data = hashlib.sha256(data).digest()
    elif rec.mtype == MATCH_SHA512:
        data = hashlib.sha512(data).digest()
    return data == rec.data


def _dns_names(cert: x509.Certificate) -> list[str]:
    """RFC 7672 §3.2.3: the DNS subjectAltNames; the CN only when there are none."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = san.get_values_for_type(x509.DNSName)
        if names:
            return [n.lower().rstrip(".") for n in names]
    except x509.ExtensionNotFound:
        pass
    return [str(a.value).lower().rstrip(".") for a in cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)]


def name_matches(presented: str, reference: str) -> bool:
    """A presented name matches a reference name; ``*`` only as the whole leftmost label,
    standing for exactly one label (RFC 7672 §3.2.3, RFC 6125 §6.4.3)."""
    presented, reference = presented.lower().rstrip("."), reference.lower().rstrip(".")
    if presented == reference:
        return True
    if presented.startswith("*.") and "*" not in presented[2:]:
        head, _, rest = reference.partition(".")
        return bool(head) and rest == presented[2:] and "." in rest
    return False


@dataclass(frozen=True, slots=True)
class Failure:
    result_type: str  # RFC 8460 result type
    reason: str


def _valid_at(cert: x509.Certificate, now: dt.datetime) -> bool:
    return cert.not_valid_before_utc <= now <= cert.not_valid_after_utc


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def _path_to(chain: Sequence[x509.Certificate], top: int, now: dt.datetime) -> Failure | None:
    """Each certificate below ``chain[top]`` (the trust anchor) signed by the next one,
    within its dates; the intermediates CAs. The anchor's own dates are not checked: the
    TLSA record, not the anchor's signature, is what vouches for it (RFC 7671 §5.2)."""
    for i in range(top):
        issuer = chain[i + 1]
        if i + 1 < top and not _is_ca(issuer):
            return Failure(TLSA_INVALID, f"intermediate {issuer.subject.rfc4514_string()} is not a CA")
        try:
            chain[i].verify_directly_issued_by(issuer)
        except (ValueError, TypeError, InvalidSignature):
            return Failure(TLSA_INVALID, f"certificate {i} is not issued by the next one in the chain")
        if not _valid_at(chain[i], now):
            return Failure(CERT_EXPIRED, f"certificate {chain[i].subject.rfc4514_string()} is outside its dates")
    return None


def verify_chain(records: Sequence[Tlsa], chain_der: Sequence[bytes], names: Sequence[str],
                 now: dt.datetime | None = None) -> Failure | None:
    """Whether the peer's chain (leaf first) is authenticated by the usable ``records``;
    ``names`` are the reference identifiers for DANE-TA (TLSA base name, MX name)."""
    now = now or dt.datetime.now(dt.UTC)
    usable = [r for r in records if r.usable]
    if not chain_der:
        return Failure(TLSA_INVALID, "the server presented no certificate")
    try:
        chain = [x509.load_der_x509_certificate(d) for d in chain_der]
    except ValueError:
        return Failure(TLSA_INVALID, "the server's certificate cannot be parsed")
    leaf = chain[0]
    # RFC 7672 §3.1.1: DANE-EE binds the key (or certificate) alone; no name, no dates.
    if any(matches(r, leaf) for r in usable if r.usage == DANE_EE):
        return None
    anchors = [r for r in usable if r.usage == DANE_TA]
    failure = Failure(TLSA_INVALID, "no TLSA record matches the server's certificate chain")
    for top in range(1, len(chain)):
        if not any(matches(r, chain[top]) for r in anchors):
            continue
        broken = _path_to(chain, top, now)
        if broken is not None:
            failure = broken
            continue
        presented = _dns_names(leaf)
        if any(name_matches(p, n) for p in presented for n in names):
            return None
        failure = Failure(CERT_HOST_MISMATCH, f"certificate names {', '.join(presented) or '(none)'} "
                                              f"match none of {', '.join(names)}")
    return failure


# -- which hosts DANE applies to -----------------------------------------------------------

class State(Enum):
    INSECURE = "insecure"  # no DNSSEC: opportunistic TLS (and MTA-STS)
    NO_TLSA = "no-tlsa"  # secure denial of TLSA records: as insecure
    USABLE = "usable"  # authenticated TLS required
    UNUSABLE = "unusable"  # secure TLSA records, none usable: TLS required, unauthenticated
    FAILED = "failed"  # TLSA lookup failed for a secure name: defer (§2.1.1)


@dataclass(frozen=True, slots=True)
class HostDane:
    state: State
    records: tuple[Tlsa, ...] = ()
    names: tuple[str, ...] = ()  # reference identifiers (§3.2.2): TLSA base name first
    error: str = ""

    @property
    def policy_text(self) -> str:
        return "\n".join(r.text() for r in self.records)


INSECURE = HostDane(State.INSECURE)


@dataclass(slots=True)
class DanePlan:
    """DANE's verdict for one destination: the MX RRset's status and each host's state."""

    mx_secure: bool = False
    hosts: dict[str, HostDane] = field(default_factory=dict)

    def of(self, host: Host) -> HostDane:
        return self.hosts.get(host.name.lower(), INSECURE)


class DaneSource:
    """Looks up the DANE state of a domain's MX hosts through the shared resolver."""

    def __init__(self, resolver: Resolver) -> None:
        self.dns = resolver

    async def plan(self, domain: str, hosts: list[Host]) -> tuple[list[Host], DanePlan]:
        """The hosts to try and the plan. With a secure MX RRset, hosts it does not name
        are dropped (the insecure lookup they came from cannot vouch for them).
        Raises :class:`DnsTemporary` when the validated MX lookup fails."""
        plan = DanePlan()
        if address_literal(domain):
            return hosts, plan
        mx = await self.dns.query_secure(domain, "MX")
        # RFC 7672 §2.2.1: DANE needs a secure MX RRset (or, without MX records, secure
        # address records of the domain, checked per host below).
        if not mx.secure:
            return hosts, plan
        plan.mx_secure = True
        if mx.records:
            named = {r.exchange.to_text(omit_final_dot=True).lower() for r in mx.records}  # type: ignore[attr-defined]
            kept = [h for h in hosts if h.name.lower() in named]
            if len(kept) < len(hosts):
                log.warning("DANE: MX hosts of %s not in its validated MX RRset skipped: %s", domain,
                            ", ".join(h.name for h in hosts if h not in kept))
            hosts = kept
        for h in hosts:
            plan.hosts[h.name.lower()] = await self.host(h.name)
        return hosts, plan

    async def host(self, name: str) -> HostDane:
        """RFC 7672 §2.2.2: TLSA records at the CNAME-expanded name first, then at the
        MX name; only when the address records are secure."""
        try:
            addr = await self.dns.query_secure(name, "A")
            if addr.records == [] and addr.secure:  # IPv6 only: the AAAA RRset decides
                addr = await self.dns.query_secure(name, "AAAA")
        except DnsTemporary as exc:
            return HostDane(State.FAILED, error=str(exc))
        if not addr.secure:
            return INSECURE
        bases = [addr.canonical.lower(), name.lower()] if addr.canonical.lower() != name.lower() else [name.lower()]
        for base in bases:
            try:
                ans = await self.dns.query_secure(f"_25._tcp.{base}", "TLSA")
            except DnsTemporary as exc:
                # §2.1.1: a secure name whose TLSA lookup fails may be under attack: defer.
                return HostDane(State.FAILED, error=str(exc))
            if not ans.secure:
                return INSECURE
            if ans.records:
                records = tuple(Tlsa(r.usage, r.selector, r.mtype, bytes(r.cert))  # type: ignore[attr-defined]
                                for r in ans.records)
                names = tuple(dict.fromkeys([base, name.lower()]))
                state = State.USABLE if any(r.usable for r in records) else State.UNUSABLE
                return HostDane(state, records, names)
        return HostDane(State.NO_TLSA)
