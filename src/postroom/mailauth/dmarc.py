"""DMARC (RFC 7489) for inbound mail: which policy the From domain asks for, and whether
the message's SPF or DKIM results speak for that domain.

Pure evaluation around a few TXT lookups through :class:`~postroom.resolver.Resolver`;
SPF and DKIM were checked before (their results come in). Decisions, where the RFC
leaves room:

* **From.** The RFC5322.From domains come from our own split of the header block (the
  same line rules as :mod:`postroom.mime.headers`) and ``email.utils.getaddresses``.
  No From field, a From without a usable domain, or several different domains (in one
  field or several) is ``permerror`` (§6.6.1: "reject or otherwise handle"). So that a
  second From cannot switch a ``p=reject`` domain off, each of those domains (the first
  :data:`MAX_FROM_DOMAINS`) is still checked and the permerror carries the strictest
  policy among the checks that fail (§6.6.1, "apply the most strict policy selected
  among the checks that fail"); :mod:`.policy` acts on it as on a fail.
* **Discovery** is §6.6.3 to the letter: ``_dmarc.<From domain>``; only when nothing
  there starts with ``v=DMARC1``, ``_dmarc.<organizational domain>``; two or more
  records is "no policy"; a record without a valid ``p=`` (or with an invalid ``sp=``)
  counts as ``p=none`` when it has a valid ``rua=``, otherwise as no record.
* **Organizational domain** (§3.2): the public suffix list of the ``publicsuffixlist``
  package (its private section included: ``user.github.io`` is its own organization),
  built once per process on first use, never fetched.
* **SPF identity**: the ``spf`` result passed in is the MAIL FROM identity's. For a null
  reverse-path that *is* the check of ``postmaster@<HELO>`` (RFC 7208 §2.4, which
  RFC 7489 §4.1 points to), and :mod:`.spf` reports it with scope ``"helo"``; it counts
  the same way.
* **pct** (§6.6.4, §6.3): a message is in the sample with probability pct/100, drawn
  with :mod:`secrets`, so a sender cannot craft a message that always falls outside it
  (a hash of the message would let them). Out of the sample the next lower policy
  applies (reject → quarantine → none). Tests pass their own ``sample``.
* **np=** (RFC 9091 §4.1) is honoured for a subdomain From that does not exist (no A,
  AAAA or MX, §2.1), looked up only when the message fails.
* **DNS.** A temporary failure finding the record is ``temperror``; the alignment fields
  are then filled with relaxed alignment (the record's modes are unknown), so
  :mod:`.policy` can tell whether a retry could matter. A fail whose only hope was an
  *aligned* SPF or DKIM ``temperror`` is reported as ``temperror`` too (with the
  policy known): a retry may turn it into a pass.
"""

from __future__ import annotations

import re
import secrets
import threading
from dataclasses import dataclass, replace
from email.utils import getaddresses
from functools import lru_cache
from typing import TYPE_CHECKING, Callable, Sequence

import dns.exception
import dns.name

from ..resolver import DnsTemporary, Resolver
from .model import DkimResult, DmarcResult, SpfResult

if TYPE_CHECKING:
    from publicsuffixlist import PublicSuffixList

MAX_FROM_DOMAINS = 5  # several From domains: how many are checked for the strictest policy
POLICIES = ("none", "quarantine", "reject")  # weakest first: the index is the strength

_psl: PublicSuffixList | None = None
_psl_lock = threading.Lock()


def _suffix_list() -> PublicSuffixList:
    """One PublicSuffixList per process: building it parses the whole list."""
    global _psl
    with _psl_lock:
        if _psl is None:
            from publicsuffixlist import PublicSuffixList

            _psl = PublicSuffixList()
        return _psl


_DOMAIN = re.compile(r"^[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?(?:\.[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?)*$")


@lru_cache(maxsize=4096)  # the same few sender domains, several times a message
def normalize_domain(domain: str) -> str | None:
    """Lower case, no final dot, IDN as A-labels; ``None`` when it is no domain name."""
    d = domain.strip().lower()
    if d.endswith("."):
        d = d[:-1]
    if not d or d.startswith("[") or "\\" in d:
        return None
    try:
        d = dns.name.from_text(d).to_text(omit_final_dot=True).lower()
    except (dns.exception.DNSException, UnicodeError, ValueError):
        return None
    return d if _DOMAIN.match(d) else None


@lru_cache(maxsize=4096)
def organizational_domain(domain: str) -> str:
    """The registered domain below the public suffix (RFC 7489 §3.2); a name that is
    itself a public suffix (or no domain) is its own organizational domain."""
    d = normalize_domain(domain)
    if d is None:
        return domain.strip().lower().rstrip(".")
    org = _suffix_list().privatesuffix(d)
    return org if isinstance(org, str) and org else d


def aligned(identifier: str, from_domain: str, mode: str) -> bool:
    """Identifier alignment (RFC 7489 §3.1.1, §3.1.2): strict is equality, relaxed is the
    same organizational domain."""
    a, b = normalize_domain(identifier), normalize_domain(from_domain)
    if a is None or b is None:
        return False
    if mode == "s":
        return a == b
    return a == b or organizational_domain(a) == organizational_domain(b)


# -- From ----------------------------------------------------------------------------

_FROM_NAME = re.compile(rb"^from[ \t]*:", re.IGNORECASE | re.MULTILINE)


def _from_values(message: bytes) -> tuple[bytes, ...]:
    """The unfolded value of each From field of the header block (RFC 5322 §2.2, §2.2.3):
    the fields named ``from`` (any case, blanks before the colon allowed) and the
    continuation lines that follow each. The pattern finds the From lines (the regex
    engine steps through the header block in C); no other field is split, unfolded or
    copied: the folded DKIM-Signature fields above them cost the most to look at line
    by line (tests/unit/mailauth/test_dmarc_from.py: the same values as a parse of
    every field)."""
    # Only the lines before the first empty one are looked at.
    end = message.find(b"\n\r\n")
    lf = message.find(b"\n\n", 0, end if end >= 0 else len(message))
    end = lf if lf >= 0 else end
    block = message if end < 0 else message[:end]
    if block.startswith((b"\n", b"\r\n")):
        return ()  # the header block is empty: the message starts with the empty line (§2.1)
    n = len(block)
    values: list[bytes] = []
    for m in _FROM_NAME.finditer(block):
        start = m.end()
        eol = block.find(b"\n", start)
        eol = n if eol < 0 else eol
        value = block[start:eol - 1 if block[eol - 1:eol] == b"\r" and eol > start else eol]
        while eol < n and block[eol + 1:eol + 2] in (b" ", b"\t"):  # continuation lines (§2.2.3)
            nxt = block.find(b"\n", eol + 1)
            nxt = n if nxt < 0 else nxt
            line = block[eol + 1:nxt]
            value += line[:-1] if line.endswith(b"\r") else line
            eol = nxt
        values.append(value)
    return tuple(values)


def _from_field(message: bytes) -> tuple[list[str], bool] | None:
    """The distinct usable From domains and whether every mailbox had one; ``None``
    without a From field."""
    values = _from_values(message)
    if not values:
        return None
    domains, clean = _from_domains(values)
    return list(domains), clean


@lru_cache(maxsize=1024)
def _from_domains(values: tuple[bytes, ...]) -> tuple[tuple[str, ...], bool]:
    """:func:`_from_field` of the From values: cached, as a sender's From is the same on
    each of its messages and ``getaddresses`` is the slowest part of the DMARC check."""
    domains: list[str] = []
    clean = True
    for value in values:
        text = value.decode("utf-8", "surrogateescape")  # RFC 6532 allows UTF-8
        seen = False
        for _name, addr in getaddresses([text]):
            if not addr:
                continue  # an empty group or a trailing comma
            seen = True
            local, at, dom = addr.rpartition("@")
            d = normalize_domain(dom) if at and local else None
            if d is None:
                clean = False
            elif d not in domains:
                domains.append(d)
        clean = clean and seen
    return tuple(domains), clean


def from_domains(message: bytes) -> list[str] | None:
    """The RFC5322.From domains (distinct, A-labels, in order); ``[]`` when a From field
    has a mailbox without a usable domain (or none at all); ``None`` without From."""
    got = _from_field(message)
    if got is None:
        return None
    domains, clean = got
    return domains if clean else []


# -- the record ----------------------------------------------------------------------

# §6.4: "v" is an ABNF literal (any case), "DMARC1" is given as %x44... (this case).
_VERSION = re.compile(r"^[ \t]*[vV][ \t]*=[ \t]*DMARC1[ \t]*(?:;|\Z)")
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:[^\s!,]+(?:![0-9]+[kmgt]?)?$")


@dataclass(frozen=True, slots=True)
class Record:
    """A usable DMARC record (RFC 7489 §6.3), defaults filled in."""

    p: str
    sp: str
    np: str | None = None  # RFC 9091 §4.2
    adkim: str = "r"
    aspf: str = "r"
    pct: int = 100


def is_dmarc(text: str) -> bool:
    return bool(_VERSION.match(text))


def _tags(text: str) -> dict[str, str]:
    tags: dict[str, str] = {}
    for part in text.split(";"):
        name, eq, value = part.partition("=")
        name = name.strip(" \t").lower()
        if eq and name and name not in tags:  # the first of a repeated tag counts
            tags[name] = value.strip(" \t")
    return tags


def _policy_value(v: str | None) -> str | None:
    return v.lower() if v is not None and v.lower() in POLICIES else None


@lru_cache(maxsize=1024)  # pure, and a domain's record is the same text on each of its messages
def parse_record(text: str) -> Record | None:
    """The record, or ``None`` when it calls for no DMARC processing (§6.6.3 step 6)."""
    if not is_dmarc(text):
        return None
    tags = _tags(text)
    p, sp = _policy_value(tags.get("p")), _policy_value(tags.get("sp"))
    if p is None or ("sp" in tags and sp is None):
        # §6.6.3 step 6: with a usable rua=, act as if "v=DMARC1; p=none" was found.
        rua = [u.strip(" \t") for u in tags.get("rua", "").split(",")]
        if not any(_URI.match(u) for u in rua):
            return None
        p = sp = "none"
    pct = 100
    raw_pct = tags.get("pct", "")
    if raw_pct.isascii() and raw_pct.isdigit() and len(raw_pct) <= 3 and int(raw_pct) <= 100:
        pct = int(raw_pct)  # an invalid pct is ignored: the whole policy applies
    adkim = tags.get("adkim", "r").lower()
    aspf = tags.get("aspf", "r").lower()
    return Record(p=p, sp=sp or p, np=_policy_value(tags.get("np")),
                  adkim=adkim if adkim in ("r", "s") else "r", aspf=aspf if aspf in ("r", "s") else "r", pct=pct)


async def _records(resolver: Resolver, domain: str) -> list[str]:
    found = await resolver.txt(f"_dmarc.{domain}")
    texts = [t.decode("utf-8", "replace") for t in found or []]
    return [t for t in texts if is_dmarc(t)]  # §6.6.3 steps 2 and 4


async def discover(resolver: Resolver, domain: str, org: str) -> tuple[Record | None, bool, str]:
    """§6.6.3: ``(record, found at the organizational domain, why there is none)``;
    raises :class:`DnsTemporary`."""
    at_org = False
    texts = await _records(resolver, domain)
    if not texts and org != domain:
        texts, at_org = await _records(resolver, org), True
    if not texts:
        return None, at_org, "no DMARC record"
    if len(texts) > 1:
        return None, at_org, "several DMARC records"  # §6.6.3 step 5
    record = parse_record(texts[0])
    return record, at_org, "" if record else "DMARC record without a valid p= tag"


async def _exists(resolver: Resolver, domain: str) -> bool:
    """RFC 9091 §2.1: a domain exists unless A, AAAA and MX all give NXDOMAIN or no data."""
    for rdtype in ("A", "AAAA", "MX"):
        got = await resolver.query(domain, rdtype)
        if got is None:
            return False  # NXDOMAIN: the name has no records of any type
        if got:
            return True
    return False


# -- evaluation ----------------------------------------------------------------------


def _in_sample(pct: int) -> bool:
    return secrets.randbelow(100) < pct


def _lower(policy: str) -> str:
    return POLICIES[max(POLICIES.index(policy) - 1, 0)]


def _spf_aligned(spf: SpfResult | None, domain: str, mode: str, result: str = "pass") -> bool:
    return spf is not None and spf.result == result and aligned(spf.domain, domain, mode)


def _dkim_aligned(dkim: Sequence[DkimResult], domain: str, mode: str, result: str = "pass") -> bool:
    return any(d.result == result and d.domain and aligned(d.domain, domain, mode) for d in dkim)


async def _evaluate(resolver: Resolver, domain: str, spf: SpfResult | None, dkim: Sequence[DkimResult],
                    sample: Callable[[int], bool]) -> DmarcResult:
    org = organizational_domain(domain)
    try:
        record, at_org, why = await discover(resolver, domain, org)
    except DnsTemporary as exc:
        return DmarcResult("temperror", domain, org_domain=org, spf_aligned=_spf_aligned(spf, domain, "r"),
                           dkim_aligned=_dkim_aligned(dkim, domain, "r"), reason=str(exc))
    if record is None:
        return DmarcResult("none", domain, org_domain=org, reason=why)
    spf_ok = _spf_aligned(spf, domain, record.aspf)
    dkim_ok = _dkim_aligned(dkim, domain, record.adkim)
    # §6.3 sp=: for subdomains of the organizational domain whose record was found there.
    applicable = record.sp if at_org else record.p
    if spf_ok or dkim_ok:  # §4.2: one aligned pass is enough
        how = "SPF and DKIM" if spf_ok and dkim_ok else "SPF" if spf_ok else "DKIM"
        return DmarcResult("pass", domain, policy=applicable, published_policy=record.p, org_domain=org,
                           spf_aligned=spf_ok, dkim_aligned=dkim_ok, reason=f"{how} aligned")
    base = DmarcResult("fail", domain, published_policy=record.p, org_domain=org, spf_aligned=spf_ok,
                       dkim_aligned=dkim_ok)
    reasons = ["no aligned SPF or DKIM pass"]
    if at_org and record.np is not None and record.np != applicable:
        try:
            if not await _exists(resolver, domain):
                applicable = record.np
                reasons.append("non-existent subdomain (np=)")
        except DnsTemporary as exc:
            strictest = max(applicable, record.np, key=POLICIES.index)
            return replace(base, result="temperror", policy=strictest, reason=str(exc))
    if record.pct < 100 and applicable != "none" and not sample(record.pct):
        reasons.append(f"pct={record.pct}, not sampled: {_lower(applicable)} instead of {applicable}")
        applicable = _lower(applicable)  # §6.6.4
    result = "fail"
    if _spf_aligned(spf, domain, record.aspf, "temperror") or _dkim_aligned(dkim, domain, record.adkim, "temperror"):
        result = "temperror"
        reasons.append("an aligned check had a temporary error")
    return replace(base, result=result, policy=applicable, reason="; ".join(reasons))


async def check_dmarc(resolver: Resolver, message: bytes, spf: SpfResult | None, dkim: Sequence[DkimResult],
                      *, sample: Callable[[int], bool] = _in_sample) -> DmarcResult:
    """The DMARC result of ``message`` (RFC 7489 §6.6); never raises but for a bug.

    ``sample(pct)`` says whether this message is in the pct% the policy applies to.
    """
    got = _from_field(message)
    if got is None:
        return DmarcResult("permerror", reason="no From field")  # §6.6.1
    domains, clean = got
    if clean and len(domains) == 1:
        return await _evaluate(resolver, domains[0], spf, dkim, sample)
    why = f"several From domains: {', '.join(domains[:MAX_FROM_DOMAINS])}" if len(domains) > 1 else \
        "a From mailbox without a usable domain"
    if not domains:
        return DmarcResult("permerror", reason=why)
    # §6.6.1: check each domain and keep the strictest policy among the checks that fail.
    results = [await _evaluate(resolver, d, spf, dkim, sample) for d in domains[:MAX_FROM_DOMAINS]]
    failed = [r for r in results if r.result == "fail"]
    worst = max(failed, key=lambda r: POLICIES.index(r.policy), default=None)
    first = results[0]
    return DmarcResult("permerror", from_domain=first.from_domain, policy=worst.policy if worst else "none",
                       published_policy=worst.published_policy if worst else "", org_domain=first.org_domain,
                       reason=why + (f"; {worst.from_domain} fails DMARC" if worst else ""))
