"""Pure relay and sender rules: who may send mail to where. No I/O, no store.

The rules (issue #3, RFC 5321 §3.9 and §7.1, RFC 6409 §4.3 and §6.1):

- mail for a served domain is accepted from anyone;
- mail for any other domain only from an authenticated client or a configured
  trusted network (none by default, not even loopback);
- address forms that have made servers open relays are refused on RCPT whatever
  the domain: source routes, "%" (the percent hack), "!" (UUCP bang paths),
  quoted local parts and address literals — a server that passes them on lets the
  next hop re-interpret the local part as a new destination.
"""

from __future__ import annotations

import enum
import ipaddress
from dataclasses import dataclass
from typing import Iterable, Sequence

from .address import Path


class Route(enum.Enum):
    LOCAL = "local"  # a served domain: deliver to the store
    RELAY = "relay"  # another domain, and the client may relay: outbound queue
    DENIED = "denied"


@dataclass(frozen=True, slots=True)
class Client:
    """What the policy knows about the client."""

    authenticated: bool
    trusted: bool  # its IP is in trusted_networks


def routing_hazard(path: Path) -> str | None:
    """Why this recipient form is refused outright, or None when it is acceptable."""
    if path.source_route:
        return "source routes are not accepted"  # RFC 5321 §3.6.1, Appendix C
    if path.literal:
        return "address literals are not accepted"
    if path.quoted:
        return "quoted local parts are not accepted"
    if "%" in path.local:
        return "'%' in a local part is not accepted"
    if "!" in path.local:
        return "'!' in a local part is not accepted"
    return None


def route(domain_is_local: bool, client: Client) -> Route:
    if domain_is_local:
        return Route.LOCAL
    if client.authenticated or client.trusted:
        return Route.RELAY
    return Route.DENIED


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(values: Iterable[str]) -> tuple[list[Network], list[str]]:
    """CIDR strings → networks, plus one message per invalid entry."""
    nets: list[Network] = []
    bad: list[str] = []
    for v in values:
        try:
            nets.append(ipaddress.ip_network(v.strip(), strict=False))
        except ValueError:
            bad.append(f"{v!r} is not an IP network such as 192.0.2.0/24")
    return nets, bad


# is_trusted's answers by (id(networks), ip), each with the networks it was for: asked at
# every connection (the session's trust, the rate limits' and the screen's exemptions), it
# parsed the address and walked the networks each time. The entry holds its networks, so
# their id cannot be reused while it is kept; cleared when full (one entry per client IP).
_trusted_memo: dict[tuple[int, str], tuple[Sequence[Network], bool]] = {}
_TRUSTED_MEMO_MAX = 4096


def is_trusted(ip: str, networks: Sequence[Network]) -> bool:
    if not networks or not ip:
        return False
    key = (id(networks), ip)
    hit = _trusted_memo.get(key)
    if hit is not None and hit[0] is networks:
        return hit[1]
    answer = _is_trusted(ip, networks)
    if isinstance(networks, tuple):  # a list may change in place: asked afresh each time
        if len(_trusted_memo) >= _TRUSTED_MEMO_MAX:
            _trusted_memo.clear()
        _trusted_memo[key] = (networks, answer)
    return answer


def _is_trusted(ip: str, networks: Sequence[Network]) -> bool:
    try:
        addr = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped:
        addr = addr.ipv4_mapped
    return any(addr.version == n.version and addr in n for n in networks)


def base_address(address: str) -> str:
    """``user+tag@example.org`` → ``user@example.org`` (lower case)."""
    local, _, domain = address.lower().rpartition("@")
    return f"{local.split('+', 1)[0]}@{domain}" if local else address.lower()


def sender_allowed(sender: str, login: str, owners: Iterable[str] = ()) -> bool:
    """May the user logged in as ``login`` use envelope sender ``sender``?

    Yes for the null sender (bounces, vacation replies), for the login address and
    its ``+tag`` subaddresses, and for an alias whose targets include the login
    (``owners`` are those targets, looked up by the caller).
    """
    if not sender:
        return True
    login = login.lower()
    if sender.lower() == login or base_address(sender) == login:
        return True
    return any(o.lower() == login for o in owners)
