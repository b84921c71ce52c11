"""DNS in one place: the ``[dns]`` section and the one async resolver every lookup uses.

Outbound MX lookups, SPF, DKIM key fetches, DMARC and ARC all ask through
:class:`Resolver`, so they share one TTL-honouring cache (dnspython's) and one set of
timeouts. The answer model is the one mail authentication needs (RFC 7208 §2.6,
RFC 7489 §6.6.3): records, ``None`` for NXDOMAIN, ``[]`` for "the name exists but has no
such record", and :class:`DnsTemporary` for everything else (timeout, SERVFAIL, no
reachable nameserver). A temporary failure must never be read as "no record": that
would turn a flaky nameserver into a wrong SPF or DMARC verdict.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from dataclasses import dataclass
from typing import Any, Iterable

import dns.asyncresolver
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rdatatype
import dns.rdata
import dns.resolver

from .config import Config, parse_duration, parse_hostport


class DnsTemporary(Exception):
    """SERVFAIL, timeout, no answer from the nameserver: retry later (status 4.4.3)."""


@dataclass(frozen=True, slots=True)
class SecureAnswer:
    """An answer with the resolver's DNSSEC verdict (:meth:`Resolver.query_secure`).

    ``secure`` is the AD bit of the response (RFC 4035 §3.2.3): the validating resolver
    vouches for every record in it, the CNAME chain included. ``canonical`` is the name
    the answer is for after CNAME expansion (the queried name when there was none)."""

    records: list[dns.rdata.Rdata] | None  # as query(): None NXDOMAIN, [] no data
    secure: bool
    canonical: str


@dataclass(frozen=True, slots=True)
class DnsSettings:
    nameserver: tuple[str, int] | None = None  # None: the system's (/etc/resolv.conf)
    timeout: float = 5.0  # seconds per attempt
    attempts: int = 2  # tries of each query before it is a temporary failure
    from_outbound: bool = False  # set by the deprecated ``[outbound] resolver``

    @property
    def lifetime(self) -> float:
        return self.timeout * self.attempts


def parse(cfg: Config, problems: list[str]) -> DnsSettings:
    sec = cfg.section("dns", problems)
    d = DnsSettings()
    nameserver: tuple[str, int] | None = None
    from_outbound = False
    value = sec.get("resolver", str, "")
    if not value.strip() or value.strip() == "system":
        # [outbound] resolver was the only setting before [dns] existed: still honoured.
        old = cfg.sections.get("outbound", {}).get("resolver")
        if isinstance(old, str) and old.strip():
            value, from_outbound = old, True
    if value.strip() and value.strip() != "system":
        key = "resolver"
        try:
            host, port = parse_hostport(value, "127.0.0.1")
            ipaddress.ip_address(host)
            nameserver = (host, port or 53)
        except ValueError as exc:
            if not from_outbound:  # [outbound] reports its own key's problems
                sec.problem(key, f"{exc}" if ":" in value else f"{value!r} is not IP or IP:PORT")
    timeout = sec.convert("timeout", parse_duration, d.timeout)
    if timeout <= 0:
        sec.problem("timeout", "must be positive")
        timeout = d.timeout
    attempts = sec.get("attempts", int, d.attempts)
    if not 1 <= attempts <= 10:
        sec.problem("attempts", "must be between 1 and 10")
        attempts = d.attempts
    sec.finish()
    return DnsSettings(nameserver, timeout, attempts, from_outbound)


def check_settings(cfg: Config, problems: list[str]) -> None:
    parse(cfg, problems)


def deprecations(cfg: Config) -> list[str]:
    """Settings that still work but should move: ``postroom check`` prints them as warnings."""
    out = []
    old = cfg.sections.get("outbound", {}).get("resolver")
    if isinstance(old, str) and old.strip():
        if cfg.sections.get("dns", {}).get("resolver"):
            out.append("outbound.resolver: ignored, [dns] resolver is set (remove outbound.resolver)")
        else:
            out.append("outbound.resolver: deprecated, move it to [dns] resolver")
    return out


class Resolver:
    """Async lookups with the answer model above; one per process (:func:`shared`)."""

    def __init__(self, settings: DnsSettings = DnsSettings()) -> None:
        self.settings = settings
        if settings.nameserver:
            r = dns.asyncresolver.Resolver(configure=False)
            r.nameservers = [settings.nameserver[0]]
            r.port = settings.nameserver[1]
        else:
            try:
                r = dns.asyncresolver.Resolver()
            except dns.resolver.NoResolverConfiguration:  # no /etc/resolv.conf: every lookup is temporary
                r = dns.asyncresolver.Resolver(configure=False)
                r.nameservers = ["127.0.0.1"]
        # dnspython's cache honours each record's TTL (and caches NXDOMAIN for the SOA minimum).
        r.cache = dns.resolver.Cache(cleaning_interval=60.0)
        r.timeout = settings.timeout
        r.lifetime = settings.lifetime
        self.resolver = r
        # DNSSEC-aware lookups (DANE, RFC 7672 §2.1) ask a twin with DO and AD set, with a
        # cache of its own so that ordinary lookups keep their plain queries and answers.
        sr = dns.asyncresolver.Resolver(configure=False)
        sr.nameservers, sr.port = list(r.nameservers), r.port
        sr.timeout, sr.lifetime = r.timeout, r.lifetime
        sr.use_edns(0, dns.flags.DO, 1232)
        sr.flags = dns.flags.RD | dns.flags.AD
        sr.cache = dns.resolver.Cache(cleaning_interval=60.0)
        self.secure_resolver = sr
        # Results computed from this resolver's answers and kept no longer than those
        # answers (e.g. SPF, mailauth/spf.py), by the module that computes them.
        self.derived: dict[str, dict[Any, Any]] = {}
        self.derived_lock = threading.Lock()
        # Answers by the query exactly as asked, in front of dnspython's cache: a hit there
        # still builds dns.name objects and a resolution (~60 µs); a hit here is a dict
        # lookup. Entries live exactly as long as the answer's expiry says.
        self._answers: dict[tuple[str, str], tuple[tuple[dns.rdata.Rdata, ...] | None, float]] = {}

    async def query(self, name: str, rdtype: str) -> list[dns.rdata.Rdata] | None:
        """Records, ``None`` for NXDOMAIN, ``[]`` for no data; :class:`DnsTemporary` otherwise."""
        return (await self.query_expiring(name, rdtype))[0]

    async def query_expiring(self, name: str, rdtype: str) -> tuple[list[dns.rdata.Rdata] | None, float]:
        """As :meth:`query`, with the time (``time.time()``) until which the answer holds: the
        records' TTL, or for NXDOMAIN and no data the SOA's negative TTL (RFC 2308 §5; now
        when the answer has no SOA). Lets a result computed from answers be kept exactly as
        long as the answers themselves would be (:mod:`postroom.mailauth.spf`)."""
        key = (name, rdtype)
        hit = self._answers.get(key)
        if hit is not None and hit[1] > time.time():
            return (None if hit[0] is None else list(hit[0])), hit[1]
        records, expiry = await self._lookup(name, rdtype)
        if expiry > time.time():
            if len(self._answers) >= _MAX_ANSWERS:
                now = time.time()
                self._answers = {k: v for k, v in self._answers.items() if v[1] > now}
                if len(self._answers) >= _MAX_ANSWERS:
                    self._answers.clear()
            self._answers[key] = (None if records is None else tuple(records)), expiry
        return records, expiry

    def has_answer(self, name: str, rdtype: str) -> bool:
        """Whether :meth:`query` of this would be answered from the cache, without waiting."""
        hit = self._answers.get((name, rdtype))
        return hit is not None and hit[1] > time.time()

    async def _lookup(self, name: str, rdtype: str) -> tuple[list[dns.rdata.Rdata] | None, float]:
        try:
            ans = await self.resolver.resolve(name, rdtype, search=False)
            return list(ans), float(ans.expiration)
        except dns.resolver.NXDOMAIN as exc:
            return None, _negative_expiry(exc.responses().values())
        except dns.resolver.NoAnswer as exc:
            return [], _negative_expiry([exc.response()] if exc.kwargs.get("response") else [])
        except (dns.resolver.NoNameservers, dns.exception.Timeout, dns.resolver.LifetimeTimeout) as exc:
            raise DnsTemporary(f"DNS lookup of {name} {rdtype} failed: {exc.__class__.__name__}") from None
        except (dns.name.EmptyLabel, dns.name.LabelTooLong, dns.name.NameTooLong, dns.name.BadEscape,
                dns.name.IDNAException):
            # A name that cannot exist (e.g. from a forged header): as NXDOMAIN. IDNAException
            # comes only with the ``idna`` package installed (dnspython then uses IDNA 2008).
            return None, time.time()
        except dns.exception.DNSException as exc:
            raise DnsTemporary(f"DNS lookup of {name} {rdtype} failed: {exc}") from None

    async def query_secure(self, name: str, rdtype: str) -> SecureAnswer:
        """As :meth:`query`, asked with the DO and AD bits (RFC 6840 §5.7), with whether the
        resolver validated the answer. Trusting AD presumes ``[dns] resolver`` is a
        validating resolver reached over a trusted path (RFC 7672 §8.4: loopback)."""
        try:
            ans = await self.secure_resolver.resolve(name, rdtype, search=False)
            return SecureAnswer(list(ans), bool(ans.response.flags & dns.flags.AD),
                                ans.canonical_name.to_text(omit_final_dot=True))
        except dns.resolver.NXDOMAIN as exc:
            responses = list(exc.responses().values())
            return SecureAnswer(None, bool(responses) and all(r.flags & dns.flags.AD for r in responses), name)
        except dns.resolver.NoAnswer as exc:
            resp = exc.response() if exc.kwargs.get("response") else None
            return SecureAnswer([], resp is not None and bool(resp.flags & dns.flags.AD), name)
        except (dns.name.EmptyLabel, dns.name.LabelTooLong, dns.name.NameTooLong, dns.name.BadEscape,
                dns.name.IDNAException):
            return SecureAnswer(None, False, name)
        except dns.exception.DNSException as exc:  # SERVFAIL (also a bogus answer), timeout
            raise DnsTemporary(f"DNS lookup of {name} {rdtype} failed: {exc.__class__.__name__}") from None

    async def txt(self, name: str) -> list[bytes] | None:
        """TXT records, each one's strings joined (RFC 7208 §3.3, RFC 6376 §3.6.2.2)."""
        records = await self.query(name, "TXT")
        if records is None:
            return None
        return [b"".join(r.strings) for r in records]  # type: ignore[attr-defined]

    async def addresses(self, name: str) -> tuple[str, ...] | None:
        """A then AAAA addresses (IPv4 first); ``None`` if the name does not exist."""
        try:
            return (str(ipaddress.ip_address(name)),)
        except ValueError:
            pass
        a = await self.query(name, "A")
        aaaa = await self.query(name, "AAAA") if a is not None else None
        if a is None and aaaa is None:
            return None
        return tuple(r.address for r in (a or []) + (aaaa or []))  # type: ignore[attr-defined]


def _negative_expiry(responses: Iterable[dns.message.Message]) -> float:
    now = time.time()
    ttls = [min(rrs.ttl, rrs[0].minimum) for r in responses for rrs in r.authority
            if rrs.rdtype == dns.rdatatype.SOA and len(rrs)]  # type: ignore[attr-defined]
    return now + min(ttls) if ttls else now


_MAX_ANSWERS = 10_000  # distinct queries kept in front of dnspython's cache (which has no bound either)
_shared: dict[DnsSettings, Resolver] = {}
_shared_lock = threading.Lock()


def shared(cfg: Config) -> Resolver:
    """The process's resolver for this config's ``[dns]``: one cache for every lookup."""
    settings = parse(cfg, [])
    with _shared_lock:
        r = _shared.get(settings)
        if r is None:
            r = _shared[settings] = Resolver(settings)
        return r
