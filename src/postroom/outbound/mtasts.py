"""MTA-STS for outbound delivery (RFC 8461 §3.3, §4, §5): discover, fetch, cache, decide.

:class:`PolicySource` answers "which policy applies to mail for DOMAIN now?" for the
runner (:mod:`postroom.outbound.delivery`), which then keeps only the MX hosts the
policy names and requires verified TLS to them (``enforce``), or only notes the
failures (``testing``).

Discovery follows §5.1: the ``_mta-sts`` TXT record is looked up for every delivery
attempt (the shared resolver caches it for its TTL); a policy is fetched when there is
no unexpired cached policy, when the record's ``id`` differs from the cached one, or
when the cached copy is older than :data:`REFRESH_AFTER` (so a policy in use never
expires, §5.1 "proactively refresh"). A failed fetch or a missing record never drops
an unexpired cached policy: an attacker who can block DNS or HTTPS must not be able to
turn enforcement off (§5.1, §10.2). Only without a live or cached policy is mail
delivered as if the domain had none.

The cache is one JSON file per domain in ``DATA_DIR/mta-sts/``, written atomically,
so policies survive restarts (§5.1 expects that). The HTTPS fetch uses aiohttp's
client: PKIX validation of ``mta-sts.DOMAIN`` (the system trust store, or
``[mta_sts] ca_file``), no redirects, no proxies from the environment, no HTTP
caching, a timeout, and a 64 KiB body limit (§3.3). Host names are resolved through
the same resolver as the MX lookups.

Whoever controls a recipient domain's DNS chooses where ``mta-sts.DOMAIN`` (and an
``https:`` TLS-RPT rua) points, and anyone can make us look it up by sending mail there.
So these HTTPS requests never go to loopback, private, link-local or other non-global
addresses (no request forgery against services behind the firewall, e.g. a cloud
metadata endpoint); ``allow_private`` turns that off for tests on loopback only.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import re
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import aiohttp.abc
import yarl

from ..resolver import DnsTemporary, Resolver
from . import tlsrpt
from .stspolicy import (
    POLICY_SIZE_LIMIT,
    WELL_KNOWN_PATH,
    MtaStsSettings,
    Policy,
    PolicyError,
    is_sts_record,
    parse_policy,
    parse_sts_record,
)

log = logging.getLogger("postroom.outbound.mtasts")

REFRESH_AFTER = 86400.0  # re-fetch a policy in use once a day even when its id is unchanged
FAILED_FETCH_BACKOFF = 300.0  # after a failed fetch, do not try that domain again for this long
_SAFE_NAME = re.compile(r"^[a-z0-9.-]{1,253}$")


def verified_context(ca_file: Path | None = None) -> ssl.SSLContext:
    """PKIX validation with host name check (RFC 8461 §4.2), TLS 1.2 or later."""
    ctx = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


@dataclass(frozen=True, slots=True)
class CachedPolicy:
    domain: str
    id: str
    body: str
    policy: Policy
    fetched: float
    expires: float

    def as_json(self) -> dict[str, Any]:
        return {"domain": self.domain, "id": self.id, "body": self.body, "fetched": self.fetched,
                "expires": self.expires}


class FetchError(Exception):
    """A policy that could not be had; ``result_type`` is its RFC 8460 §4.3.2.2 type."""

    def __init__(self, message: str, result_type: str) -> None:
        super().__init__(message)
        self.result_type = result_type


class PolicyCache:
    """Policies by domain, in memory and in ``root/DOMAIN.json`` (atomic writes)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.memory: dict[str, CachedPolicy | None] = {}

    def _path(self, domain: str) -> Path | None:
        return self.root / f"{domain}.json" if _SAFE_NAME.match(domain) and ".." not in domain else None

    def get(self, domain: str) -> CachedPolicy | None:
        if domain in self.memory:
            return self.memory[domain]
        found = self._load(domain)
        self.memory[domain] = found
        return found

    def _load(self, domain: str) -> CachedPolicy | None:
        path = self._path(domain)
        if path is None:
            return None
        try:
            data = json.loads(path.read_text())
            return CachedPolicy(domain, str(data["id"]), str(data["body"]), parse_policy(str(data["body"])),
                                float(data["fetched"]), float(data["expires"]))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:  # PolicyError is a ValueError
            log.warning("%s: unreadable cached MTA-STS policy (%s); ignored", path, exc)
            return None

    def put(self, entry: CachedPolicy) -> None:
        self.memory[entry.domain] = entry
        path = self._path(entry.domain)
        if path is None:
            return
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            tlsrpt.write_atomic(path, json.dumps(entry.as_json()).encode())
        except OSError as exc:  # the policy still applies from memory until the restart
            log.warning("cannot store the MTA-STS policy of %s: %s", entry.domain, exc)


def is_public(address: str) -> bool:
    """True for a global unicast address: the only kind a policy or report URL may reach."""
    try:
        ip = ipaddress.ip_address(address.split("%")[0])
    except ValueError:
        return False
    return ip.is_global and not ip.is_multicast


class _ResolverBridge(aiohttp.abc.AbstractResolver):
    """aiohttp asks our resolver, so the policy host resolves like the MX hosts do; the
    addresses it returns are the ones connected to, so the public-address check here
    cannot be undone by a second DNS answer (no rebinding window)."""

    def __init__(self, dns: Resolver, allow_private: bool = False) -> None:
        self.dns = dns
        self.allow_private = allow_private

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
                      ) -> list[aiohttp.abc.ResolveResult]:
        try:
            addrs = await self.dns.addresses(host)
        except DnsTemporary as exc:
            raise OSError(str(exc)) from None
        if not addrs:
            raise OSError(f"{host} has no address")
        usable = [a for a in addrs if self.allow_private or is_public(a)]
        if not usable:
            raise OSError(f"{host} resolves only to non-public addresses; refused")
        return [{"hostname": host, "host": a, "port": port,
                 "family": socket.AF_INET6 if ":" in a else socket.AF_INET, "proto": 0,
                 "flags": socket.AI_NUMERICHOST} for a in usable]

    async def close(self) -> None:
        return None


@dataclass(frozen=True, slots=True)
class Lookup:
    """The policy to apply (None: deliver as without MTA-STS) and a fetch failure to report."""

    cached: CachedPolicy | None
    failure: str = ""  # RFC 8460 result type of a failed fetch, "" if none

    @property
    def mode(self) -> str:
        return self.cached.policy.mode if self.cached else "none"


class PolicySource:
    """Discovery and cache for the runner; ``https_port`` is 443 except in tests."""

    def __init__(self, dns: Resolver, settings: MtaStsSettings, cache_dir: Path,
                 clock: Callable[[], float] = time.time, https_port: int = 443) -> None:
        self.dns = dns
        self.settings = settings
        self.cache = PolicyCache(cache_dir)
        self.clock = clock
        self.https_port = https_port
        self.ssl_context = verified_context(settings.ca_file)
        self.locks: dict[str, asyncio.Lock] = {}
        self.failed: dict[str, float] = {}  # domain → no new fetch before this time
        self.allow_private = False  # test hook (with https_port): policy hosts on loopback

    async def lookup(self, domain: str) -> Lookup:
        domain = domain.lower().rstrip(".")
        if not _SAFE_NAME.match(domain):  # address literals and the like: no policy possible
            return Lookup(None)
        lock = self.locks.setdefault(domain, asyncio.Lock())
        async with lock:  # one fetch per domain at a time; the others wait for its result
            return await self._lookup(domain)

    async def _lookup(self, domain: str) -> Lookup:
        now = self.clock()
        cached = self.cache.get(domain)
        if cached is not None and cached.expires <= now:
            cached = None  # §5.1: an expired policy is no policy
        try:
            record_id = await self._record_id(domain)
        except DnsTemporary:
            return Lookup(cached)
        if record_id is None:
            return Lookup(cached)  # §5.1: no live record, but an unexpired cached policy still applies
        if cached is not None and cached.id == record_id and now - cached.fetched < REFRESH_AFTER:
            return Lookup(cached)
        if self.failed.get(domain, 0.0) > now:
            return Lookup(cached, tlsrpt.STS_POLICY_FETCH_ERROR)
        try:
            body, policy = await self.fetch(domain)
        except FetchError as exc:
            self.failed[domain] = now + FAILED_FETCH_BACKOFF
            log.warning("MTA-STS policy of %s: %s%s", domain, exc,
                        " (keeping the cached policy)" if cached else "")
            return Lookup(cached, exc.result_type)
        self.failed.pop(domain, None)
        entry = CachedPolicy(domain, record_id, body, policy, now, now + policy.max_age)
        self.cache.put(entry)
        if cached is None or cached.body != body:
            log.info("MTA-STS policy of %s: mode %s, mx %s, max_age %d (id %s)", domain, policy.mode,
                     ",".join(policy.mx) or "-", policy.max_age, record_id)
        return Lookup(entry)

    async def _record_id(self, domain: str) -> str | None:
        """The id of the one valid ``_mta-sts`` record, or None (§3.1: none, several, or invalid)."""
        texts = await self.dns.txt(f"_mta-sts.{domain}")
        records = [t.decode("utf-8", "replace") for t in texts or []]
        sts = [t for t in records if is_sts_record(t)]
        if len(sts) != 1:
            return None
        try:
            return parse_sts_record(sts[0])
        except PolicyError as exc:
            log.info("MTA-STS record of %s ignored: %s", domain, exc)
            return None

    async def fetch(self, domain: str) -> tuple[str, Policy]:
        """GET the policy (§3.3); :class:`FetchError` with the TLS-RPT type on any failure."""
        host = f"mta-sts.{domain}"
        port = "" if self.https_port == 443 else f":{self.https_port}"
        url = f"https://{host}{port}{WELL_KNOWN_PATH}"
        timeout = aiohttp.ClientTimeout(total=self.settings.fetch_timeout)
        connector = aiohttp.TCPConnector(ssl=self.ssl_context, resolver=_ResolverBridge(self.dns, self.allow_private),
                                         force_close=True, use_dns_cache=False)
        try:
            async with aiohttp.ClientSession(connector=connector, timeout=timeout, trust_env=False,
                                             auto_decompress=False) as session, \
                    session.get(url, allow_redirects=False,
                                headers={"Cache-Control": "no-cache", "Accept": "text/plain"}) as resp:
                if resp.status != 200:  # §3.3: only 200, redirects are not followed
                    raise FetchError(f"{url} answered HTTP {resp.status}", tlsrpt.STS_POLICY_FETCH_ERROR)
                if resp.content_type != "text/plain":  # §3.2: guards against user-uploaded files
                    raise FetchError(f"{url} is {resp.content_type}, not text/plain", tlsrpt.STS_POLICY_INVALID)
                body = await _read_limited(resp, POLICY_SIZE_LIMIT)
        except FetchError:
            raise
        except aiohttp.ClientConnectorCertificateError as exc:
            raise FetchError(f"{url}: certificate not valid: {exc.certificate_error}",
                             tlsrpt.STS_WEBPKI_INVALID) from None
        except aiohttp.ClientSSLError as exc:
            raise FetchError(f"{url}: TLS failed: {exc}", tlsrpt.STS_WEBPKI_INVALID) from None
        except (TimeoutError, aiohttp.ClientError, OSError, ValueError) as exc:
            raise FetchError(f"{url}: {exc.__class__.__name__}: {exc}", tlsrpt.STS_POLICY_FETCH_ERROR) from None
        if body is None:
            raise FetchError(f"{url}: larger than {POLICY_SIZE_LIMIT} bytes", tlsrpt.STS_POLICY_INVALID)
        try:
            return body.decode("ascii"), parse_policy(body)
        except (PolicyError, UnicodeDecodeError) as exc:
            raise FetchError(f"{url}: invalid policy: {exc}", tlsrpt.STS_POLICY_INVALID) from None


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return False
    return True


async def _read_limited(resp: aiohttp.ClientResponse, limit: int) -> bytes | None:
    """The body, or None as soon as it passes ``limit`` bytes (nothing more is read)."""
    buf = bytearray()
    while True:
        chunk = await resp.content.read(65536)
        if not chunk:
            return bytes(buf)
        buf += chunk
        if len(buf) > limit:
            return None


async def post_report(url: str, gz: bytes, ssl_context: ssl.SSLContext, dns: Resolver, timeout: float = 60.0,
                      allow_private: bool = False) -> None:
    """RFC 8460 §3: a TLS report POSTed to an ``https:`` rua (gzip'd JSON); raises unless 2xx."""
    host = (yarl.URL(url).host or "").strip("[]")
    if not allow_private and _is_address(host) and not is_public(host):
        raise OSError(f"{url}: not a public address; refused")  # aiohttp skips the resolver for literals
    connector = aiohttp.TCPConnector(ssl=ssl_context, resolver=_ResolverBridge(dns, allow_private),
                                     force_close=True, use_dns_cache=False)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=timeout),
                                     trust_env=False) as session, \
            session.post(url, data=gz, allow_redirects=False,
                         headers={"Content-Type": "application/tlsrpt+gzip"}) as resp:
        if not 200 <= resp.status < 300:
            raise OSError(f"{url} answered HTTP {resp.status}")

