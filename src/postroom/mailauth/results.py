"""The Authentication-Results header field (RFC 8601): writing ours, removing forged ones.

Writing: one field, one result per line (``spf``, each ``dkim`` signature, ``dmarc``,
``arc``), folded with CRLF + TAB, so that every line stays far below the 998-octet limit
of RFC 5322 §2.1.1 (comments are cut to :data:`COMMENT_MAX` characters, property values
to :data:`VALUE_MAX`). Decisions:

* **SPF**: one ``spf=`` result, the one DMARC used: the MAIL FROM identity's
  (``smtp.mailfrom``, or ``smtp.helo`` when a null reverse-path made it the HELO check,
  RFC 7208 §2.4), and the HELO identity's only when there is no MAIL FROM result
  (RFC 8601 §2.7.2 allows both, but readers that take "the" spf result would pick
  either, and the HELO one is not what DMARC judged).
* **DKIM**: a result per signature, with ``header.d``, ``header.i``, ``header.s``,
  ``header.a`` and ``header.b`` (RFC 6008: tells two signatures of one domain apart).
  An empty tuple writes nothing; the DKIM check reports ``dkim=none`` itself.
* Nothing checked at all: ``authserv-id; none`` (RFC 8601 §2.2).
* Text from outside (reasons, domains from the message) is made safe: comments keep
  printable ASCII with ``(``, ``)`` and ``\\`` escaped as quoted-pairs; values that are
  not an RFC 2045 token or a domain name are quoted (RFC 8601 §2.2 ``pvalue``).

Removing (RFC 8601 §5): every field of the header block whose authserv-id is ours,
whatever the case of its name or id, and whatever comments or folding come before the
id, is a forgery made before the message reached us and goes, continuation lines
included. Lines end at LF (a CR before it belongs to the line ending), as in
:mod:`postroom.mime.headers`; the SMTP server has turned bare CRs into CRLF before.
"""

from __future__ import annotations

import re
from functools import lru_cache

from .model import ArcResult, Checks, DkimResult, DmarcResult, SpfResult

FIELD = "Authentication-Results"
COMMENT_MAX = 200
VALUE_MAX = 255

# RFC 2045 §5.1 token: printable ASCII but SPACE and tspecials.
_TOKEN = re.compile(r'^[!#$%&\'*+\-.0-9A-Z^_`a-z{|}~]+$')
# RFC 8601 §2.2 pvalue's "[ [ local-part ] "@" ] domain-name" (dot-atom local part).
_ADDRESS = re.compile(r"^(?:[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*)?@"
                      r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*$")
_RESULT = re.compile(r"^[a-z]+$")


def _printable(text: str) -> str:
    """One line of printable ASCII: controls and line breaks become spaces, other
    characters ``?``, runs of white space one space."""
    if text.isascii() and text.isprintable():  # the usual case, at C speed
        return " ".join(text.split())
    out = "".join(c if " " <= c <= "~" else (" " if c in "\r\n\t\v\f" or c < " " else "?") for c in text)
    return " ".join(out.split())


@lru_cache(maxsize=4096)  # pure: the same reasons, domains and selectors on every message of a sender
def comment(text: str) -> str:
    """``(text)`` as an RFC 5322 §3.2.2 comment, or ``""`` for no text."""
    text = _printable(text)[:COMMENT_MAX].rstrip()
    if not text:
        return ""
    return "(" + re.sub(r"([()\\])", r"\\\1", text) + ")"


@lru_cache(maxsize=4096)
def value(text: str) -> str:
    """A property value (RFC 8601 §2.2 ``pvalue``): as it is when a token or an address,
    a quoted-string otherwise."""
    text = _printable(text)[:VALUE_MAX]
    if _TOKEN.match(text) or _ADDRESS.match(text):
        return text
    return '"' + re.sub(r'(["\\])', r"\\\1", text) + '"'


def _result(result: str) -> str:
    r = result.strip().lower()
    return r if _RESULT.match(r) else "permerror"


def _resinfo(method: str, result: str, note: str, props: list[tuple[str, str]]) -> list[str]:
    parts = [f"{method}={_result(result)}"]
    c = comment(note)
    if c:
        parts.append(c)
    parts += [f"{name}={value(v)}" for name, v in props if v]
    return parts


# The SPF, DMARC and ARC lines of a sender seen before are the same result objects (or
# equal ones) on each of its messages: each is folded once (a DKIM line carries header.b,
# which differs per message, and is not kept).
@lru_cache(maxsize=1024)
def _folded_spf(r: SpfResult) -> str:
    return _fold(_spf(r))


@lru_cache(maxsize=1024)
def _folded_dmarc(r: DmarcResult) -> str:
    return _fold(_dmarc(r))


@lru_cache(maxsize=256)
def _folded_arc(r: ArcResult) -> str:
    return _fold(_arc(r))


def _spf(r: SpfResult) -> list[str]:
    prop = "smtp.helo" if r.scope == "helo" else "smtp.mailfrom"
    return _resinfo("spf", r.result, r.reason, [(prop, r.domain)])


def _dkim(r: DkimResult) -> list[str]:
    return _resinfo("dkim", r.result, r.reason, [("header.d", r.domain), ("header.i", r.identity),
                                                 ("header.s", r.selector), ("header.a", r.algorithm),
                                                 ("header.b", r.header_b)])


def _dmarc(r: DmarcResult) -> list[str]:
    if r.published_policy:
        note = f"p={r.published_policy}" + (f" policy={r.policy}" if r.policy != r.published_policy else "")
        if r.result not in ("pass", "fail"):
            note += f"; {r.reason}"
    else:
        note = r.reason
    return _resinfo("dmarc", r.result, note, [("header.from", r.from_domain)])


def _arc(r: ArcResult) -> list[str]:
    note = "; ".join(x for x in (f"i={r.instances}" if r.instances else "", r.reason) if x)
    return _resinfo("arc", r.result, note, [])


def _fold(parts: list[str], width: int = 78) -> str:
    """One resinfo on its own line(s): a new line (CRLF TAB) where the next part would
    pass ``width``; a part is never split, and none is longer than a few hundred."""
    lines = ["\t" + parts[0]]
    for p in parts[1:]:
        if len(lines[-1]) + 1 + len(p) > width:
            lines.append("\t" + p)
        else:
            lines[-1] += " " + p
    return "\r\n".join(lines)


def authentication_results(authserv_id: str, checks: Checks) -> bytes:
    """Our Authentication-Results field, folded and CRLF-terminated (RFC 8601 §2.2)."""
    resinfos: list[str] = []
    spf = checks.spf or checks.helo
    if spf is not None:
        resinfos.append(_folded_spf(spf))
    resinfos += [_fold(_dkim(d)) for d in checks.dkim]
    if checks.dmarc is not None:
        resinfos.append(_folded_dmarc(checks.dmarc))
    if checks.arc is not None:
        resinfos.append(_folded_arc(checks.arc))
    head = f"{FIELD}: {value(authserv_id)};"
    if not resinfos:
        return (head + " none\r\n").encode("ascii")
    return (head + "\r\n" + ";\r\n".join(resinfos) + "\r\n").encode("ascii")


# -- removing forged fields ----------------------------------------------------------

_LINE = re.compile(rb"[^\n]*\n|[^\n]+\Z")
_NAME = re.compile(rb"^authentication-results[ \t]*:", re.IGNORECASE)
_TSPECIALS = b'()<>@,;:\\"/[]?= \t\r\n'


def _skip_cfws(v: bytes, i: int) -> int:
    """Past white space, line breaks and (nested) comments, RFC 5322 §3.2.2."""
    n = len(v)
    while i < n:
        c = v[i]
        if c in b" \t\r\n":
            i += 1
        elif c == 0x28:  # "("
            depth = 0
            while i < n:
                c = v[i]
                if c == 0x5C:  # "\": a quoted-pair, the next octet is taken literally
                    i += 1
                elif c == 0x28:
                    depth += 1
                elif c == 0x29:
                    depth -= 1
                    if depth == 0:
                        i += 1
                        break
                i += 1
        else:
            break
    return i


def authserv_id(field_value: bytes) -> bytes | None:
    """The authserv-id at the start of an Authentication-Results value (RFC 8601 §2.2:
    ``[CFWS] authserv-id``, a token or a quoted-string), lower case; ``None`` if none."""
    i = _skip_cfws(field_value, 0)
    n = len(field_value)
    if i < n and field_value[i] == 0x22:  # quoted-string
        out = bytearray()
        i += 1
        while i < n and field_value[i] != 0x22:
            if field_value[i] == 0x5C and i + 1 < n:
                i += 1
            if field_value[i] not in b"\r\n":
                out += field_value[i:i + 1]
            i += 1
        return bytes(out).strip().lower() or None
    s = i
    while i < n and field_value[i] not in _TSPECIALS:
        i += 1
    return field_value[s:i].lower() or None


def strip_forged(message: bytes, authserv_id_: str) -> tuple[bytes, int]:
    """``message`` without the Authentication-Results fields that claim our authserv-id
    (RFC 8601 §5), and how many were removed. Everything else stays as it was, byte for
    byte, the body above all."""
    head = message.find(b"\n\r\n")  # the header block ends at or after the first empty line...
    lf = message.find(b"\n\n", 0, head if head >= 0 else len(message))
    head = lf if lf >= 0 else head
    if b"authentication-results" not in message[:head if head >= 0 else len(message)].lower():
        return message, 0  # ...and nearly all mail has no such field there: nothing to look at
    ours = _same_id(authserv_id_.encode("utf-8", "replace"))
    kept: list[bytes] = []
    field: list[bytes] = []  # the lines of the field being looked at
    removed = 0
    body = len(message)

    def flush() -> None:
        nonlocal removed
        if field:
            m = _NAME.match(field[0])
            found = authserv_id(b"".join(field)[m.end():]) if m else None
            if found is not None and _same_id(found) == ours:
                removed += 1
            else:
                kept.extend(field)
            field.clear()

    for m in _LINE.finditer(message):
        line = m.group()
        if line in (b"\n", b"\r\n"):  # the empty line: the header block ends (RFC 5322 §2.1)
            body = m.start()
            break
        if line[:1] in (b" ", b"\t") and field:
            field.append(line)  # a continuation line (§2.2.3)
        else:
            flush()
            field.append(line)
    flush()
    if not removed:
        return message, 0
    return b"".join(kept) + message[body:], removed


def _same_id(authserv: bytes) -> bytes:
    """Ids compare without case and without a final dot: ``MAIL.Example.org.`` is ours too."""
    return authserv.strip().lower().rstrip(b".")
