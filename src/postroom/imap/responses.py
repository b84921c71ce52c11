"""What handlers return, and the small formatting helpers of RFC 3501 §7."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import AsyncIterator

from . import names
from .parser.base import MONTHS


class After(enum.Enum):
    """Something the glue must do once the tagged reply is written."""

    NOTHING = 0
    STARTTLS = 1  # RFC 3501 §6.2.1: negotiate TLS right after the OK
    LOGOUT = 2  # close the connection
    UNAUTHENTICATE = 3  # RFC 8437: back before login; the login timer starts again
    COMPRESS = 4  # RFC 4978 §3: deflate both directions right after the OK


@dataclass(slots=True)
class Reply:
    """Untagged lines (each complete, CRLF included), then ``tag status [code] text``.

    ``stream`` yields more untagged data (FETCH of many messages) written before the
    tagged line; it may change ``status``/``code``/``text`` while it runs.
    """

    text: str = "Completed"
    status: bytes = b"OK"
    code: bytes | None = None
    untagged: list[bytes] = field(default_factory=list)
    stream: AsyncIterator[bytes] | None = None
    after: After = After.NOTHING

    def tagged(self, tag: bytes) -> bytes:
        code = b"[" + self.code + b"] " if self.code else b""
        return tag + b" " + self.status + b" " + code + self.text.encode() + b"\r\n"


def no_room() -> Reply:
    """A write the store's disk has no room for: Dovecot's reply (RFC 5530 OVERQUOTA)."""
    return Reply("Not enough disk space", b"NO", b"OVERQUOTA")


def untagged(line: bytes) -> bytes:
    return b"* " + line + b"\r\n"


def flag_list(flags: frozenset[str] | set[str] | list[str] | tuple[str, ...]) -> bytes:
    return b"(" + " ".join(sorted(flags)).encode("ascii", "replace") + b")"


_FLAG_LISTS: dict[tuple[frozenset[str], bool], bytes] = {}


def flag_list_cached(flags: frozenset[str], recent: bool = False) -> bytes:
    """``flag_list(flags | {"\\Recent"} if recent else flags)``, formatted once per flag set:
    a mailbox has a handful of distinct sets, FETCH FLAGS formats one per message."""
    key = (flags, recent)
    got = _FLAG_LISTS.get(key)
    if got is None:
        if len(_FLAG_LISTS) >= 4096:
            _FLAG_LISTS.clear()  # keywords made up by clients: stay bounded
        got = _FLAG_LISTS[key] = flag_list(flags | {"\\Recent"} if recent else flags)
    return got


def mailbox_wire(name: str) -> bytes:
    """A mailbox name for LIST/LSUB/STATUS: modified UTF-7, quoted (§5.1.3, §9); UTF-8
    once the session enabled UTF8=ACCEPT (RFC 6855 §3: no modified UTF-7 then)."""
    return names.quoted(name)


def internaldate(dt: datetime) -> bytes:
    """date-time = DQUOTE date-day-fixed "-" date-month "-" date-year SP time SP zone DQUOTE (§9)."""
    off = dt.utcoffset()
    minutes = int(off.total_seconds() // 60) if off is not None else 0
    sign = "-" if minutes < 0 else "+"
    minutes = abs(minutes)
    return (f'"{dt.day:2d}-{MONTHS[dt.month - 1]}-{dt.year:04d} {dt.hour:02d}:{dt.minute:02d}:{dt.second:02d} '
            f'{sign}{minutes // 60:02d}{minutes % 60:02d}"').encode()


def literal(data: bytes) -> bytes:
    return b"{%d}\r\n" % len(data) + data
