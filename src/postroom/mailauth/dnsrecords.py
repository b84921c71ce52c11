"""``postroom dns records|check DOMAIN``: the DNS a served domain needs, and whether it is there.

One function, :func:`wanted`, turns the config and the DKIM keys into structured
records; ``records`` renders them as a zone-file snippet (fully-qualified names, so
it pastes into any zone and loads with ``$ORIGIN .``), ``check`` asks the configured
resolver for each and says ``ok``, ``missing``, ``different (found: …)`` or
``temporary failure``. What ``records`` prints is exactly what ``check`` wants: load
the one into DNS and the other reports nothing missing.

Choices, each explained in the snippet's comments:

- MX 10 to ``hostname``. SPF ``v=spf1 mx -all``: this server (the MX) is where the
  domain's mail leaves from, and nothing else may send as the domain; ``-all`` is safe
  because every message is also DKIM-signed, so mail whose SPF breaks on a forwarder
  still passes DMARC. When the hostname is inside the domain it gets its own
  ``v=spf1 a -all`` for the HELO identity (RFC 7208 §2.3), which bounces are checked by.
- DKIM: pending keys (publish before ``dkim activate``), active keys, and keys
  retired less than :data:`RETIRED_KEEP` ago (mail still queued somewhere carries
  their signatures); older retired keys are printed commented out, "remove".
- DMARC ``p=quarantine`` with aggregate reports to ``postmaster@DOMAIN``: with
  aligned SPF and DKIM on every message this server sends, forged mail can be
  quarantined from the first day.
- MTA-STS (RFC 8461): ``_mta-sts`` TXT with the id of the policy the ``https``
  listener serves (a hash of its text, so it changes exactly when the policy does), and
  ``mta-sts.DOMAIN`` as a CNAME to the hostname (``check`` also accepts A/AAAA records
  of this server); TLS-RPT (RFC 8460): ``_smtp._tls`` TXT with the ``rua`` address of
  ``[mta_sts] report_mailbox``.
- SRV (RFC 6186, RFC 8314 §5.1) for the mail-client services of the configured
  listeners, implicit TLS preferred; a service with no listener gets the RFC's
  "not provided" record ``0 0 0 .``, and so does a listener without TLS (clients
  must not be sent to a port where passwords travel in clear).
- With an HTTP listener: ``autoconfig.DOMAIN`` and ``autodiscover.DOMAIN`` as CNAMEs
  to the hostname (Thunderbird's and Outlook's settings lookups, docs/http.md), and
  ``_autodiscover._tcp`` SRV to the https port (Outlook's fallback).

``check`` judges SPF and DMARC by meaning, not text: any one valid ``v=spf1`` /
``v=DMARC1`` record is ``ok`` (shown when it differs from the suggestion), with a
warning line when the SPF record cannot authorize this host or DMARC is ``p=none``.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import re
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Iterable

from ..config import Config
from ..errors import UsageError
from .keys import DkimKey, list_keys

DEFAULT_TTL = 3600
# Retired DKIM keys stay in DNS this long: a message signed just before the rotation may
# sit in a queue for up to 5 days (RFC 5321 §4.5.4.1) and is verified when it arrives.
RETIRED_KEEP = 7 * 86400

# (SRV service, listener protocol, listener TLS mode, priority). RFC 8314 §5.1: clients
# should prefer implicit TLS, so those records get the lower (preferred) priority number.
SRV_SERVICES: tuple[tuple[str, str, str, int], ...] = (
    ("_submissions", "submission", "implicit", 0),
    ("_submission", "submission", "starttls", 10),
    ("_imaps", "imap", "implicit", 0),
    ("_imap", "imap", "starttls", 10),
    ("_pop3s", "pop3", "implicit", 0),
    ("_pop3", "pop3", "starttls", 10),
)

_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


def parse_domain(text: str) -> str:
    """``Example.ORG.`` → ``example.org``; :class:`UsageError` for anything that is not a domain."""
    domain = text.strip().lower().rstrip(".")
    if not _DOMAIN.match(domain):
        raise UsageError(f"{text!r} is not a domain name like example.org")
    return domain


def served_domains(cfg: Config) -> set[str]:
    """The config's ``domains`` and the store's (what ``postroom domain list`` prints).

    Only used for a warning, so a store that cannot be read (or does not exist yet:
    opening it would create it) just leaves the config's list.
    """
    served = set(cfg.domains)
    if not cfg.data_dir.is_dir():
        return served
    from ..storage import open_store

    async def read() -> list[str]:
        store = open_store(cfg)
        await store.open()
        try:
            return list(await store.list_domains())
        finally:
            await store.close()

    try:
        served |= set(asyncio.run(read()))
    except Exception:  # the warning is advice; the command itself does not need the store
        pass
    return served


def warn_unserved(cfg: Config, domain: str) -> None:
    """One stderr line when ``domain`` is neither served nor this host's own domain.

    A warning, not a refusal: records and keys are best made days before a domain
    moves in (DNS caches), i.e. before ``postroom domain add``.
    """
    host = cfg.hostname.lower().rstrip(".")
    if domain in served_domains(cfg) or domain == host or domain == host.partition(".")[2]:
        return
    print(f"postroom: warning: {domain} is not served here (postroom domain add {domain})", file=sys.stderr)


# -- the records -----------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Wanted:
    kind: str  # mx | spf | dkim | dmarc | srv | address | mta-sts | mta-sts-host | tlsrpt | autoconfig
    name: str  # fully qualified, with the trailing dot
    rdtype: str  # MX | TXT | SRV | A | AAAA | CNAME
    value: str  # presentation form; for TXT the text itself, unquoted
    comment: str  # one line: why the record is there
    label: str = ""  # what `check` calls it, e.g. "DKIM 202612r (rsa, active)"
    publish: bool = True  # False: printed commented out ("remove this") and not checked


@dataclass(frozen=True, slots=True)
class Plan:
    domain: str
    hostname: str  # fully qualified, with the trailing dot
    records: tuple[Wanted, ...]
    notes: tuple[str, ...] = field(default=())  # comment lines before the records
    unsigned: bool = False  # no active DKIM key: the domain's mail leaves unsigned

    @property
    def unsigned_note(self) -> str:
        return f"{self.domain} has no active DKIM key, so its mail leaves unsigned: postroom dkim keygen {self.domain}"


def _fq(name: str) -> str:
    return name.lower().rstrip(".") + "."


def _when(ts: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(ts))


def _dkim_records(keys: Iterable[DkimKey], now: float) -> list[Wanted]:
    out = []
    for k in keys:
        label = f"DKIM {k.algorithm}, {k.state}"
        name, text = _fq(k.record_name), k.txt_record()
        if k.state == "pending":
            comment = (f"DKIM key {k.selector} ({k.algorithm}), pending: publish it before "
                       f"'postroom dkim activate {k.domain} {k.selector}'")
        elif k.state == "active":
            comment = f"DKIM key {k.selector} ({k.algorithm}), active: receivers verify this server's signatures"
        else:
            since = k.changed or k.created
            if now - since >= RETIRED_KEEP:
                out.append(Wanted("dkim", name, "TXT", text, f"DKIM key {k.selector} ({k.algorithm}), retired "
                                  f"{_when(since)}: remove this record", label, publish=False))
                continue
            comment = (f"DKIM key {k.selector} ({k.algorithm}), retired {_when(since)}: keep published until "
                       f"{_when(since + RETIRED_KEEP)} (mail still in transit verifies), then remove")
        out.append(Wanted("dkim", name, "TXT", text, comment, label))
    return out


def _srv_records(cfg: Config, domain: str, host: str) -> list[Wanted]:
    out = []
    for service, protocol, tls, priority in SRV_SERVICES:
        name = f"{service}._tcp.{domain}."
        # A listener without TLS is left out on purpose: clients must not send passwords in clear.
        ports = sorted({lst.port for lst in cfg.listeners if lst.protocol == protocol and lst.tls == tls and lst.port})
        if not ports:
            out.append(Wanted("srv", name, "SRV", "0 0 0 .", f"{service[1:]}: not provided here (RFC 6186 §4)"))
        for port in ports:
            how = "implicit TLS, RFC 8314 §5.1: preferred" if tls == "implicit" else "STARTTLS, RFC 6186"
            out.append(Wanted("srv", name, "SRV", f"{priority} 1 {port} {host}",
                              f"{service[1:]} for mail clients' automatic setup ({how})"))
    return out


def _sts_records(cfg: Config, domain: str, host: str) -> list[Wanted]:
    """RFC 8461 §3.1 (policy id), §3.3 (policy host), RFC 8460 §3 (report address)."""
    from ..outbound.stspolicy import published

    settings, _, pid = published(cfg)
    return [
        Wanted("mta-sts", f"_mta-sts.{domain}.", "TXT", f"v=STSv1; id={pid}",
               f"MTA-STS (RFC 8461), mode {settings.mode}: senders fetch the policy again when this id changes "
               "(it is a hash of the policy text)", "MTA-STS"),
        Wanted("mta-sts-host", f"mta-sts.{domain}.", "CNAME", host,
               f"the MTA-STS policy host: served by this server's https listener (its certificate must name "
               f"mta-sts.{domain}); A/AAAA records of this server do as well", "MTA-STS policy host"),
        Wanted("tlsrpt", f"_smtp._tls.{domain}.", "TXT", f"v=TLSRPTv1; rua={settings.rua(domain)}",
               "TLS-RPT (RFC 8460): senders mail daily reports of TLS failures delivering here", "TLS-RPT"),
    ]


def public_addresses(cfg: Config) -> list[str]:
    """The listeners' addresses that are reachable from the Internet (not 0.0.0.0, loopback, private)."""
    found = []
    for lst in cfg.listeners:
        try:
            ip = ipaddress.ip_address(lst.host)
        except ValueError:
            continue
        if ip.is_global and str(ip) not in found:
            found.append(str(ip))
    return found


def wanted(cfg: Config, domain: str, keys: Iterable[DkimKey], now: float | None = None) -> Plan:
    """Every record ``domain`` needs for this server, in the order they are printed."""
    now = time.time() if now is None else now
    host = _fq(cfg.hostname)
    bare_host = host.rstrip(".")
    d = f"{domain}."
    notes = []
    recs = [Wanted("mx", d, "MX", f"10 {host}", f"mail for {domain} is delivered to this server")]
    addrs = public_addresses(cfg)
    if addrs:
        for a in addrs:
            rdtype = "A" if ipaddress.ip_address(a).version == 4 else "AAAA"
            recs.append(Wanted("address", host, rdtype, a, f"{bare_host}, the MX and SRV target, listens on {a} "
                               "(whose PTR record should name it too)"))
    elif "." in bare_host:
        notes.append(f"{bare_host} needs A/AAAA records of this server's public addresses (not printed: no "
                     "listener binds one),")
        notes.append(f"and PTR records for those addresses that name {bare_host}.")
    else:
        notes.append(f"hostname = {bare_host!r} in the config is not a public name: set the server's DNS name there.")
    recs.append(Wanted("spf", d, "TXT", "v=spf1 mx -all",
                       "SPF (RFC 7208): only this server, the MX, sends as the domain (-all is safe: DKIM "
                       "carries DMARC where forwarding breaks SPF)", "SPF"))
    if bare_host.endswith("." + domain):
        recs.append(Wanted("spf", host, "TXT", "v=spf1 a -all",
                           "SPF for the HELO name (RFC 7208 §2.3): bounces (empty MAIL FROM) are checked by it",
                           "HELO SPF"))
    keys = list(keys)
    recs += _dkim_records(keys, now)
    recs.append(Wanted("dmarc", f"_dmarc.{domain}.", "TXT", f"v=DMARC1; p=quarantine; rua=mailto:postmaster@{domain}",
                       "DMARC (RFC 7489): quarantine forgeries; rua= gets daily XML reports (another mailbox? "
                       "or drop it)", "DMARC"))
    recs += _sts_records(cfg, domain, host)
    if not any(lst.protocol == "http" and lst.tls == "implicit" for lst in cfg.listeners):
        notes.append(f"the MTA-STS policy is served on https://mta-sts.{domain}/: configure an https listener "
                     "(port 443) whose certificate names that host.")
    recs += _srv_records(cfg, domain, host)
    recs += _autoconfig_records(cfg, domain, host)
    return Plan(domain, host, tuple(recs), tuple(notes), not any(k.state == "active" for k in keys))


def _autoconfig_records(cfg: Config, domain: str, host: str) -> list[Wanted]:
    """The names mail clients ask for their settings (docs/http.md), when an HTTP listener serves them."""
    web = [lst for lst in cfg.listeners if lst.protocol == "http"]
    if not web:
        return []
    recs = [Wanted("autoconfig", f"autoconfig.{domain}.", "CNAME", host,
                   "Thunderbird autoconfiguration (https://autoconfig.DOMAIN/mail/config-v1.1.xml), served by "
                   "this server's http(s) listeners", "autoconfig host"),
            Wanted("autoconfig", f"autodiscover.{domain}.", "CNAME", host,
                   "Outlook Autodiscover (https://autodiscover.DOMAIN/autodiscover/autodiscover.xml), served by "
                   "this server's https listener", "autodiscover host")]
    https = next((lst for lst in web if lst.tls == "implicit" and lst.port), None)
    if https is not None:
        recs.append(Wanted("srv", f"_autodiscover._tcp.{domain}.", "SRV", f"0 1 {https.port} {host}",
                           "Outlook's fallback when autodiscover.DOMAIN does not answer"))
    return recs


# -- zone-file rendering ---------------------------------------------------------------
def txt_rdata(text: str, indent: str = "    ") -> str:
    """The TXT text as quoted strings of at most 255 bytes (RFC 7208 §3.3, RFC 6376 §3.6.2.2).

    A receiver joins the strings without spaces, so the split may fall anywhere. More
    than one string is wrapped in parentheses, one string a line.
    """
    data = text.encode()
    parts = [data[i:i + 255] for i in range(0, len(data), 255)] or [b""]

    def quote(b: bytes) -> str:
        return '"' + "".join(chr(c) if 32 <= c < 127 and c not in (34, 92) else
                             "\\" + chr(c) if c in (34, 92) else f"\\{c:03d}" for c in b) + '"'

    if len(parts) == 1:
        return quote(parts[0])
    return "( " + f"\n{indent}".join(quote(p) for p in parts) + " )"


def record_line(r: Wanted, ttl: int | None = None) -> str:
    """``name [ttl] IN TYPE rdata``; without a TTL the zone's ``$TTL`` applies."""
    rdata = txt_rdata(r.value) if r.rdtype == "TXT" else r.value
    return f"{r.name} {'' if ttl is None else f'{ttl} '}IN {r.rdtype} {rdata}"


def render_zone(plan: Plan, ttl: int = DEFAULT_TTL) -> str:
    lines = [f"; DNS records for {plan.domain}, printed by 'postroom dns records {plan.domain}'.",
             "; Names are fully qualified: paste into the zone of each name's domain. "
             f"Verify with 'postroom dns check {plan.domain}'."]
    lines += [f"; {n}" for n in plan.notes + ((plan.unsigned_note,) if plan.unsigned else ())]
    for r in plan.records:
        lines.append("")
        lines.append(f"; {r.comment}")
        line = record_line(r, ttl)
        lines += line.splitlines() if r.publish else [f"; {x}" for x in line.splitlines()]
    return "\n".join(lines) + "\n"


# -- check -----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Finding:
    record: Wanted
    status: str  # ok | missing | different | temporary failure
    detail: str = ""
    warning: str = ""

    def line(self) -> str:
        label = f" ({self.record.label})" if self.record.label else ""
        head = f"{self.record.name} {self.record.rdtype}{label}: {self.status}"
        return head + (f" ({self.detail})" if self.detail else "")


def _short(text: str, limit: int = 72) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _texts(rdatas: list[Any]) -> list[str]:
    return [b"".join(r.strings).decode("utf-8", "replace") for r in rdatas]


def _tags(text: str) -> dict[str, str]:
    """``k=v; k=v`` (RFC 6376 §3.2, RFC 7489 §6.4); whitespace inside values dropped (FWS)."""
    out = {}
    for part in text.split(";"):
        k, eq, v = part.partition("=")
        if eq:
            out[k.strip().lower()] = re.sub(r"\s+", "", v)
    return out


_SPF_VERSION = re.compile(r"(?i)^v=spf1( |$)")
_DMARC_VERSION = re.compile(r"(?i)^v[ \t]*=[ \t]*DMARC1[ \t]*(;|$)")
_SPF_TERM = re.compile(r"^[+\-~?]?(all|include:\S+|a(:[^/\s]+)?(/\d+)?(//\d+)?|mx(:[^/\s]+)?(/\d+)?(//\d+)?|"
                       r"ptr(:\S+)?|ip4:[0-9./]+|ip6:[0-9a-f:./]+|exists:\S+)$|^[a-z][a-z0-9_.-]*=\S*$", re.I)


def _spf_authorizes(spf: str, record_name: str, host: str, host_addrs: Iterable[str]) -> bool:
    """Could this record authorize this host? Textual and generous: include/redirect/exists count as yes."""
    for term in spf.split()[1:]:
        t = term.lower().lstrip("+")
        if t[:1] in "-~?":
            continue
        mech, _, arg = t.partition(":")
        mech = mech.split("/")[0]
        if mech in ("mx", "ptr") or t.startswith(("include:", "redirect=", "exists:")) or t == "all":
            return True
        if mech == "a" and (arg.split("/")[0] or record_name).rstrip(".") == host.rstrip("."):
            return True
        if mech in ("ip4", "ip6"):
            try:
                net = ipaddress.ip_network(arg, strict=False)
            except ValueError:
                continue
            ips = [ipaddress.ip_address(a) for a in host_addrs]
            if any(ip.version == net.version and ip in net for ip in ips):
                return True
    return False


def judge(r: Wanted, found: list[Any] | None, plan: Plan, host_addrs: Iterable[str] = ()) -> Finding:
    """Compare one wanted record with what DNS answered (``None``: NXDOMAIN, ``[]``: no data)."""
    if not found:
        return Finding(r, "missing")
    if r.rdtype != "TXT":
        return _judge_rr(r, found, plan)
    if r.kind == "dkim":
        return _judge_dkim(r, _texts(found))
    if r.kind in ("mta-sts", "tlsrpt"):
        return _judge_sts(r, _texts(found))
    return _judge_policy(r, _texts(found), plan, host_addrs)


def _judge_rr(r: Wanted, found: list[Any], plan: Plan) -> Finding:
    """MX and SRV: our host (and port) among the answers; priorities and weights are the admin's."""
    if r.rdtype == "MX":
        ok = any(x.exchange.to_text().lower() == plan.hostname for x in found)
    elif r.rdtype == "SRV":
        _, _, port, target = r.value.split()
        ok = any(x.target.to_text().lower() == target and x.port == int(port) for x in found)
    elif r.rdtype == "CNAME":
        ok = any(x.target.to_text().lower() == r.value for x in found)
    else:  # A, AAAA
        ok = r.value in [x.address for x in found]
    got = ", ".join(x.to_text().lower() for x in found)
    return Finding(r, "ok") if ok else Finding(r, "different", f"found: {_short(got)}")


def _judge_dkim(r: Wanted, texts: list[str]) -> Finding:
    """The same public key and key type (k= defaults to rsa, RFC 6376 §3.6.1)."""
    want = _tags(r.value)
    same = [t for t in texts if _tags(t).get("p") == want["p"] and _tags(t).get("k", "rsa") == want["k"]]
    if same and len(texts) == 1:
        return Finding(r, "ok")
    if same:  # RFC 6376 §3.6.2.2: several records at one selector give undefined results
        return Finding(r, "different", f"{len(texts)} TXT records at this name; verifiers may pick any")
    return Finding(r, "different", f"found: {_short('; '.join(texts))}")


def _judge_sts(r: Wanted, texts: list[str]) -> Finding:
    """MTA-STS: exactly one v=STSv1 record with our id (RFC 8461 §3.1: an old id keeps senders on the
    old policy). TLS-RPT: exactly one v=TLSRPTv1 record with a rua (RFC 8460 §3), whatever its address."""
    version = "v=STSv1" if r.kind == "mta-sts" else "v=TLSRPTv1"
    mine = [t for t in texts if re.match(rf"{version}[ \t]*(;|$)", t)]
    if not mine:
        return Finding(r, "missing", f"found only: {_short('; '.join(texts))}")
    if len(mine) > 1:  # RFC 8461 §3.1, RFC 8460 §3: more than one record means none
        return Finding(r, "different", f"{len(mine)} {r.label} records: senders then ignore them all")
    tags = _tags(mine[0])
    if r.kind == "mta-sts":
        want = _tags(r.value)["id"]
        if tags.get("id") != want:
            return Finding(r, "different", f"found id={tags.get('id', '')}; the policy served now has id={want}")
        return Finding(r, "ok")
    if not tags.get("rua", "").startswith(("mailto:", "https:")):
        return Finding(r, "different", f"found: {_short(mine[0])}; no rua=mailto: or https: address")
    return Finding(r, "ok", "" if mine[0] == r.value else f"published: {_short(mine[0])}")


def _judge_policy(r: Wanted, texts: list[str], plan: Plan, host_addrs: Iterable[str]) -> Finding:
    """SPF and DMARC: one valid record is ok, whatever its text; warnings where it defeats the purpose."""
    # RFC 7208 §4.5: "v=spf1" then a space or the end; RFC 7489 §6.6.3: starts with v=DMARC1.
    version = _SPF_VERSION if r.kind == "spf" else _DMARC_VERSION
    mine = [t for t in texts if version.match(t)]
    if not mine:
        return Finding(r, "missing", f"found only: {_short('; '.join(texts))}")
    if len(mine) > 1:  # RFC 7208 §4.5 (permerror), RFC 7489 §6.6.3 (no policy)
        return Finding(r, "different", f"{len(mine)} {r.label} records: receivers then ignore them all")
    text = mine[0]
    shown = "" if text == r.value else f"published: {_short(text)}"
    if r.kind == "spf":
        bad = [t for t in text.split()[1:] if not _SPF_TERM.match(t)]
        if bad:
            return Finding(r, "different", f"found: {_short(text)}; not valid SPF at {bad[0]!r}")
        warn = "" if _spf_authorizes(text, r.name, plan.hostname, host_addrs) else \
            f"it does not authorize {plan.hostname.rstrip('.')}: mail from this server fails SPF"
        return Finding(r, "ok", shown, warn)
    policy = _tags(text).get("p", "").lower()
    if policy not in ("none", "quarantine", "reject"):
        return Finding(r, "different", f"found: {_short(text)}; no valid p= tag")
    warn = "p=none: receivers deliver mail that fails DMARC as usual (monitoring only)" if policy == "none" else ""
    return Finding(r, "ok", shown, warn)


async def check(resolver: Any, plan: Plan) -> tuple[list[Finding], list[str]]:
    """Every published record of the plan judged against DNS, and notes (not failures)."""
    from ..resolver import DnsTemporary

    records = [r for r in plan.records if r.publish]
    keys = sorted({(r.name, r.rdtype) for r in records})

    async def ask(name: str, rdtype: str) -> list[Any] | None | DnsTemporary:
        try:
            return await resolver.query(name, rdtype)
        except DnsTemporary as exc:
            return exc

    async def host() -> tuple[str, ...]:  # for the SPF warning and the note below
        try:
            return await resolver.addresses(plan.hostname) or ()
        except DnsTemporary:
            return ()

    # All at once: a silent nameserver then costs one resolver lifetime, not one per record.
    host_addrs, *got = await asyncio.gather(host(), *(ask(n, t) for n, t in keys))
    answers = dict(zip(keys, got))
    notes = [f"note: {plan.unsigned_note}"] if plan.unsigned else []
    if not host_addrs and not any(r.kind == "address" for r in records):
        notes.append(f"note: {plan.hostname.rstrip('.')} has no A/AAAA record: the MX and SRV targets must resolve")
    findings = []
    for r in records:
        found = answers[(r.name, r.rdtype)]
        if r.rdtype == "CNAME" and not found and not isinstance(found, DnsTemporary) and host_addrs:
            # No CNAME: A/AAAA records of this server at the name do as well.
            try:
                addrs = await resolver.addresses(r.name) or ()
            except DnsTemporary as exc:
                findings.append(Finding(r, "temporary failure", str(exc)))
                continue
            if addrs and set(addrs) <= set(host_addrs):
                findings.append(Finding(r, "ok", f"A/AAAA {', '.join(addrs)}"))
                continue
        if isinstance(found, DnsTemporary):
            findings.append(Finding(r, "temporary failure", str(found)))
        else:
            findings.append(judge(r, found, plan, host_addrs))
    return findings, notes


# -- the commands ----------------------------------------------------------------------
def register(subparsers: Any) -> None:
    p = subparsers.add_parser("dns", help="the DNS records a domain needs, and whether they are published")
    ps = p.add_subparsers(dest="dns_cmd", metavar="COMMAND", required=True)
    r = ps.add_parser("records", help="print the domain's records as a zone-file snippet")
    r.add_argument("domain")
    r.add_argument("--ttl", type=int, default=DEFAULT_TTL, help="TTL of every record (default: %(default)s)")
    c = ps.add_parser("check", help="ask DNS for each record 'records' prints (exit 1 unless all are ok)")
    c.add_argument("domain")
    p.set_defaults(run=run)


def run(cfg: Config, args: argparse.Namespace) -> int:
    domain = parse_domain(args.domain)
    warn_unserved(cfg, domain)
    plan = wanted(cfg, domain, list_keys(cfg.data_dir, domain))
    if args.dns_cmd == "records":
        if not 0 <= args.ttl <= 2**31 - 1:  # RFC 2181 §8
            raise UsageError("--ttl must be between 0 and 2147483647 seconds")
        sys.stdout.write(render_zone(plan, args.ttl))
        return 0
    from ..resolver import shared

    findings, notes = asyncio.run(check(shared(cfg), plan))
    for f in findings:
        print(f.line())
        if f.warning:
            print(f"  warning: {f.warning}")
    for n in notes:
        print(n)
    bad = sum(f.status != "ok" for f in findings)
    print(f"{plan.domain}: " + (f"all {len(findings)} records ok" if not bad else
                                f"{bad} of {len(findings)} records not as 'postroom dns records' prints them"))
    return 1 if bad else 0
