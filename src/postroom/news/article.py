"""Article checks and the header edits made on acceptance (RFC 5536, RFC 5537). Pure: bytes
in, a :class:`Prepared` article or a :class:`PostRefused` out; no store, no I/O.

A local POST (RFC 5537 §3.5, injecting agent) may leave out Message-ID, Date and Path: we
add ``Message-ID: <random@path_host>``, the current Date and ``Path: path_host!not-for-mail``.
An article from a peer (IHAVE/TAKETHIS, §3.6 relaying agent) must carry all six required
headers. Either way our path identity is prepended to Path (§3.2) and any Xref is removed:
Xref is ours, made on output from where the article is stored (§3.2.1 of RFC 5536).
"""

from __future__ import annotations

import email.utils
import re
import secrets
import time
from dataclasses import dataclass

from ..mime.headers import b2s, split_header
from .records import PostRefused, group_name_problem

# RFC 5536 §3.1: the mandatory header fields. Each may occur only once (§3: "MUST NOT
# occur more than once", which we enforce for these and for the other fields we act on).
REQUIRED = ("date", "from", "message-id", "newsgroups", "path", "subject")
SINGLE = REQUIRED + ("control", "approved", "xref", "supersedes", "followup-to")
MAX_MSGID = 250  # RFC 5536 §3.1.3: a Message-ID is at most 250 octets
# RFC 5536 §3.1.3 msg-id: "<" id-left "@" id-right ">", printable US-ASCII without ">" and
# whitespace. (We do not police dot-atom details: peers pass such IDs on unchanged.)
_MSGID_RE = re.compile(rb"<[\x21-\x3d\x3f-\x7e]+@[\x21-\x3d\x3f-\x7e]+>")
_FWS = re.compile(r"\s+")
FUTURE_SLACK = 24 * 3600  # RFC 5537 §3.4: refuse Dates this far in the future


def valid_message_id(mid: str | bytes) -> bool:
    b = mid.encode("utf-8", "surrogateescape") if isinstance(mid, str) else mid
    return len(b) <= MAX_MSGID and _MSGID_RE.fullmatch(b) is not None and b.count(b"@") >= 1


def new_message_id(path_host: str) -> str:
    """RFC 5537 §3.5: a Message-ID the injecting agent makes: unique by its randomness."""
    return f"<{secrets.token_hex(12)}@{path_host}>"


def unfold(value: bytes) -> str:
    """A header value as one line (RFC 5322 §2.2.3 unfolding; tabs kept as spaces)."""
    return b2s(value).replace("\r\n", "").replace("\n", "").replace("\t", " ").strip()


@dataclass(frozen=True, slots=True)
class Prepared:
    """An accepted article: ``raw`` is what is stored (CRLF, our Path, no Xref)."""

    raw: bytes
    message_id: str
    newsgroups: tuple[str, ...]  # valid names, deduplicated, in the order given
    poster: str | None  # the From address, lower-case (for cancel authorship)
    control: str | None  # the Control field, unfolded
    approved: str | None


def header_fields(raw: bytes) -> tuple[list[tuple[str, bytes]], int]:
    """``[(lower-case name, raw value)]`` and the body start of an article."""
    fields, body = split_header(raw, 0, len(raw))
    return [(b2s(f.name).lower(), f.value) for f in fields], body


def header_value(raw: bytes, name: str) -> str | None:
    """The first ``name`` field of ``raw``'s header, unfolded; None when absent."""
    name = name.lower()
    for n, v in header_fields(raw)[0]:
        if n == name:
            return unfold(v)
    return None


#: The header fields an overview line carries (RFC 3977 §8.4.2), in its order.
OVERVIEW_HEADERS = ("subject", "from", "date", "message-id", "references")


def overview_fields(raw: bytes) -> tuple[str, str, str, str, str, int]:
    """(Subject, From, Date, Message-ID, References, :lines) of a stored article: the
    first of each field, unfolded ("" when absent), and the body's line count (what the
    parsed structure's ``lines`` holds). Computed once, when the article is stored."""
    vals = dict.fromkeys(OVERVIEW_HEADERS, "")
    fields, body = header_fields(raw)
    for name, value in fields:
        if name in vals and not vals[name]:
            vals[name] = unfold(value)
    return (vals["subject"], vals["from"], vals["date"], vals["message-id"], vals["references"],
            raw.count(b"\n", body))


def _crlf(raw: bytes) -> bytes:
    if raw.count(b"\n") != raw.count(b"\r\n"):
        raw = re.sub(rb"\r?\n", b"\r\n", raw)
    return raw


def prepare(raw: bytes, *, local: bool, path_host: str, max_crosspost: int,
            now: float | None = None, code: int = 441) -> Prepared:
    """Check ``raw`` and make the bytes to store; PostRefused(``code``) when it is refused.

    ``local``: a POST from a reader (may omit Message-ID, Date, Path). ``code``: the reply
    for a refusal (441 for POST, 437 for IHAVE, 439 for TAKETHIS).
    """
    now = time.time() if now is None else now
    raw = _crlf(raw)
    fields, body = split_header(raw, 0, len(raw))
    if body == len(raw) and not raw.endswith(b"\r\n\r\n") and raw:
        # No empty line: everything is header. Give it one so the edits below have a place.
        raw = raw if raw.endswith(b"\r\n") else raw + b"\r\n"
        raw += b"\r\n"
        fields, body = split_header(raw, 0, len(raw))
    seen: dict[str, bytes] = {}
    for f in fields:
        name = b2s(f.name).lower()
        if not f.name or any(c <= 0x20 or c >= 0x7F for c in f.name):
            raise PostRefused(code, "Malformed header field name")
        if name in SINGLE and name in seen:
            raise PostRefused(code, f"Duplicate {b2s(f.name)} header (RFC 5536 §3)")
        seen.setdefault(name, f.value)
    add: list[bytes] = []
    # Message-ID (RFC 5536 §3.1.3)
    if "message-id" in seen:
        mid_b = unfold(seen["message-id"]).encode("utf-8", "surrogateescape")
        if not valid_message_id(mid_b):
            raise PostRefused(code, "Malformed Message-ID (RFC 5536 §3.1.3)")
        mid = mid_b.decode("ascii")
    elif local:
        mid = new_message_id(path_host)
        add.append(b"Message-ID: " + mid.encode())
    else:
        raise PostRefused(code, "Missing Message-ID header (RFC 5536 §3.1.3)")
    # Date (RFC 5536 §3.1.1)
    if "date" in seen:
        try:
            when = email.utils.parsedate_to_datetime(unfold(seen["date"]))
        except (TypeError, ValueError, IndexError):
            raise PostRefused(code, "Malformed Date header (RFC 5536 §3.1.1)") from None
        if when.tzinfo is not None and when.timestamp() > now + FUTURE_SLACK:
            raise PostRefused(code, "Date is in the future (RFC 5537 §3.4)")
    elif local:
        add.append(b"Date: " + email.utils.formatdate(now, usegmt=True).encode())
    else:
        raise PostRefused(code, "Missing Date header (RFC 5536 §3.1.1)")
    # From (RFC 5536 §3.1.2): one address at least
    if "from" not in seen:
        raise PostRefused(code, "Missing From header (RFC 5536 §3.1.2)")
    addrs = [a for _n, a in email.utils.getaddresses([unfold(seen["from"])]) if "@" in a]
    if not addrs:
        raise PostRefused(code, "From header has no address (RFC 5536 §3.1.2)")
    poster = addrs[0].lower()
    if "subject" not in seen:
        raise PostRefused(code, "Missing Subject header (RFC 5536 §3.1.4)")
    # Newsgroups (RFC 5536 §3.1.4): comma list, FWS allowed around names
    if "newsgroups" not in seen:
        raise PostRefused(code, "Missing Newsgroups header (RFC 5536 §3.1.4)")
    groups: list[str] = []
    for g in _FWS.sub("", unfold(seen["newsgroups"])).split(","):
        if not g:
            continue
        if group_name_problem(g) is not None:
            raise PostRefused(code, f"Bad newsgroup name in Newsgroups: {g[:80]}")
        if g not in groups:
            groups.append(g)
    if not groups:
        raise PostRefused(code, "Newsgroups header names no group")
    if len(groups) > max_crosspost:
        raise PostRefused(code, f"Too many newsgroups ({len(groups)}; at most {max_crosspost})")
    # Path (RFC 5537 §3.2): prepend our path identity; a local post without one starts it.
    out: list[bytes] = []
    head_end = fields[-1].end if fields else 0
    for f in fields:
        name = b2s(f.name).lower()
        if name == "xref":
            continue  # ours on output only (RFC 5536 §3.2.14)
        if name == "path":
            old = unfold(f.value).encode("utf-8", "surrogateescape")
            if not old:
                raise PostRefused(code, "Empty Path header (RFC 5536 §3.1.5)")
            out.append(b"Path: " + path_host.encode() + b"!" + old + b"\r\n")
            continue
        out.append(raw[f.start:f.end] if raw[f.end - 2:f.end] == b"\r\n" else raw[f.start:f.end] + b"\r\n")
    if "path" not in seen:
        if not local:
            raise PostRefused(code, "Missing Path header (RFC 5536 §3.1.5)")
        add.append(b"Path: " + path_host.encode() + b"!not-for-mail")
    out.extend(a + b"\r\n" for a in add)
    rest = raw[head_end:]  # the empty line and the body (lines skipped as no field dropped)
    stored = b"".join(out) + (rest if rest.startswith(b"\r\n") else b"\r\n" + raw[body:])
    control = unfold(seen["control"]) if "control" in seen else None
    approved = unfold(seen["approved"]) if "approved" in seen else None
    return Prepared(stored, mid, tuple(groups), poster, control, approved)


def with_xref(raw: bytes, path_host: str, locations: list[tuple[str, int]], body: int | None = None) -> bytes:
    """``raw`` with ``Xref: path_host group:number ...`` added at the end of its header
    (RFC 5536 §3.2.14), for ARTICLE/HEAD output. ``body``: where the body starts, when the
    caller has split the header already."""
    if not locations:
        return raw
    line = xref_value(path_host, locations).encode() + b"\r\n"
    if body is None:
        _fields, body = split_header(raw, 0, len(raw))
    # body starts after the empty line; insert before that empty line
    i = body - 2 if raw[body - 2:body] == b"\r\n" and body >= 2 else body
    return raw[:i] + b"Xref: " + line + raw[i:]


def xref_value(path_host: str, locations: list[tuple[str, int]]) -> str:
    return path_host + " " + " ".join(f"{g}:{n}" for g, n in locations)
