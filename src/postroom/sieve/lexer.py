"""Sieve lexer (RFC 5228 §8.1): script text in, tokens with line and column out.

The lexer is a single forward scan with no backtracking, so its cost is linear in the
script size whatever the input. Every token knows where it starts, so each later error
(parser, validator) can name a line and a column.
"""

from __future__ import annotations

import enum
import re
from typing import NamedTuple

from .api import SieveSyntaxError

__all__ = ["Kind", "Token", "tokenize"]


class Kind(enum.Enum):
    IDENT = "identifier"
    TAG = "tag"
    NUMBER = "number"
    STRING = "string"
    PUNCT = "punctuation"
    EOF = "end of script"


class Token(NamedTuple):
    """A NamedTuple rather than a dataclass: a 1 MB script has ~200,000 tokens and a
    tuple is several times cheaper to build."""

    kind: Kind
    value: str | int  # identifier/tag (lowercased), punctuation char, number, string text
    line: int
    column: int
    text: str = ""  # identifier and tag as written, for messages

    def describe(self) -> str:
        if self.kind is Kind.STRING:
            return "string"
        if self.kind is Kind.EOF:
            return "end of script"
        return f"{self.kind.value} '{self.text or self.value}'"


_PUNCT = frozenset("[](){},;")
_IDENT_START = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")
_IDENT_CHARS = _IDENT_START | frozenset("0123456789")
_DIGITS = frozenset("0123456789")
#: RFC 5228 §2.4.1 quantifiers.
_QUANT = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
#: RFC 5228 §2.4.1: numbers are at least 32-bit; larger values are refused rather than
#: silently wrapped (Pigeonhole does the same for values beyond its sieve_number_t).
MAX_NUMBER = (1 << 63) - 1


class _Scanner:
    def __init__(self, text: str) -> None:
        self.s = text
        self.i = 0
        self.line = 1
        self.line_start = 0

    def col(self, i: int | None = None) -> int:
        return (self.i if i is None else i) - self.line_start + 1

    def error(self, msg: str, line: int | None = None, col: int | None = None) -> SieveSyntaxError:
        return SieveSyntaxError(msg, self.line if line is None else line, self.col() if col is None else col)

    def newline_at(self, i: int) -> None:
        """Record that a line break ends at offset ``i`` (exclusive)."""
        self.line += 1
        self.line_start = i


def _check_char(s: _Scanner, ch: str) -> None:
    # RFC 5228 §8.1 excludes NUL from every token; a lone CR is also refused because the
    # grammar only knows CRLF (we accept bare LF as well, as every implementation does).
    if ch == "\0":
        raise s.error("NUL character in script")


#: The common tokens in one regex (blanks, line breaks, simple strings, words, tags,
#: punctuation): a 1 MB script lexes in a fraction of a second. Anything else (escapes,
#: ``/* */``, ``text:``, numbers, errors) takes the character-by-character path below.
_FAST = re.compile(r"""
    (?P<blank>[ \t\r]+)
  | (?P<nl>\n)
  | (?P<str>"[^"\\\n\x00]*")
  | (?P<word>[A-Za-z_][A-Za-z0-9_]*)(?![A-Za-z0-9_:])
  | (?P<tag>:[A-Za-z_][A-Za-z0-9_]*)
  | (?P<punct>[\[\](){},;])
""", re.VERBOSE)


def tokenize(text: str) -> list[Token]:
    """All tokens of ``text``, ending with an EOF token. Raises :class:`SieveSyntaxError`."""
    s = _Scanner(text)
    out: list[Token] = []
    n = len(text)
    fast = _FAST.match
    append = out.append
    while True:
        m = fast(text, s.i)
        while m is not None:
            kind, start, end = m.lastgroup, m.start(), m.end()
            if kind == "nl":
                s.newline_at(end)
            elif kind != "blank":
                col = start - s.line_start + 1
                if kind == "str":
                    append(Token(Kind.STRING, text[start + 1:end - 1], s.line, col))
                elif kind == "word":
                    word = text[start:end]
                    append(Token(Kind.IDENT, word.lower(), s.line, col, word))
                elif kind == "tag":
                    word = text[start + 1:end]
                    append(Token(Kind.TAG, word.lower(), s.line, col, text[start:end]))
                else:
                    append(Token(Kind.PUNCT, text[start], s.line, col))
            s.i = end
            m = fast(text, end)
        _skip_space(s)
        if s.i >= n:
            out.append(Token(Kind.EOF, "", s.line, s.col()))
            return out
        c = text[s.i]
        line, col = s.line, s.col()
        if c in _PUNCT:
            out.append(Token(Kind.PUNCT, c, line, col))
            s.i += 1
        elif c == '"':
            out.append(Token(Kind.STRING, _quoted(s), line, col))
        elif c in _DIGITS:
            out.append(Token(Kind.NUMBER, _number(s), line, col))
        elif c == ":":
            j = s.i + 1
            if j >= n or text[j] not in _IDENT_START:
                raise s.error("':' must start a tag such as ':is'")
            k = j
            while k < n and text[k] in _IDENT_CHARS:
                k += 1
            word = text[j:k]
            s.i = k
            out.append(Token(Kind.TAG, word.lower(), line, col, ":" + word))
        elif c in _IDENT_START:
            k = s.i
            while k < n and text[k] in _IDENT_CHARS:
                k += 1
            word = text[s.i:k]
            s.i = k
            if word.lower() == "text" and k < n and text[k] == ":":
                s.i = k + 1
                out.append(Token(Kind.STRING, _multiline(s, line, col), line, col))
            else:
                out.append(Token(Kind.IDENT, word.lower(), line, col, word))
        else:
            _check_char(s, c)
            shown = c if c.isprintable() else f"\\x{ord(c):02x}"
            raise s.error(f"unexpected character '{shown}'")


def _skip_space(s: _Scanner) -> None:
    text, n = s.s, len(s.s)
    while s.i < n:
        c = text[s.i]
        if c == "\n":
            s.i += 1
            s.newline_at(s.i)
        elif c in " \t\r":
            s.i += 1
        elif c == "#":  # hash-comment runs to the end of the line (RFC 5228 §2.3)
            j = text.find("\n", s.i)
            if "\0" in text[s.i:n if j < 0 else j]:
                raise s.error("NUL character in comment")
            s.i = n if j < 0 else j
        elif c == "/" and text.startswith("/*", s.i):
            line, col = s.line, s.col()
            j = text.find("*/", s.i + 2)
            if j < 0:
                raise SieveSyntaxError("unterminated /* comment", line, col)
            _advance_lines(s, s.i, j + 2)
        else:
            return


def _advance_lines(s: _Scanner, start: int, end: int) -> None:
    """Move to ``end``, counting the line breaks in ``s.s[start:end]``."""
    text = s.s
    j = text.find("\n", start, end)
    while j >= 0:
        s.newline_at(j + 1)
        j = text.find("\n", j + 1, end)
    s.i = end


def _number(s: _Scanner) -> int:
    text, n = s.s, len(s.s)
    k = s.i
    while k < n and text[k] in _DIGITS:
        k += 1
    value = int(text[s.i:k]) if k - s.i < 30 else MAX_NUMBER + 1
    if k < n and text[k].lower() in _QUANT:
        value *= _QUANT[text[k].lower()]
        k += 1
    if k < n and text[k] in _IDENT_CHARS:
        raise s.error("bad number")
    if value > MAX_NUMBER:
        raise s.error("number too large")
    s.i = k
    return value


def _quoted(s: _Scanner) -> str:
    """A quoted string (RFC 5228 §2.4.2): ``\\"`` and ``\\\\`` are the only real escapes;
    a backslash before any other character is dropped (§2.4.2, "undefined escape")."""
    text, n = s.s, len(s.s)
    line, col = s.line, s.col()
    s.i += 1
    buf: list[str] = []
    start = s.i
    while True:
        j = start
        while j < n and text[j] not in '"\\\n\0':
            j += 1
        buf.append(text[start:j])
        if j >= n:
            raise SieveSyntaxError("unterminated string", line, col)
        c = text[j]
        if c == '"':
            s.i = j + 1
            return "".join(buf)
        if c == "\0":
            s.i = j
            raise s.error("NUL character in string")
        if c == "\n":
            buf.append("\n")
            s.newline_at(j + 1)
            start = j + 1
            continue
        # backslash
        if j + 1 >= n:
            raise SieveSyntaxError("unterminated string", line, col)
        nxt = text[j + 1]
        if nxt == "\n":
            s.newline_at(j + 2)
        elif nxt == "\0":
            s.i = j + 1
            raise s.error("NUL character in string")
        buf.append(nxt)
        start = j + 2


def _multiline(s: _Scanner, line: int, col: int) -> str:
    """``text:`` … ``.`` (RFC 5228 §2.4.2): rest of the first line may hold only blanks and
    a hash comment; a line holding a single "." ends it; a leading ".." is unstuffed."""
    text, n = s.s, len(s.s)
    i = s.i
    while i < n and text[i] in " \t":
        i += 1
    if i < n and text[i] == "#":
        j = text.find("\n", i)
        i = n if j < 0 else j
    if i < n and text[i] == "\r":
        i += 1
    if i >= n or text[i] != "\n":
        s.i = i
        raise s.error("text: must be followed by a line break")
    i += 1
    s.newline_at(i)
    lines: list[str] = []
    while True:
        if i >= n:
            raise SieveSyntaxError("unterminated text: string (no line with a single '.')", line, col)
        j = text.find("\n", i)
        if j < 0:
            raise SieveSyntaxError("unterminated text: string (no line with a single '.')", line, col)
        ln = text[i:j]
        if "\0" in ln:
            s.i = i + ln.index("\0")
            raise s.error("NUL character in string")
        body = ln.removesuffix("\r")
        i = j + 1
        s.newline_at(i)
        if body == ".":
            s.i = i
            return "".join(lines)
        if body.startswith(".."):
            body = body[1:]
        # Keep the line break the way the script wrote it, normalised to CRLF as the
        # RFC's grammar spells it (messages built from it are sent as CRLF anyway).
        lines.append(body + "\r\n")
