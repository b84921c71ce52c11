"""MTA-STS (RFC 8461) and TLS-RPT (RFC 8460) as text: policies, DNS records, settings.

Pure: no sockets, no asyncio. Both sides use it: the HTTP handler that publishes our
own domains' policy (:mod:`postroom.http.mtasts`) renders with :func:`render_policy`,
and outbound delivery (:mod:`postroom.outbound.mtasts`) parses other domains' policies
with :func:`parse_policy` and matches MX names with :meth:`Policy.matches`.

The ``[mta_sts]`` section configures both: what we publish (``mode``, ``max_age``,
``mx``, the TLS-RPT address) and whether we honour other domains' policies
(``enforce_outbound``, ``ca_file``).
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from ..config import Config, parse_duration

MODES = ("enforce", "testing", "none")
MAX_AGE_LIMIT = 31557600  # RFC 8461 §3.2: "a maximum value of 31557600" (one year)
POLICY_SIZE_LIMIT = 64 * 1024  # RFC 8461 §3.3: senders may limit the body to 64 KiB
WELL_KNOWN_PATH = "/.well-known/mta-sts.txt"


class PolicyError(ValueError):
    """A policy body or TXT record that does not follow RFC 8461's grammar."""


# RFC 8461 §3.2 / RFC 1035 §2.3.1: a host name; the mx value may start with "*.".
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_DOMAIN = re.compile(rf"^{_LABEL}(?:\.{_LABEL})+$")
_MX_PATTERN = re.compile(rf"^(?:\*\.)?{_LABEL}(?:\.{_LABEL})+$")
_EXT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$")  # sts-policy-ext-name
_EXT_VALUE = re.compile(r"^[\x21-\x3a\x3c\x3e-\x7e]+(?:[ \t]*[\x21-\x3a\x3c\x3e-\x7e]+)*$")
_ID = re.compile(r"^[A-Za-z0-9]{1,32}$")  # sts-id-value, RFC 8461 §3.1


@dataclass(frozen=True, slots=True)
class Policy:
    """One parsed policy (RFC 8461 §3.2); ``mx`` keeps the patterns as written, lowercased."""

    mode: str
    max_age: int
    mx: tuple[str, ...]

    def matches(self, host: str) -> bool:
        """RFC 8461 §4.1: does the MX host name match one of the ``mx`` patterns?"""
        return any(mx_matches(p, host) for p in self.mx)


def mx_matches(pattern: str, host: str) -> bool:
    """Exact match, or ``*.example.com`` matching exactly one more leftmost label (§4.1)."""
    h = host.lower().rstrip(".")
    p = pattern.lower().rstrip(".")
    if p.startswith("*."):
        head, dot, rest = h.partition(".")
        return bool(head) and bool(dot) and rest == p[2:]
    return h == p


def parse_policy(body: bytes | str) -> Policy:
    """Parse a policy body; :class:`PolicyError` when it breaks the grammar or lacks a field.

    Lines end with LF or CRLF (``sts-policy-term``); trailing white space on a line is
    allowed, leading white space is not. Unknown fields are extensions and ignored
    (§3.2); a known field given twice (other than ``mx``) is an error, since which one
    wins would be a guess.
    """
    if isinstance(body, bytes):
        try:
            text = body.decode("ascii")
        except UnicodeDecodeError:
            raise PolicyError("policy is not ASCII text") from None
    else:
        text = body
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the optional final sts-policy-term
    if not lines:
        raise PolicyError("policy is empty")
    fields: dict[str, str] = {}
    mx: list[str] = []
    for n, raw in enumerate(lines, 1):
        line = raw.removesuffix("\r")
        if "\r" in line:
            raise PolicyError(f"line {n}: bare CR")
        name, colon, value = line.partition(":")
        if not colon or not _EXT_NAME.match(name):
            raise PolicyError(f"line {n}: not 'name: value'")
        value = value.strip(" \t")
        if not value or not _EXT_VALUE.match(value):
            raise PolicyError(f"line {n}: bad value for {name!r}")
        if name == "mx":
            if not _MX_PATTERN.match(value):
                raise PolicyError(f"line {n}: mx {value!r} is not a host name or *.domain")
            mx.append(value.lower())
        elif name in ("version", "mode", "max_age"):
            if name in fields:
                raise PolicyError(f"line {n}: {name} given twice")
            fields[name] = value
    # RFC 8461 §3.2: field names and the known values are case-sensitive (%s"...").
    if fields.get("version") != "STSv1":
        raise PolicyError("version is not STSv1" if "version" in fields else "no version field")
    mode = fields.get("mode")
    if mode not in MODES:
        raise PolicyError(f"mode {mode!r} is not enforce, testing or none" if mode else "no mode field")
    age = fields.get("max_age", "")
    if not (age.isascii() and age.isdigit() and len(age) <= 10):
        raise PolicyError("max_age is not 1-10 digits" if age else "no max_age field")
    if mode != "none" and not mx:
        raise PolicyError("no mx field")  # §3.2: "one or more" mx for enforce and testing
    # §3.2: max_age is capped at 31557600 by senders; a larger value is read as the cap.
    return Policy(mode, min(int(age), MAX_AGE_LIMIT), tuple(mx))


def render_policy(policy: Policy) -> str:
    """The policy body as published: CRLF lines in the order of §3.2's example."""
    lines = ["version: STSv1", f"mode: {policy.mode}", *(f"mx: {m}" for m in policy.mx),
             f"max_age: {policy.max_age}"]
    return "".join(line + "\r\n" for line in lines)


def policy_id(body: str) -> str:
    """The ``id=`` for a policy body: changes exactly when the text does (§3.1: 1-32 alphanumerics).

    20 bytes of SHA-256 in base32 without padding: 32 characters, all A-Z and 2-7.
    """
    return base64.b32encode(hashlib.sha256(body.encode()).digest()[:20]).decode()


def parse_sts_record(text: str) -> str:
    """The ``id`` of an ``_mta-sts`` TXT record (RFC 8461 §3.1); :class:`PolicyError` if invalid.

    ``v=STSv1`` first, fields separated by ``;`` with optional white space around it,
    an ``id`` of 1-32 alphanumerics; other fields are extensions and ignored.
    """
    parts = [p.strip(" \t") for p in text.split(";")]
    if parts and parts[-1] == "":
        parts.pop()  # a trailing delimiter is allowed
    if not parts or parts[0] != "v=STSv1":
        raise PolicyError("does not start with v=STSv1")
    found: str | None = None
    for part in parts[1:]:
        name, eq, value = part.partition("=")
        if not eq or not _EXT_NAME.match(name) or not value:
            raise PolicyError(f"bad field {part!r}")
        if name == "id":
            if found is not None or not _ID.match(value):
                raise PolicyError(f"bad or repeated id {value!r}")
            found = value
    if found is None:
        raise PolicyError("no id field")
    return found


def is_sts_record(text: str) -> bool:
    """§3.1: records that do not begin with ``v=STSv1;`` are discarded before counting."""
    return text.startswith("v=STSv1;") or text.strip(" \t") == "v=STSv1"


# -- the [mta_sts] section ----------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class MtaStsSettings:
    mode: str = "testing"  # what we publish for our domains
    max_age: int = 7 * 86400
    mx: tuple[str, ...] = ()  # empty: the config's hostname
    report_mailbox: str = "postmaster"  # TLS-RPT rua: a local part (at each domain) or a full address
    enforce_outbound: bool = True  # honour other domains' policies when delivering
    ca_file: Path | None = None  # None: the system's trust store
    fetch_timeout: float = 20.0

    def mx_for(self, hostname: str) -> tuple[str, ...]:
        return self.mx or (hostname.lower().rstrip("."),)

    def policy(self, hostname: str) -> Policy:
        return Policy(self.mode, self.max_age, self.mx_for(hostname))

    def rua(self, domain: str) -> str:
        box = self.report_mailbox
        return f"mailto:{box if '@' in box else f'{box}@{domain}'}"


def parse_settings(cfg: Config, problems: list[str]) -> MtaStsSettings:
    sec = cfg.section("mta_sts", problems)
    d = MtaStsSettings()
    mode = sec.choice("mode", MODES, d.mode)
    max_age = sec.convert("max_age", parse_duration, float(d.max_age))
    if not 1 <= max_age <= MAX_AGE_LIMIT:
        sec.problem("max_age", f"must be between 1 second and {MAX_AGE_LIMIT} seconds (one year, RFC 8461 §3.2)")
        max_age = d.max_age
    mx = tuple(m.lower().rstrip(".") for m in sec.strings("mx"))
    for m in mx:
        if not _MX_PATTERN.match(m):
            sec.problem("mx", f"{m!r} is not a host name or *.domain (RFC 8461 §3.2)")
    if not mx and mode != "none" and not _DOMAIN.match(cfg.hostname):
        if "mode" in sec.data:
            sec.problem("mx", f"hostname {cfg.hostname!r} is not a full DNS name: set mx to the MX host names")
        else:
            # A laptop or test setup (hostname "localhost") that never asked for MTA-STS:
            # nothing to publish, and no reason to refuse to start.
            mode = "none"
    box = sec.get("report_mailbox", str, d.report_mailbox)
    if not box.strip() or any(c in box for c in " \t;,!") or box.count("@") > 1:
        sec.problem("report_mailbox", f"{box!r} is not a local part or an address")
        box = d.report_mailbox
    ca = sec.get("ca_file", str, "")
    ca_file: Path | None = None
    if ca:
        ca_file = Path(ca) if Path(ca).is_absolute() else cfg.path.parent / ca
        if not ca_file.is_file():
            sec.problem("ca_file", f"{ca_file} does not exist")
    timeout = sec.convert("fetch_timeout", parse_duration, d.fetch_timeout)
    if not 0 < timeout <= 300:
        sec.problem("fetch_timeout", "must be between 0 and 300 seconds")
        timeout = d.fetch_timeout
    s = MtaStsSettings(mode=mode, max_age=int(max_age), mx=mx, report_mailbox=box,
                       enforce_outbound=sec.get("enforce_outbound", bool, d.enforce_outbound),
                       ca_file=ca_file, fetch_timeout=timeout)
    sec.finish()
    return s


def published(cfg: Config) -> tuple[MtaStsSettings, str, str]:
    """Our settings, the policy body we serve for every domain, and its id (for the TXT record)."""
    s = parse_settings(cfg, [])
    body = render_policy(s.policy(cfg.hostname))
    return s, body, policy_id(body)
