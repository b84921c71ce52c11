"""Byte-level header block splitting and MIME header field parsing.

The ``email`` package cannot tell us where things are in the raw bytes, so the
header block is split here, on bytes, keeping offsets.  Field *values* are then
parsed with small RFC 2045 / RFC 2231 tokenizers: ``email.headerregistry``
lowercases parameter names and reorders RFC 2231 parameters, and BODYSTRUCTURE
must echo them the way Dovecot does.
"""

from __future__ import annotations

import re
import urllib.parse
from typing import NamedTuple

__all__ = ["HeaderField", "split_header", "b2s", "ContentType", "parse_content_type",
           "parse_disposition", "parse_language", "first_token", "decode_params"]

Params = tuple[tuple[str, str], ...]


def b2s(b: bytes) -> str:
    """Octets to a model string; see :mod:`postroom.mime.model` for why surrogateescape."""
    return b.decode("utf-8", "surrogateescape")


class HeaderField(NamedTuple):
    """One header field: ``raw[start:end]`` is the whole field including its final line break."""

    name: bytes
    value: bytes  # after the colon, leading WSP removed, folding kept, final EOL removed
    start: int
    end: int


#: One header-block unit at a line start: a field (first line has a colon, then its
#: continuation lines, RFC 5322 §2.2.3) or a line that is neither (no colon), which
#: split_header skips.  Groups: the raw name, the colon (empty for a line that is no
#: field), the value from after the colon to the end of the field (final CR included),
#: and the final LF (empty at the end of the block).  Applied with finditer/findall over
#: the block, every match starts where the previous one ended, so this is the
#: line-by-line state machine (a continuation line after a skipped line starts a new
#: field) done in C.
FIELD_RE = re.compile(rb"(?:([^\n:]*)(:)([^\n]*(?:\n[ \t][^\n]*)*)|[^\n:]*)(\n|\Z)")


def header_end(raw: bytes, start: int, end: int) -> tuple[int, int]:
    """``(fields_end, body_start)`` of the entity in ``raw[start:end]``.

    The header ends at the first empty line ("\\r\\n" or "\\n" between line
    breaks), which belongs to the header; ``fields_end`` is where that line
    starts.  Without one both are ``end``.
    """
    if raw.startswith(b"\n", start, end):
        return start, start + 1
    if raw.startswith(b"\r\n", start, end):
        return start, start + 2
    i = raw.find(b"\n\r\n", start, end)
    j = raw.find(b"\n\n", start, end if i < 0 else i + 1)  # only an earlier "\n\n" matters
    if j >= 0:
        return j + 1, j + 2
    if i >= 0:
        return i + 1, i + 3
    return end, end


def split_header(raw: bytes, start: int, end: int) -> tuple[list[HeaderField], int]:
    """Split the header block of the entity in ``raw[start:end]``.

    Returns the fields and the body start.  The header ends at the first empty
    line (RFC 5322 §2.1), which belongs to the header; without one, everything
    is header and the body is empty.  A line that is neither a field nor a
    continuation does not end the header (Dovecot does the same; ending there,
    as ``email`` does, would move the body of mbox-ish or broken mail).
    """
    fields_end, body = header_end(raw, start, end)
    fields: list[HeaderField] = []
    new = tuple.__new__  # HeaderField(...) without its Python-level __new__
    for m in FIELD_RE.finditer(raw, start, fields_end):
        name, colon, value, eol = m.groups()
        if colon:
            if eol and value[-1:] == b"\r":
                value = value[:-1]
            s, e = m.span()
            fields.append(new(HeaderField, (name.rstrip(b" \t"), value.lstrip(b" \t"), s, e)))
    return fields, body


# --- RFC 2045 §5.1 tokens -------------------------------------------------------------

_TSPECIALS = b'()<>@,;:\\"/[]?='


class _Lexer:
    """Tokenizer for MIME header values: tokens, quoted-strings, specials; skips CFWS."""

    def __init__(self, data: bytes) -> None:
        self.d = data
        self.i = 0

    def skip_cfws(self) -> None:
        d, n = self.d, len(self.d)
        while self.i < n:
            c = d[self.i]
            if c in b" \t\r\n":
                self.i += 1
            elif c == 0x28:  # '(' comment, RFC 5322 §3.2.2, may nest
                depth = 0
                while self.i < n:
                    c = d[self.i]
                    if c == 0x5C:
                        self.i += 1
                    elif c == 0x28:
                        depth += 1
                    elif c == 0x29:
                        depth -= 1
                        if depth == 0:
                            self.i += 1
                            break
                    self.i += 1
            else:
                break

    def peek(self) -> int | None:
        self.skip_cfws()
        return self.d[self.i] if self.i < len(self.d) else None

    def special(self, ch: bytes) -> bool:
        if self.peek() == ch[0]:
            self.i += 1
            return True
        return False

    def token(self, extra: bytes = b"") -> bytes | None:
        """RFC 2045 token (8-bit octets tolerated); ``extra`` removes chars from tspecials."""
        self.skip_cfws()
        s = self.i
        d = self.d
        while self.i < len(d):
            c = d[self.i]
            if c <= 0x20 or c == 0x7F or (c in _TSPECIALS and c not in extra):
                break
            self.i += 1
        return d[s:self.i] if self.i > s else None

    def quoted(self) -> bytes | None:
        """RFC 5322 §3.2.4 quoted-string, unescaped; an unterminated one runs to the end."""
        if self.peek() != 0x22:
            return None
        self.i += 1
        out = bytearray()
        d = self.d
        while self.i < len(d):
            c = d[self.i]
            self.i += 1
            if c == 0x22:
                break
            if c == 0x5C and self.i < len(d):
                c = d[self.i]
                self.i += 1
            elif c in b"\r\n":
                continue  # folding inside a quoted-string
            out.append(c)
        return bytes(out)

    def value(self) -> bytes | None:
        q = self.quoted()
        return q if q is not None else self.token()


def _raw_params(lx: _Lexer) -> list[tuple[bytes, bytes]]:
    """``*(";" attribute "=" value)``; stops quietly at the first syntax error."""
    out: list[tuple[bytes, bytes]] = []
    while lx.special(b";"):
        name = lx.token()
        if name is None:
            if lx.peek() == ord(";"):
                continue  # tolerate ";;"
            break
        if not lx.special(b"="):
            break
        value = lx.value()
        if value is None:
            break
        out.append((name, value))
    return out


_CONT = re.compile(rb"^(?P<key>[^*]+)\*(?:(?P<idx>[0-9]+)(?P<ext>\*)?|)$")


def _rfc2231_merge(raw: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """Merge RFC 2231 §3 continuations the way Dovecot's ``rfc2231_parse`` does.

    Plain parameters keep their order; ``key*``/``key*N``/``key*N*`` ones are
    sorted by (key, index) and joined after them.  When any section was
    extended the merged name is ``key*`` and the value stays %-encoded
    (``charset'lang'...``); with gaps in the indexes the pieces are kept apart.
    """
    plain: list[tuple[bytes, bytes]] = []
    cont: list[tuple[bytes, int, bool, bytes]] = []
    for name, value in raw:
        m = _CONT.match(name)
        if m is None:
            plain.append((name, value))
            continue
        key = m.group("key")
        if m.group("idx") is None:
            cont.append((key, 0, True, value))  # "key*": extended, single section
        else:
            cont.append((key, int(m.group("idx")), m.group("ext") is not None, value))
    cont.sort(key=lambda t: (t[0].lower(), t[1]))
    out = plain
    i = 0
    while i < len(cont):
        j = i
        ok, extended = True, False
        while j < len(cont) and cont[j][0].lower() == cont[i][0].lower():
            if cont[j][1] != j - i:
                ok = False
            extended |= cont[j][2]
            j += 1
        group = cont[i:j]
        if not ok:
            for key, idx, ext, value in group:
                out.append((key + b"*%d" % idx + (b"*" if ext else b""), value))
        else:
            buf = bytearray()
            if extended and not group[0][2]:
                buf += b"''"
            for _key, _idx, ext, value in group:
                buf += value.replace(b"%", b"%25") if extended and not ext else value
            out.append((group[0][0] + (b"*" if extended else b""), bytes(buf)))
        i = j
    return out


def decode_params(wire: list[tuple[bytes, bytes]]) -> Params:
    """Decoded view of merged parameters: names lowercased, RFC 2231 values decoded.

    ``key*`` values are ``charset'language'%XX..`` (RFC 2231 §4); an unknown
    charset falls back to UTF-8, and undecodable octets become U+FFFD.
    """
    out: list[tuple[str, str]] = []
    for name, value in wire:
        n = b2s(name).lower()
        if n.endswith("*") and value.count(b"'") >= 2:
            charset, _lang, enc = value.split(b"'", 2)
            octets = urllib.parse.unquote_to_bytes(enc)
            out.append((n[:-1], _decode_charset(octets, b2s(charset))))
        else:
            out.append((n, b2s(value)))
    return tuple(out)


def _decode_charset(octets: bytes, charset: str) -> str:
    try:
        return octets.decode(charset or "us-ascii", "replace")
    except (LookupError, ValueError):
        return octets.decode("utf-8", "replace")


class ContentType(NamedTuple):
    type: str
    subtype: str
    params_wire: Params
    params: Params


# Fast paths for the common, clean shapes: ``type/subtype`` (or a disposition type), then
# ``; name=token`` / ``; name="quoted"`` parameters, with no comments, escapes or folding
# inside quotes and nothing left over.  A value that is not entirely of that shape goes to
# the _Lexer, so the result is always the one the _Lexer gives (tokens and quoted-strings
# are the same octets; the _Lexer skips the same " \t\r\n" between them).
_WS = rb"[ \t\r\n]*"
_TOKEN = rb'[^\x00-\x20\x7f()<>@,;:\\"/\[\]?=]+'
_FAST_CT = re.compile(_WS + b"(" + _TOKEN + b")" + _WS + b"/" + _WS + b"(" + _TOKEN + b")" + _WS)
_FAST_TOKEN = re.compile(_WS + b"(" + _TOKEN + b")" + _WS)
_PARAM = (b";" + _WS + b"(" + _TOKEN + b")" + _WS + b"=" + _WS
          + rb'(?:"([^"\\\r\n]*)"|(' + _TOKEN + b"))" + _WS)
_FAST_PARAM = re.compile(_PARAM)
_FAST_PARAMS = re.compile(b"(?:" + _PARAM + b")*")
_FAST_CT_ONE = re.compile(_FAST_CT.pattern + b"(?:" + _PARAM + b")?")


def _fast_params(value: bytes, pos: int) -> tuple[Params, Params] | None:
    """(wire, decoded) parameters of ``value[pos:]`` when it is all clean parameters, else None."""
    if pos == len(value):
        return (), ()
    if _FAST_PARAMS.fullmatch(value, pos) is None:
        return None
    # The whole rest is parameters, and it splits into them one way only (a token or WSP
    # run cannot end early: what follows it would have to be ";", "=" or WSP), so
    # findall yields them in order.  A token is never empty, so an empty one means the
    # value was the (possibly empty) quoted-string.
    raw = [(name, token or quoted) for name, quoted, token in _FAST_PARAM.findall(value, pos)]
    if b"*" in value and any(b"*" in name for name, _v in raw):
        merged = _rfc2231_merge(raw)  # RFC 2231 sections: merge and decode them the general way
        return tuple([(b2s(a), b2s(b)) for a, b in merged]), decode_params(merged)
    wire = tuple([(a.decode("utf-8", "surrogateescape"), b.decode("utf-8", "surrogateescape")) for a, b in raw])
    return wire, tuple([(a.lower(), b) for a, b in wire])


def parse_content_type(value: bytes) -> ContentType:
    """RFC 2045 §5.1 ``type "/" subtype *(";" parameter)``.

    Broken values follow Dovecot so BODYSTRUCTURE matches it: ``text`` gives
    ("text", ""), a missing subtype gives ("", ""), and parameters are only
    read when the type/subtype was well formed.
    """
    m = _FAST_CT_ONE.fullmatch(value)
    if m is not None:  # the most common shape: at most one clean parameter
        t, st, name, quoted, token = m.groups()
        ct = t.decode("utf-8", "surrogateescape"), st.decode("utf-8", "surrogateescape")
        if name is None:
            return ContentType(ct[0], ct[1], (), ())
        if b"*" not in name:
            n = name.decode("utf-8", "surrogateescape")
            v = (quoted if token is None else token).decode("utf-8", "surrogateescape")
            return ContentType(ct[0], ct[1], ((n, v),), ((n.lower(), v),))
    m = _FAST_CT.match(value)
    if m is not None:
        params = _fast_params(value, m.end())
        if params is not None:
            return ContentType(b2s(m.group(1)), b2s(m.group(2)), params[0], params[1])
    lx = _Lexer(value)
    t = lx.token()
    if t is None:
        return ContentType("", "", (), ())
    if not lx.special(b"/"):
        return ContentType(b2s(t), "", (), ())
    st = lx.token()
    if st is None:
        return ContentType("", "", (), ())
    merged = _rfc2231_merge(_raw_params(lx))
    wire = tuple((b2s(a), b2s(b)) for a, b in merged)
    return ContentType(b2s(t), b2s(st), wire, decode_params(merged))


def parse_disposition(value: bytes) -> tuple[str | None, Params, Params]:
    """RFC 2183 ``disposition-type *(";" parameter)`` → (type, wire params, decoded params)."""
    m = _FAST_TOKEN.match(value)
    if m is not None:
        params = _fast_params(value, m.end())
        if params is not None:
            return b2s(m.group(1)), params[0], params[1]
    lx = _Lexer(value)
    t = lx.token()
    if t is None:
        return None, (), ()
    merged = _rfc2231_merge(_raw_params(lx))
    return b2s(t), tuple((b2s(a), b2s(b)) for a, b in merged), decode_params(merged)


def first_token(value: bytes) -> str | None:
    """The leading MIME token (Content-Transfer-Encoding), spelling kept."""
    m = _FAST_TOKEN.match(value)
    if m is not None:
        return b2s(m.group(1))
    t = _Lexer(value).token()
    return None if t is None else b2s(t)


def parse_language(value: bytes) -> tuple[str, ...] | None:
    """RFC 3282 ``1#Language-tag`` as a tuple; None when nothing parses."""
    lx = _Lexer(value)
    tags: list[str] = []
    while True:
        t = lx.token()
        if t is None:
            break
        tags.append(b2s(t))
        if not lx.special(b","):
            break
    return tuple(tags) or None
