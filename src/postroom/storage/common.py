"""Rules every store backend applies the same way, kept in one place so they cannot drift.

INBOX's case (RFC 3501 §5.1), the text form of a flag set, INTERNALDATE as stored (UTC
seconds and the zone's offset), bare LF line ends (stored as CRLF), and the JSON text of
a parsed MIME structure. Both the SQLite and the PostgreSQL store use these: a message
moved from one to the other (``postroom migrate-store``) reads back identically.
"""

from __future__ import annotations

import json
import re
import time
from datetime import datetime
from typing import Any

import orjson

from .models import HIERARCHY_SEPARATOR

BARE_LF = re.compile(rb"(?<!\r)\n")  # a LF without its CR, made CRLF before storing


def dump_structure(d: dict[str, Any]) -> str:
    """JSON text of a parsed structure; orjson is several times faster on the delivery path.

    Header text with 8-bit garbage carries lone surrogates (see postroom.mime.model),
    which orjson refuses: those few go through the json module, which escapes them.
    """
    try:
        return orjson.dumps(d).decode()
    except orjson.JSONEncodeError:
        return json.dumps(d, separators=(",", ":"))


def load_structure(text: str | bytes) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:  # escaped lone surrogates
        return json.loads(text)


def norm_mailbox(name: str) -> str:
    # RFC 3501 §5.1: INBOX is case-insensitive; everything else is case-sensitive.
    if name.upper() == "INBOX":
        return "INBOX"
    if name[:6].upper() == "INBOX" + HIERARCHY_SEPARATOR:
        return "INBOX" + name[5:]
    return name


def flags_str(flags: frozenset[str] | set[str]) -> str:
    """A flag set as stored: sorted, space-separated (equal sets give equal text)."""
    if not flags:  # most deliveries: no sort, no join on the writer thread
        return ""
    return " ".join(sorted(flags))


def idate(internaldate: datetime | None) -> tuple[int, int]:
    """INTERNALDATE as (UTC seconds, zone offset in minutes); None: now, in the server's zone
    (cheaper than datetime on the delivery path)."""
    if internaldate is None:
        now = time.time()
        return int(now), time.localtime(now).tm_gmtoff // 60
    offset = internaldate.utcoffset()
    return int(internaldate.timestamp()), int(offset.total_seconds() // 60) if offset is not None else 0
