"""SPF (RFC 7208) for inbound mail: pyspf's ``check_host()``, its DNS answered by our resolver.

pyspf does the evaluation (mechanisms, macros, ``redirect=``, the processing limits);
this module decides *what* is checked and makes every lookup go through
:class:`~postroom.resolver.Resolver` (one cache, ``[dns]`` settings, one deadline per
message) instead of the system resolver pyspf would otherwise use.

Decisions:

* Both identities are checked, at the same time, each in its own worker thread: the
  MAIL FROM identity (§2.4) and the HELO identity (§2.3, a SHOULD; it is also what
  a bounce's SPF rests on). Both share one deadline, ``timeout`` from now.
* Null reverse-path (``MAIL FROM:<>``): §2.4 says to check ``postmaster@<HELO>``. That
  *is* the HELO check, so it runs once and the same result, with scope ``"helo"``, is
  returned as both the MAIL FROM and the HELO result.
* The HELO result is ``None`` when the HELO argument is no domain name at all (an
  address literal, a bare IP, empty, or malformed). A well-formed single-label name
  (``localhost``) gets ``none`` without any lookup: §4.3, "not a multi-label domain".
  A MAIL FROM domain that is malformed or an address literal also gets ``none`` (§4.3).
* The domain is taken after the *last* ``@`` (a quoted local part may hold one; pyspf
  splits at the first); an empty local part becomes ``postmaster`` (§4.3). Domains are
  reported lower-case, without a final dot, IDNs as A-labels.
* pyspf runs in strict (RFC) mode, with its module limits pinned to RFC 7208 §4.6.4:
  more than 10 DNS-querying terms, more than 10 MX names, or more than 2 void
  lookups are ``permerror``. ``strict=2`` ("harsh") would add non-RFC "ambiguous"
  results; lax mode would keep going up to 40 lookups.
* Any DNS failure (SERVFAIL, timeout, the deadline passed) is ``temperror``, never
  "no record" (§2.6.6). A name that cannot exist in DNS (bad IDN, label too long) is
  answered as "no data" without asking anyone.
* Whatever pyspf raises on a hostile record is caught: ``permerror``, logged.
* ``reason`` is our own short text (it goes into an Authentication-Results comment and
  a log line): the verdict plus the mechanism that matched, or pyspf's error message.
  It is printable ASCII, one line, at most :data:`REASON_MAX` characters, with
  parentheses turned into brackets and backslashes into slashes, so it can sit inside
  an RFC 5322 comment as it is. The domain owner's ``exp=`` text is *not* used: it is
  for the SMTP reply to the sender (§6.2), and it is attacker-written text.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
import threading
import time
from functools import lru_cache
from typing import Any

import dns.exception
import dns.name
import spf as pyspf  # pyspf 2.0.x: one module, no type hints

from ..resolver import DnsTemporary, Resolver
from .dnsbridge import SyncDns, run_blocking
from .model import SPF_RESULTS, SpfResult

log = logging.getLogger("postroom.mailauth")

REASON_MAX = 200

# RFC 7208 §4.6.4, pinned here in case anything else in the process changed pyspf's.
pyspf.MAX_LOOKUP = 10  # DNS-querying terms: include a mx ptr exists redirect
pyspf.MAX_MX = 10  # MX names looked up by one mx term
pyspf.MAX_PTR = 10  # PTR names looked up by one ptr term (the rest are ignored)
pyspf.MAX_VOID_LOOKUPS = 2  # lookups answering NXDOMAIN or no data
pyspf.DELEGATE = None  # no local fallback record: a domain without SPF gets "none"

# -- pyspf's DNS, answered by the SyncDns of the check running in this thread -------------

_current = threading.local()


def _value(qtype: str, rdata: Any) -> object:
    """One answer in the shape pyspf's ``DNSLookup_dnspython`` gives it."""
    if qtype in ("A", "AAAA"):
        return rdata.address  # text form; pyspf feeds it to ipaddress
    if qtype == "MX":
        # The null MX (RFC 7505) target "." becomes "", which pyspf looks up as nothing.
        return (rdata.preference, rdata.exchange.to_text(omit_final_dot=True).rstrip("."))
    if qtype == "PTR":
        return rdata.target.to_text(omit_final_dot=True)
    return tuple(rdata.strings)  # TXT, SPF: the strings of one record, pyspf joins them (§3.3)


def _lookup(name: str, qtype: str, strict: object = True, timeout: float = 0) -> list[tuple[tuple[str, str], object]]:
    """Replaces ``spf.DNSLookup``: ``[((name, qtype), value), ...]``, ``[]`` for none.

    ``timeout`` is ignored: the bridge's deadline covers the whole check. Called with no
    bridge (pyspf used outside :func:`check_spf`), it fails rather than fall back to the
    system resolver.
    """
    bridge: SyncDns | None = getattr(_current, "dns", None)
    if bridge is None:
        raise pyspf.TempError("DNS: no resolver for this thread (pyspf called outside check_spf)")
    try:
        qname = dns.name.from_text(name).to_text(omit_final_dot=True)
    except (dns.exception.DNSException, ValueError, UnicodeError):
        return []  # cannot exist in DNS: as "no data" (counts as a void lookup, §4.6.4)
    try:
        records = bridge.query(qname, qtype)
    except DnsTemporary as exc:
        raise pyspf.TempError(str(exc)) from None
    return [((name, qtype), _value(qtype, r)) for r in records or []]


pyspf.DNSLookup = _lookup  # once, for the process: pyspf never uses the system resolver

# -- identities ---------------------------------------------------------------------------

_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")


@lru_cache(maxsize=4096)  # a pure function of the text: the same HELO and sender domains come again
def _domain(text: str) -> str | None:
    """``text`` as a lower-case A-label domain name, or ``None`` when it is not one.

    Address literals and bare IPs are not domains (§2.3, §4.3). Underscores are allowed:
    HELO names and SPF targets carry them in practice.
    """
    text = text.strip().rstrip(".").lower()
    if not text or text.startswith("["):
        return None
    try:
        ipaddress.ip_address(text)
        return None
    except ValueError:
        pass
    if not text.isascii():
        try:
            text = text.encode("idna").decode("ascii")
        except UnicodeError:
            return None
    if len(text) > 253 or not all(_LABEL.fullmatch(label) for label in text.split(".")):
        return None
    return text


@lru_cache(maxsize=4096)
def _client(ip: str) -> str | None:
    """The client address in its normal text form (an IPv6 zone id is no part of it), or
    ``None`` when ``ip`` is not an IP address. Cached: ``ipaddress`` costs more than the
    rest of a check answered from :func:`kept`."""
    try:
        return str(ipaddress.ip_address(ip.split("%", 1)[0]))
    except ValueError:
        return None


def _split(mail_from: str) -> tuple[str, str]:
    """(local part, domain text) at the last ``@``; no ``@`` at all: the whole is the domain."""
    local, at, domain = mail_from.rpartition("@")
    if not at:
        return "postmaster", mail_from
    return local or "postmaster", domain  # §4.3: an empty local part is "postmaster"


def clean(text: str, limit: int = REASON_MAX) -> str:
    """Printable ASCII on one line, safe inside a comment, at most ``limit`` characters."""
    if not (text.isascii() and text.isprintable()):  # (printable ASCII is " " to "~")
        text = "".join(c if " " <= c <= "~" else ("?" if ord(c) > 127 else " ") for c in text)
    text = " ".join(text.replace("(", "[").replace(")", "]").replace("\\", "/").split())
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."


# -- the check ----------------------------------------------------------------------------

_VERDICTS = {
    "pass": "{d} permits {ip}",
    "fail": "{d} does not permit {ip}",
    "softfail": "{d} discourages use of {ip}",
    "neutral": "{d} neither permits nor denies {ip}",
}


def _reason(result: str, domain: str, ip: str, mechanism: str | None, explanation: str) -> str:
    if result in _VERDICTS:
        verdict = _VERDICTS[result].format(d=domain, ip=ip)
        return clean(f"{verdict} via {mechanism}" if mechanism else f"{verdict}: no mechanism matched")
    if result == "none":
        return clean(f"no SPF record for {domain}")
    for prefix in ("SPF Temporary Error: ", "SPF Permanent Error: "):
        explanation = explanation.removeprefix(prefix)
    return clean(f"{domain}: {explanation}")


def _run(bridge: SyncDns, ip: str, local: str, domain: str, helo: str) -> tuple[str, str]:
    """pyspf's check_host(ip, domain, local@domain), in a worker thread: (result, reason)."""
    _current.dns = bridge
    try:
        q = pyspf.query(i=ip, s=f"{local}@{domain}", h=helo, strict=True,
                        querytime=max(bridge.left(), 0.001))
        q.l, q.o, q.d = local, domain, domain  # our split (last "@"), not pyspf's (first)
        result, _code, explanation = q.check()
        mechanism = q.mechanism if isinstance(q.mechanism, str) else None
    except Exception:  # a pyspf bug tripped by a hostile record must not lose the message
        log.warning("SPF check of %s from %s: pyspf failed", domain, ip, exc_info=True)
        return "permerror", clean(f"{domain}: record could not be evaluated")
    finally:
        _current.dns = None
    if result not in SPF_RESULTS:  # "ambiguous" and friends exist only in other modes
        return "permerror", clean(f"{domain}: unexpected result {result}")
    return result, _reason(result, domain, ip, mechanism, str(explanation))


# -- results kept as long as the answers they rest on ----------------------------------------
# check_host() is a function of (ip, sender, helo) and DNS answers alone (RFC 7208 §4), so a
# result may be reused for as long as every answer it used would be served from the
# resolver's cache anyway: until the shortest TTL among them (SyncDns.expires). A sender
# that sends a lot (and so costs the most) is answered from here; a result that used a
# negative answer without an SOA, or had a temporary error, is not kept.
CACHE_SIZE = 10_000
_Key = tuple[str, str, str, str, str]  # (ip, local, domain, helo, scope)


def _cached(resolver: Resolver, key: _Key) -> SpfResult | None:
    with resolver.derived_lock:
        results = resolver.derived.setdefault("spf", {})
        hit = results.get(key)
        if hit is None:
            return None
        if hit[0] <= time.time():
            del results[key]
            return None
        return hit[1]  # type: ignore[no-any-return]


def _keep(resolver: Resolver, key: _Key, expires: float, result: SpfResult) -> None:
    if result.result == "temperror" or not 1 <= expires - time.time() < 1e9:  # inf: no answer used
        return
    with resolver.derived_lock:
        results = resolver.derived.setdefault("spf", {})
        if len(results) >= CACHE_SIZE:  # the oldest entries go first
            for old in list(results)[: CACHE_SIZE // 10]:
                del results[old]
        results[key] = (expires, result)


async def _check(resolver: Resolver, ip: str, local: str, domain: str, helo: str, scope: str,
                 timeout: float) -> SpfResult:
    if "." not in domain:  # §4.3: a single label cannot carry SPF; nothing to ask
        return SpfResult("none", domain, scope, f"{domain} is not a multi-label domain name")
    key = (ip, local, domain, helo, scope)
    hit = _cached(resolver, key)
    if hit is not None:
        return hit
    bridge = SyncDns(resolver, timeout)
    started = time.monotonic()
    try:
        # The bridge stops every lookup at the deadline; this only guards against a
        # worker that never gets a thread (pool exhausted).
        result, reason = await asyncio.wait_for(run_blocking(_run, bridge, ip, local, domain, helo),
                                                max(timeout, 0) + 0.5)
    except asyncio.TimeoutError:
        result, reason = "temperror", clean(f"{domain}: SPF check took too long")
    log.debug("spf %s %s from %s: %s (%s) in %d lookups, %.3fs", scope, domain, ip, result, reason,
              bridge.queries, time.monotonic() - started)
    out = SpfResult(result, domain, scope, reason)
    _keep(resolver, key, bridge.expires, out)
    return out


async def check_spf(resolver: Resolver, ip: str, mail_from: str, helo: str,
                    timeout: float) -> tuple[SpfResult, SpfResult | None]:
    """(MAIL FROM result, HELO result) for a client at ``ip``; see the module docstring.

    ``mail_from`` is the reverse-path without brackets, ``""`` for the null one (§2.4:
    then the first result is the HELO check, scope ``"helo"``). The HELO result is
    ``None`` when ``helo`` is not a domain name. Never raises for anything a client or
    a DNS record can send; returns within ``timeout`` (plus a little scheduling).
    """
    helo = helo.strip()
    helo_domain = _domain(helo)
    local, domain_text = _split(mail_from)
    domain = _domain(domain_text) if mail_from else helo_domain
    scope = "mailfrom" if mail_from else "helo"
    client = _client(ip)
    if client is None:  # the caller's bug, not the sender's: say so rather than raise
        shown = domain or clean(domain_text if mail_from else helo, 253)
        return SpfResult("permerror", shown, scope, clean(f"client address {ip!r} is not an IP address")), None

    if domain is None:  # §4.3: malformed, an address literal, or (null sender) no HELO domain
        shown = clean((domain_text if mail_from else helo).strip().rstrip(".").lower(), 253)
        what = f"{shown or '[empty]'} is not a domain name"
        first = SpfResult("none", shown, scope, what if mail_from else f"null sender and {what}")
        if not mail_from or helo_domain is None:
            return first, None
        return first, await _check(resolver, client, "postmaster", helo_domain, helo, "helo", timeout)

    if not mail_from:  # §2.4: postmaster@<HELO> is the MAIL FROM identity, i.e. the HELO check
        result = await _check(resolver, client, "postmaster", domain, helo, "helo", timeout)
        return result, result
    if helo_domain is None:
        return await _check(resolver, client, local, domain, helo, "mailfrom", timeout), None
    both = _both_kept(resolver, client, local, domain, helo, helo_domain)
    if both is not None:  # both kept from an earlier message: no tasks
        return both
    mailfrom_check = _check(resolver, client, local, domain, helo, "mailfrom", timeout)
    mailfrom_result, helo_result = await asyncio.gather(
        mailfrom_check, _check(resolver, client, "postmaster", helo_domain, helo, "helo", timeout))
    return mailfrom_result, helo_result


def _both_kept(resolver: Resolver, client: str, local: str, domain: str, helo: str,
               helo_domain: str) -> tuple[SpfResult, SpfResult] | None:
    if "." not in domain or "." not in helo_domain:
        return None
    mailfrom_hit = _cached(resolver, (client, local, domain, helo, "mailfrom"))
    if mailfrom_hit is None:
        return None
    helo_hit = _cached(resolver, (client, "postmaster", helo_domain, helo, "helo"))
    return None if helo_hit is None else (mailfrom_hit, helo_hit)


def kept(resolver: Resolver, ip: str, mail_from: str, helo: str) -> tuple[SpfResult, SpfResult] | None:
    """What :func:`check_spf` would return, when both its results (MAIL FROM and HELO) are
    kept from an earlier message and so need no lookup and no task: the common case of a
    sender that sends a lot. ``None`` otherwise (then call :func:`check_spf`)."""
    if not mail_from:
        return None  # the HELO check is the MAIL FROM one: check_spf asks it once
    client = _client(ip)
    helo = helo.strip()
    helo_domain = _domain(helo)
    local, domain_text = _split(mail_from)
    domain = _domain(domain_text)
    if client is None or domain is None or helo_domain is None:
        return None
    return _both_kept(resolver, client, local, domain, helo, helo_domain)
