"""Where mail for a domain goes: MX lookup (RFC 5321 §5.1, RFC 7505).

The ordering logic (:func:`order_mx`) is pure so it can be tested without DNS;
:class:`DestinationResolver` asks through the shared resolver (``postroom.resolver``).
"""

from __future__ import annotations

import ipaddress
import random
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from ..resolver import DnsSettings, DnsTemporary, Resolver

__all__ = ["DestinationResolver", "DnsPermanent", "DnsTemporary", "Host", "address_literal", "is_null_mx",
           "order_mx"]


class DnsPermanent(Exception):
    """The domain cannot receive mail: NXDOMAIN (5.1.2) or a null MX (5.1.10)."""

    def __init__(self, message: str, status: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class Host:
    """One delivery target: an MX name (or the domain itself, or the relay) and its addresses."""

    name: str
    preference: int
    addresses: tuple[str, ...]


def order_mx(records: Iterable[tuple[int, str]], rng: random.Random | None = None) -> list[tuple[int, str]]:
    """Sort by preference, shuffling hosts of equal preference (RFC 5321 §5.1: "randomize")."""
    rng = rng or random.Random()
    by_pref: dict[int, list[str]] = {}
    for pref, name in records:
        by_pref.setdefault(pref, []).append(name)
    out: list[tuple[int, str]] = []
    for pref in sorted(by_pref):
        names = list(dict.fromkeys(by_pref[pref]))
        rng.shuffle(names)
        out.extend((pref, n) for n in names)
    return out


def is_null_mx(records: Sequence[tuple[int, str]]) -> bool:
    """RFC 7505 §3: a single MX with an empty target ('.') means "no mail here"."""
    return len(records) == 1 and records[0][1] in ("", ".")


def address_literal(domain: str) -> str | None:
    """``[192.0.2.1]`` / ``[IPv6:2001:db8::1]`` (RFC 5321 §4.1.3) → the address."""
    if domain.startswith("[") and domain.endswith("]"):
        inner = domain[1:-1]
        if inner.lower().startswith("ipv6:"):
            inner = inner[5:]
        try:
            return str(ipaddress.ip_address(inner))
        except ValueError:
            return None
    return None


class DestinationResolver:
    """MX → hosts, on the shared :class:`~postroom.resolver.Resolver` (one cache with the checks)."""

    def __init__(self, nameserver: tuple[str, int] | None = None, timeout: float = 10.0,
                 rng: random.Random | None = None, resolver: Resolver | None = None) -> None:
        self.dns = resolver or Resolver(DnsSettings(nameserver, min(timeout, 3.0),
                                                    max(1, round(timeout / min(timeout, 3.0)))))
        self.rng = rng or random.Random()

    async def _query(self, name: str, rdtype: str) -> list[Any] | None:
        return await self.dns.query(name, rdtype)

    async def addresses(self, name: str) -> tuple[str, ...] | None:
        return await self.dns.addresses(name)

    async def hosts_for_domain(self, domain: str) -> list[Host]:
        """The hosts to try in order; raises DnsPermanent / DnsTemporary."""
        literal = address_literal(domain)
        if literal:
            return [Host(domain, 0, (literal,))]
        mx = await self._query(domain, "MX")
        if mx is None:
            raise DnsPermanent(f"domain {domain} does not exist", "5.1.2")
        records = [(r.preference, r.exchange.to_text(omit_final_dot=True)) for r in mx]  # type: ignore[attr-defined]
        if is_null_mx(records):
            raise DnsPermanent(f"domain {domain} does not accept mail (null MX, RFC 7505)", "5.1.10")
        if not records:
            # RFC 5321 §5.1: no MX → the domain itself is the implicit MX (A/AAAA).
            addrs = await self.addresses(domain)
            if not addrs:
                raise DnsPermanent(f"domain {domain} has no MX and no address records", "5.1.2")
            return [Host(domain, 0, addrs)]
        hosts: list[Host] = []
        temp: DnsTemporary | None = None
        for pref, name in order_mx([r for r in records if r[1] not in ("", ".")], self.rng):
            try:
                addrs = await self.addresses(name)
            except DnsTemporary as exc:
                temp = exc
                continue
            if addrs:
                hosts.append(Host(name, pref, addrs))
        if not hosts:
            if temp:
                raise temp
            # RFC 5321 §5.1: MX records exist but none resolves: treat as temporary,
            # the zone may be half-updated.
            raise DnsTemporary(f"no MX host of {domain} has an address")
        return hosts
