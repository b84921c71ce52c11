"""RFC 5322 §3.4 address lists → ENVELOPE address tuples (RFC 9051 §7.5.2).

``email.utils.getaddresses`` flattens groups and ``email.headerregistry``
decodes encoded words, but ENVELOPE needs group markers and the raw text, so
this is a small tolerant parser.  Repairs follow Dovecot (``message-address.c``)
so ENVELOPE output matches it: a missing domain becomes ``MISSING_DOMAIN``,
an empty ``<>`` gives ``MISSING_MAILBOX``/``MISSING_DOMAIN``, a domain that
fails to parse gives ``SYNTAX_ERROR``, and a comment stands in for a missing
display name.
"""

from __future__ import annotations

import re

from .headers import b2s
from .model import Address

__all__ = ["parse_address_list"]

MISSING_MAILBOX = "MISSING_MAILBOX"
MISSING_DOMAIN = "MISSING_DOMAIN"
SYNTAX_ERROR = "SYNTAX_ERROR"

_SPECIALS = b'()<>[]:;@\\,."'

# Token kinds
_ATOM, _QUOTED, _COMMENT, _LITERAL, _SPECIAL = range(5)
_Token = tuple[int, bytes]


def _tokenize(v: bytes) -> list[_Token]:
    out: list[_Token] = []
    i, n = 0, len(v)
    while i < n:
        c = v[i]
        if c in b" \t\r\n":
            i += 1
        elif c == 0x22:  # quoted-string
            i += 1
            buf = bytearray()
            while i < n and v[i] != 0x22:
                if v[i] == 0x5C and i + 1 < n:
                    i += 1
                if v[i] not in b"\r\n":
                    buf.append(v[i])
                i += 1
            i += 1
            out.append((_QUOTED, bytes(buf)))
        elif c == 0x28:  # comment, may nest
            depth, i0 = 0, i
            while i < n:
                if v[i] == 0x5C:
                    i += 1
                elif v[i] == 0x28:
                    depth += 1
                elif v[i] == 0x29:
                    depth -= 1
                    if depth == 0:
                        break
                i += 1
            out.append((_COMMENT, v[i0 + 1:i]))
            i += 1
        elif c == 0x5B:  # domain-literal
            j = v.find(b"]", i)
            j = n - 1 if j < 0 else j
            out.append((_LITERAL, v[i:j + 1]))
            i = j + 1
        elif c in b"<>:;@,.":
            out.append((_SPECIAL, bytes([c])))
            i += 1
        else:
            j = i
            while j < n and v[j] not in _SPECIALS and v[j] not in b" \t\r\n":
                j += 1
            if j == i:  # a stray special such as ')' or ']'
                j += 1
            out.append((_ATOM, v[i:j]))
            i = j
    return out


def _is(tok: _Token | None, ch: bytes) -> bool:
    return tok is not None and tok[0] == _SPECIAL and tok[1] == ch


def _phrase(words: list[_Token]) -> str | None:
    """Display name: words joined by one space, quotes removed (encoded words left as-is)."""
    parts: list[bytes] = []
    for kind, text in words:
        if kind == _COMMENT:
            continue
        if kind == _SPECIAL and text == b"." and parts:
            parts[-1] += b"."
            continue
        parts.append(text)
    s = b" ".join(parts)
    return b2s(s) if s else None


def _last_comment(words: list[_Token]) -> str | None:
    for kind, text in reversed(words):
        if kind == _COMMENT and text.strip():
            return b2s(text)
    return None


def _addr_spec(toks: list[_Token]) -> tuple[str, str | None]:
    """local-part ["@" domain] from the given tokens (comments ignored)."""
    toks = [t for t in toks if t[0] != _COMMENT]
    at = next((i for i, t in enumerate(toks) if _is(t, b"@")), None)
    local = b"".join(t[1] for t in (toks if at is None else toks[:at]))
    if at is None:
        return b2s(local) or MISSING_MAILBOX, None
    dom_toks = toks[at + 1:]
    domain = b"".join(t[1] for t in dom_toks)
    if not domain or any(t[0] == _SPECIAL and t[1] != b"." for t in dom_toks):
        return b2s(local) or MISSING_MAILBOX, SYNTAX_ERROR
    return b2s(local) or MISSING_MAILBOX, b2s(domain)


def _mailbox(words: list[_Token]) -> Address | None:
    """One mailbox from its tokens (``name-addr`` or ``addr-spec``)."""
    lt = next((i for i, t in enumerate(words) if _is(t, b"<")), None)
    if lt is not None:
        gt = next((i for i in range(lt + 1, len(words)) if _is(words[i], b">")), len(words))
        inner = words[lt + 1:gt]
        name = _phrase(words[:lt]) or _last_comment(words)
        adl: str | None = None
        colon = next((i for i, t in enumerate(inner) if _is(t, b":")), None)
        if colon is not None:  # obs-route "@a,@b:" (RFC 5322 §4.4)
            adl = b2s(b"".join(t[1] for t in inner[:colon])) or None
            inner = inner[colon + 1:]
        if not [t for t in inner if t[0] != _COMMENT]:
            return Address(name, adl, MISSING_MAILBOX, MISSING_DOMAIN)
        local, host = _addr_spec(inner)
        return Address(name, adl, local, host or MISSING_DOMAIN)
    if not [t for t in words if t[0] != _COMMENT]:
        return None
    local, host = _addr_spec(words)
    return Address(_last_comment(words), None, local, host or MISSING_DOMAIN)


_WSP = rb"[ \t\r\n]"
_ATEXT = rb"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
_DOT_ATOM = _ATEXT + rb"+(?:\." + _ATEXT + rb"+)*"
_ADDR = rb"(" + _DOT_ATOM + rb")@(" + _DOT_ATOM + rb")"
_FAST_BARE = re.compile(_WSP + rb"*" + _ADDR + _WSP + rb"*")
_FAST_NAMED = re.compile(_WSP + rb"*((?:" + _ATEXT + rb"+" + _WSP + rb"+)*" + _ATEXT + rb"+)?" + _WSP
                         + rb"*<" + _ADDR + rb">" + _WSP + rb"*")
_FAST_QUOTED = re.compile(_WSP + rb'*"([^"\\\r\n]+)"' + _WSP + rb"*<" + _ADDR + rb">" + _WSP + rb"*")
_NOT_FAST = re.compile(rb'["(\\:;\[]')


def _fast(value: bytes) -> tuple[Address, ...] | None:
    """The common shapes (``a@b``, ``Name <a@b>``, ``"Name" <a@b>``, comma-separated)
    without the tokenizer: delivery parses every message, and this is most of its cost.
    Returns None when the value needs the full parser; the result is identical to it
    (tests/unit/mime/test_address_fastpath.py checks that)."""
    if _NOT_FAST.search(value):
        return None
    out: list[Address] = []
    for item in value.split(b","):
        if not item.strip(b" \t\r\n"):
            continue
        m = _FAST_BARE.fullmatch(item)
        if m:
            out.append(Address(None, None, b2s(m.group(1)), b2s(m.group(2))))
            continue
        m = _FAST_NAMED.fullmatch(item)
        if m:
            name = b" ".join(m.group(1).split()) if m.group(1) else b""
            out.append(Address(b2s(name) if name else None, None, b2s(m.group(2)), b2s(m.group(3))))
            continue
        return None
    return tuple(out)


def _fast_quoted(value: bytes) -> tuple[Address, ...] | None:
    m = _FAST_QUOTED.fullmatch(value)
    if m:
        return (Address(b2s(m.group(1)), None, b2s(m.group(2)), b2s(m.group(3))),)
    return None


def parse_address_list(value: bytes) -> tuple[Address, ...]:
    """Parse an address-list header value; never raises, skips what it cannot use."""
    if b'"' in value:
        fast = _fast_quoted(value)
    else:
        # One address alone, the most common value: what _fast gives for it, without the split.
        m = _FAST_BARE.fullmatch(value)
        if m:
            return (Address(None, None, b2s(m.group(1)), b2s(m.group(2))),)
        if b"," not in value:
            m = _FAST_NAMED.fullmatch(value)
            if m:
                name = b" ".join(m.group(1).split()) if m.group(1) else b""
                return (Address(b2s(name) if name else None, None, b2s(m.group(2)), b2s(m.group(3))),)
        fast = _fast(value)
    if fast is not None:
        return fast
    return _parse_slow(value)


def _parse_slow(value: bytes) -> tuple[Address, ...]:
    toks = _tokenize(value)
    out: list[Address] = []
    words: list[_Token] = []
    in_group = False
    in_angle = False

    def flush() -> None:
        a = _mailbox(words)
        if a is not None:
            out.append(a)
        words.clear()

    for tok in toks:
        if _is(tok, b"<"):
            in_angle = True
        elif _is(tok, b">"):
            in_angle = False
        if in_angle:
            words.append(tok)
            continue
        if _is(tok, b":") and not in_group:
            # RFC 5322 §3.4 group: display-name ":" [group-list] ";"
            out.append(Address(None, None, _phrase(words) or "", None))
            words.clear()
            in_group = True
        elif _is(tok, b";") and in_group:
            flush()
            out.append(Address(None, None, None, None))
            in_group = False
        elif _is(tok, b","):
            flush()
        else:
            words.append(tok)
    flush()
    if in_group:
        out.append(Address(None, None, None, None))  # unterminated group
    return tuple(out)
