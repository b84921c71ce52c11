"""Checks every admin form and API body shares: names, addresses, hostile text.

Services call these before touching the store, so a bad value is refused with an
:class:`~postroom.web.errors.Invalid` naming its field and nothing changes. The rules
are the CLI's (``postroom domain/user/alias``) plus what a browser can send that a
shell cannot: CR/LF (header injection into a queue or an alias), control characters,
``..`` (a path-looking name) and oversized values.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from ..errors import Invalid

NAME_MAX = 253  # a DNS name (RFC 1035 §2.3.4)
ADDRESS_MAX = 320  # local part 64 + "@" + domain 255 (RFC 5321 §4.5.3.1)
PASSWORD_MIN = 10
PASSWORD_MAX = 1024
_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_LOCAL = re.compile(r"^[a-z0-9!#$%&'*+=?^_`{|}~.-]{1,64}$")  # no "/": addresses appear in URL paths


def clean_text(value: str, field: str, limit: int) -> str:
    """``value`` stripped; refused when empty, too long or holding control characters."""
    if len(value) > limit:
        raise Invalid(f"at most {limit} characters", field)
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise Invalid("line breaks and control characters are not allowed here", field)
    value = value.strip()
    if not value:
        raise Invalid("this field is required", field)
    return value


def domain_name(value: str, field: str = "name") -> str:
    """A host name in lower case ASCII (IDNA for an internationalised one), no trailing dot."""
    name = clean_text(value, field, NAME_MAX + 1).lower().rstrip(".")
    if ".." in name:
        raise Invalid("a domain name cannot contain '..'", field)
    if not name.isascii():
        try:
            name = name.encode("idna").decode("ascii")
        except UnicodeError:
            raise Invalid(f"{value.strip()!r} is not a domain name", field) from None
    labels = name.split(".")
    if len(name) > NAME_MAX or not all(_LABEL.match(label) for label in labels) or (
            len(labels) < 2 and name != "localhost"):
        raise Invalid(f"{value.strip()!r} is not a domain name like example.org", field)
    return name


def address(value: str, field: str = "address") -> str:
    """``local@domain`` in lower case (the form the store keys accounts and aliases by)."""
    text = clean_text(value, field, ADDRESS_MAX + 1).lower()
    local, at, domain = text.rpartition("@")
    if not at or not _LOCAL.match(local) or local.startswith(".") or local.endswith(".") or ".." in local:
        raise Invalid(f"{text!r} is not an address like user@example.org", field)
    return f"{local}@{domain_name(domain, field)}"


def password(value: str, account: str, field: str = "password") -> str:
    """A new password above the floor: long enough, not made of a few characters, not the name."""
    if len(value) > PASSWORD_MAX:
        raise Invalid(f"at most {PASSWORD_MAX} characters", field)
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise Invalid("a password cannot contain line breaks or control characters", field)
    if len(value) < PASSWORD_MIN:
        raise Invalid(f"use at least {PASSWORD_MIN} characters", field)
    if len(set(value)) < 5:
        raise Invalid("use at least 5 different characters", field)
    local = account.partition("@")[0]
    if len(local) >= 3 and local in value.lower():
        raise Invalid("the password must not contain the user name", field)
    return value


def count(value: str | int | None, field: str, limit: int = 2**62) -> int | None:
    """A limit: empty/None → unlimited, else a whole number ≥ 0."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, str):
        text = clean_text(value, field, 32)
        if not text.isdigit():
            raise Invalid("a whole number (0 or more), or empty for unlimited", field)
        value = int(text)
    if value < 0 or value > limit:
        raise Invalid("a whole number (0 or more), or empty for unlimited", field)
    return value


def size(value: str | int | None, field: str) -> int | None:
    """A storage limit in bytes, as ``500M``/``2G``/``1048576``; empty → unlimited."""
    from ...config import parse_size

    if value is None or isinstance(value, int):
        return count(value, field)
    if not value.strip():
        return None
    text = clean_text(value, field, 32)
    try:
        n = parse_size(text)
    except ValueError:
        raise Invalid("a size such as 500M, 2G or 1048576, or empty for unlimited", field) from None
    if n < 0:
        raise Invalid("a size such as 500M, 2G or 1048576, or empty for unlimited", field)
    return n


def utc(ts: float, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
    """A time for the admin pages: UTC, to the second (servers and their logs keep UTC)."""
    return datetime.fromtimestamp(ts, UTC).strftime(fmt)
