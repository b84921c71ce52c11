"""Envelope paths and ESMTP parameters (RFC 5321 §4.1.2, RFC 6531 §3.3).

``parse_path("<user@example.org> SIZE=10")`` returns the :class:`Path` and the
parameter text. The parser is strict about syntax and records the address forms
that have turned servers into open relays so :mod:`postroom.smtp.policy` can refuse
them: source routes (``<@a,@b:u@c>``), quoted local parts, "%" and "!" in local
parts, and address literals (``u@[192.0.2.1]``). A trailing dot in the domain is a
syntax error (RFC 5321 §4.1.2 has no root label).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# RFC 5322 §3.2.3 atext; RFC 6531 §3.3 adds UTF8-non-ascii (checked by _is_utf8).
_ATEXT = r"A-Za-z0-9!#$%&'*+/=?^_`{|}~\-\u0080-\U0010ffff"
_DOT_STRING = re.compile(rf"[{_ATEXT}]+(?:\.[{_ATEXT}]+)*")
# RFC 5321 §4.1.2 sub-domain (LDH) or an RFC 6531 U-label.
_LABEL = re.compile(r"(?:[A-Za-z0-9\u0080-\U0010ffff](?:[A-Za-z0-9\-\u0080-\U0010ffff]*"
                    r"[A-Za-z0-9\u0080-\U0010ffff])?)")
_KEYWORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9\-]*")
_VALUE = re.compile(r"[!-<>-~\u0080-\U0010ffff]+")  # RFC 5321 esmtp-value (+ RFC 6531)

MAX_LOCAL = 64  # RFC 5321 §4.5.3.1.1
MAX_DOMAIN = 255  # RFC 5321 §4.5.3.1.2
MAX_PATH = 256  # RFC 5321 §4.5.3.1.3


class AddressError(ValueError):
    """The path is not valid RFC 5321 syntax; the message is safe to show."""


@dataclass(frozen=True, slots=True)
class Path:
    local: str  # as given, unquoted (the content of a quoted string, escapes removed)
    domain: str  # lower case; "" only for a bare <postmaster>
    quoted: bool = False
    source_route: bool = False
    literal: bool = False  # domain is an address literal "[...]"

    @property
    def address(self) -> str:
        """``local@domain`` with the domain in lower case (the form lookups use)."""
        return f"{self.local}@{self.domain}" if self.domain else self.local

    @property
    def key(self) -> str:
        """Lower-cased address for account and alias lookups."""
        return self.address.lower()

    @property
    def is_ascii(self) -> bool:
        return self.address.isascii()

    def __str__(self) -> str:
        if self.quoted:
            esc = self.local.replace("\\", "\\\\").replace('"', '\\"')
            return f'"{esc}"@{self.domain}'
        return self.address


NULL = Path("", "")  # the null reverse-path "<>"


def parse_path(text: str, *, allow_null: bool = False, allow_bare_postmaster: bool = False
               ) -> tuple[Path, str]:
    """Parse ``<path>`` at the start of ``text``; return it and the rest (parameters)."""
    s = text.lstrip(" ")
    if not s.startswith("<"):
        raise AddressError("address must be enclosed in <>")
    if s.startswith("<>"):
        if not allow_null:
            raise AddressError("empty address")
        return NULL, _rest(s[2:])
    i = 1
    route = False
    if s[i:i + 1] == "@":  # A-d-l ":" (RFC 5321 §4.1.2), source route
        j = s.find(":", i)
        if j < 0 or ">" in s[i:j]:
            raise AddressError("malformed source route")
        for hop in s[i:j].split(","):
            if not hop.startswith("@") or not _valid_domain(hop[1:])[0]:
                raise AddressError("malformed source route")
        route = True
        i = j + 1
    quoted = False
    if s[i:i + 1] == '"':  # Quoted-string (RFC 5321 §4.1.2)
        quoted = True
        i += 1
        buf = []
        while True:
            if i >= len(s):
                raise AddressError("unterminated quoted string")
            c = s[i]
            if c == "\\":
                if i + 1 >= len(s) or not (" " <= s[i + 1] <= "~"):
                    raise AddressError("bad escape in quoted string")
                buf.append(s[i + 1])
                i += 2
                continue
            if c == '"':
                i += 1
                break
            if c < " " or c == "\x7f":
                raise AddressError("control character in address")
            buf.append(c)
            i += 1
        local = "".join(buf)
    else:
        j = i
        while j < len(s) and s[j] not in "@>":
            j += 1
        local = s[i:j]
        i = j
        if not _DOT_STRING.fullmatch(local):
            raise AddressError("invalid local part")
    if s[i:i + 1] == ">":
        if allow_bare_postmaster and not quoted and not route and local.lower() == "postmaster":
            return Path("postmaster", ""), _rest(s[i + 1:])  # RFC 5321 §4.1.1.3
        raise AddressError("address has no domain")
    if s[i:i + 1] != "@":
        raise AddressError("invalid address")
    end = s.find(">", i)
    if end < 0:
        raise AddressError("missing >")
    domain = s[i + 1:end]
    ok, literal = _valid_domain(domain)
    if not ok:
        if domain.endswith("."):
            raise AddressError("domain must not end with a dot")
        raise AddressError("invalid domain")
    if len(local.encode()) > MAX_LOCAL or len(domain.encode()) > MAX_DOMAIN or end + 1 > MAX_PATH + 2:
        raise AddressError("address too long")
    return Path(local, domain.lower(), quoted, route, literal), _rest(s[end + 1:])


def _valid_domain(domain: str) -> tuple[bool, bool]:
    """(valid, is_address_literal)."""
    if domain.startswith("[") and domain.endswith("]"):
        # RFC 5321 §4.1.3: IPv4, "IPv6:" + address, or a General-address-literal.
        inner = domain[1:-1]
        return bool(inner) and all(" " < c < "\x7f" and c not in "[]\\" for c in inner), True
    if not domain or len(domain) > MAX_DOMAIN:
        return False, False
    return all(_LABEL.fullmatch(p) for p in domain.split(".")), False


def _rest(s: str) -> str:
    if s and not s.startswith(" "):
        raise AddressError("garbage after address")
    return s.strip(" ")


def parse_params(text: str) -> dict[str, str | None]:
    """``SIZE=1000 BODY=8BITMIME SMTPUTF8`` → {"SIZE": "1000", "BODY": "8BITMIME", "SMTPUTF8": None}.

    Keywords are case-insensitive (stored upper case); a repeated keyword is an error.
    """
    out: dict[str, str | None] = {}
    for item in text.split():
        key, eq, value = item.partition("=")
        if not _KEYWORD.fullmatch(key):
            raise AddressError("invalid parameter")
        if eq and not _VALUE.fullmatch(value):
            raise AddressError("invalid parameter value")
        k = key.upper()
        if k in out:
            raise AddressError("duplicate parameter")
        out[k] = value if eq else None
    return out
