"""What a mail client should be told, from the configured listeners and hostname.

Every autoconfiguration format (Thunderbird's, Outlook's Autodiscover, Apple's
profile) is rendered from the :class:`Offer` list made here, never from a template
kept by hand, so the documents cannot drift from what the server really listens on.

Rules, the same for every format:

- Only listeners with TLS are offered: implicit TLS or STARTTLS. A plaintext port is
  never offered, because a client sent there would send its password in clear.
- Implicit TLS first (RFC 8314 §5.1: clients should prefer it), then STARTTLS; IMAP
  before POP3. Outgoing mail goes to ``submission`` listeners only, never to port 25
  (RFC 6409: port 25 is relay, where users do not authenticate).
- The port is the configured one; a listener configured on port 0 (the kernel picks,
  as tests do) is offered on the port it really got, and is left out if it is not
  bound (a listener added by a reload that needs a restart to listen).

Also here: which of our domains a request is about, from the address the client
gives or the host name it asked (``autoconfig.example.org``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from ..config import Config

# Listener protocol → (kind, incoming?).
_KINDS: dict[str, tuple[str, bool]] = {"imap": ("imap", True), "pop3": ("pop3", True),
                                       "submission": ("smtp", False)}
# Order of preference: kind, then implicit TLS before STARTTLS (RFC 8314 §5.1).
_KIND_ORDER = {"imap": 0, "pop3": 1, "smtp": 2}
_TLS_ORDER = {"implicit": 0, "starttls": 1}

# Host name prefixes under which clients look for a domain's configuration.
SERVICE_PREFIXES = ("autoconfig.", "autodiscover.", "mta-sts.")

# A deliberately plain address check: dot-atom local part (RFC 5322 §3.4.1) or a
# UTF-8 one (RFC 6531), and a domain of LDH labels. Quoted local parts are not offered
# autoconfiguration; nobody types them into a setup dialog.
_LOCAL = re.compile(r"[^\s@\"(),:;<>\[\]\\]{1,64}")
_DOMAIN = re.compile(r"(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)+")


@dataclass(frozen=True, slots=True)
class Offer:
    """One server a client may use."""

    kind: str        # imap | pop3 | smtp
    incoming: bool
    host: str
    port: int
    tls: str         # implicit | starttls
    listener: str    # the listener's name, for logs and tests


def offers(cfg: Config, bound: Mapping[str, tuple[str, int]]) -> list[Offer]:
    """The servers to offer, best first. ``bound``: listener name → address it listens on."""
    out: list[Offer] = []
    for lst in cfg.listeners:
        kind = _KINDS.get(lst.protocol)
        if kind is None or lst.tls not in _TLS_ORDER:
            continue  # not a mail-client service, or plaintext: never offered
        port = lst.port
        if port == 0:
            got = bound.get(lst.name)
            if got is None:
                continue
            port = got[1]
        out.append(Offer(kind[0], kind[1], cfg.hostname, port, lst.tls, lst.name))
    out.sort(key=lambda o: (_KIND_ORDER[o.kind], _TLS_ORDER[o.tls]))
    return out


def split_address(text: str) -> tuple[str, str] | None:
    """``(local, domain)`` of a plausible address (domain lowercased), else None."""
    text = text.strip()
    local, at, domain = text.rpartition("@")
    if not at:
        return None
    domain = domain.lower().rstrip(".")
    try:
        domain = domain.encode("idna").decode("ascii") if not domain.isascii() else domain
    except UnicodeError:
        return None
    if not _LOCAL.fullmatch(local) or not _DOMAIN.fullmatch(domain):
        return None
    return local, domain


def domain_from_host(host: str | None) -> str | None:
    """The domain a request names by its Host: ``autoconfig.example.org`` → ``example.org``,
    ``example.org`` → itself (the caller checks it is one we serve)."""
    if not host:
        return None
    h = host.strip().lower()
    if h.startswith("["):
        return None  # an IPv6 literal names no domain
    h = h.rsplit(":", 1)[0] if h.count(":") == 1 else h
    h = h.rstrip(".")
    for prefix in SERVICE_PREFIXES:
        if h.startswith(prefix):
            h = h[len(prefix):]
            break
    return h if _DOMAIN.fullmatch(h) else None
