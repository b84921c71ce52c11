"""Connection-time checks of strangers on the MX listener (``[screen]``, docs/abuse.md).

What Postfix splits between postscreen and smtpd restrictions, as one :class:`Check`:

- **early talkers**: a client that sends before the greeting (after ``greet_pause``)
  is a bot that does not wait for the server (RFC 5321 §3.1, §4.3.1): ``554 5.5.1``
  and the connection is closed;
- **DNSBL/DNSWL**: the client's address in each zone (``2.0.0.127.zen.spamhaus.org``,
  IPv6 as 32 nibbles, RFC 5782 §2.1, §2.4), all zones at once through the one resolver
  of ``[dns]``; the weights of the matching sites add up to a score; a listed client
  gets ``554 5.7.1`` at connect (or at each RCPT); a DNS failure is not a listing;
- **reverse DNS and HELO sanity** (no PTR, PTR not resolving back, HELO not a FQDN,
  HELO claiming to be us, HELO address literal that is not the client's): each
  off / log / reject, refused at RCPT as Postfix's ``smtpd_delay_reject`` does, so the
  log line shows who was writing to whom;
- **greylisting** (:mod:`postroom.abuse.greylist`) at RCPT.

The lookups start at connect and run while the client says HELO and MAIL, so a
patient client rarely waits for them. Trusted networks, exempt networks (the machine
itself by default), authenticated clients and other listeners are never screened.
"""

from __future__ import annotations

import asyncio
import ipaddress
from typing import TYPE_CHECKING

from .. import log
from ..net.connection import IdleTimeout
from ..resolver import DnsTemporary, Resolver
from ..resolver import shared as shared_resolver
from ..smtp.policy import is_trusted
from ..smtp.replies import Reply, r
from . import greylist as greylist_mod
from .guard import Check, ConnInfo
from .screen_settings import ScreenSettings, settings_for

if TYPE_CHECKING:
    from ..context import ServerContext
    from ..net.connection import Connection
    from ..smtp.transaction import Peer, Rcpt, Transaction

logger = log.get("abuse")

EARLY_TALKER = r(554, "5.5.1", "Protocol error: talking before the greeting", close=True)
# RFC 7372 §3: 5.7.25 "Reverse DNS validation failed".
NO_PTR = r(550, "5.7.25", "Client host rejected: cannot find your reverse DNS name")
NO_FCRDNS = r(550, "5.7.25", "Client host rejected: your reverse DNS name does not resolve to your address")
# Postfix's words; the client's HELO is not echoed (replies never carry client input).
HELO_NOT_FQDN = r(504, "5.5.2", "Helo command rejected: need fully-qualified hostname")
HELO_OWN = r(554, "5.7.1", "Helo command rejected: you are not me")
HELO_LITERAL = r(554, "5.7.1", "Helo command rejected: address literal is not your address")
MAX_PTR_NAMES = 5  # PTR names tried for FCrDNS (a client with more is checked on these)


def reverse_name(ip: str) -> str:
    """The DNSBL query prefix for an address: reversed octets for IPv4, reversed
    nibbles for IPv6 (RFC 5782 §2.1 and §2.4); IPv4-mapped IPv6 is asked as IPv4."""
    addr = ipaddress.ip_address(ip.split("%", 1)[0])
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped:
        addr = addr.ipv4_mapped
    if addr.version == 4:
        return ".".join(reversed(str(addr).split(".")))
    return ".".join(reversed(addr.exploded.replace(":", "")))


def _same_ip(a: str, b: str) -> bool:
    try:
        x, y = ipaddress.ip_address(a.split("%", 1)[0]), ipaddress.ip_address(b.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(x, ipaddress.IPv6Address) and x.ipv4_mapped:
        x = x.ipv4_mapped
    if isinstance(y, ipaddress.IPv6Address) and y.ipv4_mapped:
        y = y.ipv4_mapped
    return x == y


def helo_literal(helo: str) -> str | None:
    """The address of an address-literal HELO (``[192.0.2.1]``, ``[IPv6:2001:db8::1]``,
    RFC 5321 §4.1.3), or a bare IP (which is not a valid HELO, but is sent); else None."""
    text = helo.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
        if text[:5].lower() == "ipv6:":
            text = text[5:]
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


def is_fqdn(helo: str) -> bool:
    """A HELO that is a fully-qualified domain name (RFC 5321 §4.1.4, Postfix's
    reject_non_fqdn_helo_hostname): two or more labels, the last not numeric."""
    name = helo.strip().rstrip(".")
    if not name or len(name) > 253 or "." not in name:
        return False
    labels = name.split(".")
    for label in labels:
        if not 1 <= len(label) <= 63 or label.startswith("-") or label.endswith("-"):
            return False
        if not all(c.isalnum() or c in "-_" for c in label) or not label.isascii():
            return False
    return not labels[-1].isdigit()


class DnsblResult:
    """The combined score of the DNSBL/DNSWL sites for one client."""

    __slots__ = ("blocking", "failed", "score", "zones")

    def __init__(self) -> None:
        self.score = 0
        self.zones: list[str] = []  # zones whose sites matched (positive and negative)
        self.blocking: list[str] = []  # those of them with a positive weight (named in the reply)
        self.failed: list[str] = []  # zones that did not answer


async def dnsbl_score(resolver: Resolver, ip: str, s: ScreenSettings) -> DnsblResult:
    """Every zone asked at once; each site whose filter matches an answer adds its weight."""
    res = DnsblResult()
    zones = sorted({site.zone for site in s.dnsbl_sites})
    prefix = reverse_name(ip)

    async def one(zone: str) -> list[str]:
        try:
            records = await resolver.query(f"{prefix}.{zone}", "A")
        except DnsTemporary as exc:  # not a listing (postscreen also lets it pass)
            res.failed.append(zone)
            logger.warning("dnsbl %s: %s; not counted", zone, exc)
            return []
        return [rec.address for rec in records or []]  # type: ignore[attr-defined]

    answers = dict(zip(zones, await asyncio.gather(*(one(z) for z in zones))))
    for site in s.dnsbl_sites:
        if any(site.matches(a) for a in answers.get(site.zone, ())):
            res.score += site.weight
            if site.zone not in res.zones:
                res.zones.append(site.zone)
            if site.weight > 0 and site.zone not in res.blocking:
                res.blocking.append(site.zone)
    return res


async def rdns_state(resolver: Resolver, ip: str) -> str:
    """``ok`` (a PTR name resolves back to the IP), ``none`` (no PTR), ``mismatch``,
    or ``temp`` (DNS failed: neither is assumed)."""
    addr = ipaddress.ip_address(ip.split("%", 1)[0])
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped:
        addr = addr.ipv4_mapped
    try:
        ptrs = await resolver.query(addr.reverse_pointer, "PTR")
        names = [p.target.to_text(omit_final_dot=True) for p in ptrs or []]  # type: ignore[attr-defined]
        if not names:
            return "none"
        temp = False
        for name in names[:MAX_PTR_NAMES]:
            try:
                found = await resolver.addresses(name)
            except DnsTemporary:
                temp = True
                continue
            if found and any(_same_ip(f, str(addr)) for f in found):
                return "ok"
        return "temp" if temp else "mismatch"
    except DnsTemporary as exc:
        logger.warning("rdns %s: %s; not counted", ip, exc)
        return "temp"


class Screen(Check):
    name = "screen"

    def __init__(self, ctx: ServerContext, info: ConnInfo, s: ScreenSettings) -> None:
        self.ctx = ctx
        self.info = info
        self.s = s
        self.local_ip = ""
        self._dnsbl: asyncio.Task[DnsblResult] | None = None
        self._rdns: asyncio.Task[str] | None = None
        self._logged: set[str] = set()
        self._helo_seen: tuple[str, Reply | None] | None = None

    # -- connect ------------------------------------------------------------
    async def connect(self, conn: Connection) -> Reply | None:
        s, ip = self.s, self.info.ip
        self.local_ip = conn.local_ip
        resolver = shared_resolver(self.ctx.config) if s.dnsbl_sites or s.no_ptr != "off" or s.fcrdns != "off" \
            else None
        if resolver is not None and s.dnsbl_sites:
            self._dnsbl = asyncio.ensure_future(dnsbl_score(resolver, ip, s))
        if resolver is not None and (s.no_ptr != "off" or s.fcrdns != "off"):
            self._rdns = asyncio.ensure_future(rdns_state(resolver, ip))
            if "reject" not in (s.no_ptr, s.fcrdns):
                # Only logged: nobody waits for it, the finding is logged when it is known.
                self._rdns.add_done_callback(self._rdns_done)
        if (s.early_talker != "off" and await self._talked_early(conn)
                and self._finding("early_talker", s.early_talker, "talked before the greeting")):
            return EARLY_TALKER
        if self._dnsbl is not None and s.dnsbl_reject_at == "connect" and s.dnsbl_action == "reject":
            return await self._dnsbl_verdict(close=True)
        return None

    async def _talked_early(self, conn: Connection) -> bool:
        if conn.has_buffered_input():
            return True
        if self.s.greet_pause <= 0:
            return False
        try:
            data = await conn.read_some(self.s.greet_pause)
        except IdleTimeout:  # silence for the whole pause: a patient client
            return False
        conn.unread(data)  # never consumed: the session may still read it ("log" mode)
        return True

    async def _dnsbl_verdict(self, close: bool) -> Reply | None:
        res = await self._dnsbl_result()
        if res is None or res.score < self.s.dnsbl_threshold:
            return None
        zone = res.blocking[0] if res.blocking else "a DNSBL"
        if self._finding("dnsbl", self.s.dnsbl_action, f"listed score={res.score} zones={','.join(res.zones)}"):
            return r(554, "5.7.1", f"Service unavailable; client [{self.info.ip}] blocked using {zone}",
                     close=close)
        return None

    async def _dnsbl_result(self) -> DnsblResult | None:
        if self._dnsbl is None:
            return None
        try:
            return await self._dnsbl
        except Exception:  # a bug in a lookup must not cost the client its mail
            logger.exception("%s dnsbl lookups failed; not counted", self.info.tag)
            self._dnsbl = None
            return None

    # -- RCPT ---------------------------------------------------------------
    async def rcpt(self, peer: Peer, txn: Transaction, rcpt: Rcpt) -> Reply | None:
        if peer.login or peer.trusted:
            return None
        s = self.s
        res = await self._dnsbl_result()
        if (res is not None and (s.dnsbl_reject_at == "rcpt" or s.dnsbl_action == "log")
                and (reply := await self._dnsbl_verdict(close=False))):
            return reply
        score = res.score if res is not None else 0
        if s.dnsbl_whitelist_threshold < 0 and score <= s.dnsbl_whitelist_threshold:
            return None  # whitelisted by DNSWL: no other test (postscreen_dnsbl_whitelist_threshold)
        if (reply := await self._rdns_verdict()) is not None:
            return reply
        if (reply := await self._helo_verdict(peer.helo)) is not None:
            return reply
        if s.greylist.enabled and score >= 0 and not is_trusted(self.info.ip, s.greylist.exempt):
            return await self._greylist(txn, rcpt)
        return None

    async def _rdns_verdict(self) -> Reply | None:
        if self._rdns is None or "reject" not in (self.s.no_ptr, self.s.fcrdns):
            return None
        try:
            state = await self._rdns
        except Exception:  # a bug in a lookup must not cost the client its mail
            logger.exception("%s rdns lookups failed; not counted", self.info.tag)
            self._rdns = None
            return None
        return self._rdns_judged(state)

    def _rdns_done(self, task: asyncio.Task[str]) -> None:
        if not task.cancelled() and task.exception() is None:
            self._rdns_judged(task.result())

    def _rdns_judged(self, state: str) -> Reply | None:
        if state == "none" and self._finding("no_ptr", self.s.no_ptr, "no reverse DNS"):
            return NO_PTR
        if state == "mismatch" and self._finding("fcrdns", self.s.fcrdns, "reverse DNS does not resolve back"):
            return NO_FCRDNS
        return None

    async def _helo_verdict(self, helo: str) -> Reply | None:
        if self._helo_seen is not None and self._helo_seen[0] == helo:
            return self._helo_seen[1]
        reply = await self._helo_check(helo)
        self._helo_seen = (helo, reply)
        return reply

    async def _helo_check(self, helo: str) -> Reply | None:
        s = self.s
        literal = helo_literal(helo)
        bracketed = helo.strip().startswith("[")
        if s.helo_own != "off":
            ours = bool(literal is not None and self.local_ip and _same_ip(literal, self.local_ip))
            if not ours and literal is None and helo:
                name = helo.strip().rstrip(".").lower()
                ours = name == self.ctx.config.hostname.lower() or await self.ctx.is_local_domain(name)
            if ours and self._finding("helo_own", s.helo_own, "HELO claims to be us"):
                return HELO_OWN
        if (s.helo_not_fqdn != "off" and not (bracketed and literal is not None) and not is_fqdn(helo)
                and self._finding("helo_not_fqdn", s.helo_not_fqdn, "HELO is not a fully-qualified name")):
            return HELO_NOT_FQDN
        if (s.helo_literal != "off" and literal is not None and not _same_ip(literal, self.info.ip)
                and self._finding("helo_literal", s.helo_literal, "HELO address literal is not the client's")):
            return HELO_LITERAL
        return None

    async def _greylist(self, txn: Transaction, rcpt: Rcpt) -> Reply | None:
        g = greylist_mod.shared(self.ctx)
        try:
            verdict = await g.check(self.info.ip, txn.sender.key, rcpt.path.key, self.s.greylist)
        except Exception:  # a broken state file must not hold everybody's mail
            logger.exception("%s greylist state unavailable; not greylisting", self.info.tag)
            return None
        if verdict is None:
            return None  # the client is whitelisted
        if verdict.accept:
            if verdict.newly_passed:
                logger.info("%s greylist passed from=<%s> to=<%s>", self.info.tag, txn.sender.key, rcpt.path.key)
            return None
        logger.info("%s greylisted from=<%s> to=<%s> wait=%ds", self.info.tag, txn.sender.key,
                    rcpt.path.key, int(verdict.wait + 0.999))
        return r(451, "4.7.1", f"Greylisted, please try again in {int(verdict.wait + 0.999)} seconds")

    # -- helpers ------------------------------------------------------------
    def _finding(self, key: str, action: str, what: str) -> bool:
        """Log a finding once per connection; True when it refuses."""
        if key not in self._logged:
            self._logged.add(key)
            logger.info("%s screen %s: %s%s", self.info.tag, key, what, "" if action == "reject" else " (logged only)")
        return action == "reject"

    async def close(self) -> None:
        for task in (self._dnsbl, self._rdns):
            if task is not None and not task.done():
                task.cancel()
            elif task is not None and not task.cancelled():
                task.exception()  # retrieved: no "exception never retrieved" at exit


def for_connection(ctx: ServerContext, info: ConnInfo) -> Check | None:
    """The check for strangers on a screened listener; None (no cost) otherwise."""
    s = settings_for(ctx)
    if not info.ip or info.trusted or not s.active or not s.screens(info.listener):
        return None
    if is_trusted(info.ip, s.exempt):
        return None
    return Screen(ctx, info, s)
