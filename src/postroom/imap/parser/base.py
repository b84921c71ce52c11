"""A cursor over one framed command: the lexical rules of RFC 3501 §9 (formal syntax).

Everything raises :class:`~postroom.imap.errors.ParseError` (→ ``BAD``) with a short
fixed text. Literals appear in the buffer as ``{N}\\r\\n`` + N octets, as the
tokenizer framed them.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone
from typing import Callable, TypeVar

from ..errors import ParseError

T = TypeVar("T")

# ATOM-CHAR: any CHAR except atom-specials "(" ")" "{" SP CTL list-wildcards quoted-specials "]".
_ATOM = re.compile(rb'[^\x00-\x20\x7f-\xff(){%*"\\\]]+')
# ASTRING-CHAR = ATOM-CHAR / resp-specials ("]").
_ASTRING_ATOM = re.compile(rb'[^\x00-\x20\x7f-\xff(){%*"\\]+')
# list-char = ATOM-CHAR / list-wildcards / resp-specials.
_LIST_CHARS = re.compile(rb'[^\x00-\x20\x7f-\xff(){"\\]+')
_NUMBER = re.compile(rb"\d+")
_QUOTED = re.compile(rb'"((?:[^"\\\r\n]|\\["\\])*)"')
_LITERAL = re.compile(rb"\{(\d{1,10})\}\r\n")
_TAG = re.compile(rb'[^\x00-\x20\x7f-\xff(){%*"\\+]+')

MAX_NUMBER = 0xFFFFFFFF  # number = 1*DIGIT ; unsigned 32-bit integer (§9)

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_MONTH_NUM = {m.upper(): i + 1 for i, m in enumerate(MONTHS)}
_DATE_TEXT = re.compile(rb"(\d{1,2})-([A-Za-z]{3})-(\d{4})")
# date-time = DQUOTE date-day-fixed "-" date-month "-" date-year SP time SP zone DQUOTE
_DATE_TIME = re.compile(rb'"([ \d]\d)-([A-Za-z]{3})-(\d{4}) (\d\d):(\d\d):(\d\d) ([+-])(\d\d)(\d\d)"')


class Reader:
    __slots__ = ("buf", "pos")

    def __init__(self, buf: bytes, pos: int = 0) -> None:
        self.buf = buf
        self.pos = pos

    # -- basics ----------------------------------------------------------------
    def at_end(self) -> bool:
        return self.pos >= len(self.buf)

    def peek(self) -> int | None:
        return self.buf[self.pos] if self.pos < len(self.buf) else None

    def peek_is(self, b: bytes) -> bool:
        return self.buf.startswith(b, self.pos)

    def take(self, b: bytes) -> bool:
        if self.buf.startswith(b, self.pos):
            self.pos += len(b)
            return True
        return False

    def take_word(self, word: bytes) -> bool:
        """Case-insensitive keyword match (atoms are case-insensitive, §9 note)."""
        end = self.pos + len(word)
        if self.buf[self.pos:end].upper() == word:
            self.pos = end
            return True
        return False

    def expect(self, b: bytes, what: str | None = None) -> None:
        if not self.take(b):
            raise ParseError(f"Expected {what or b.decode()}")

    def sp(self) -> None:
        if not self.take(b" "):
            raise ParseError("Expected a space")

    def end(self) -> None:
        if self.pos != len(self.buf):
            raise ParseError("Unexpected extra arguments")

    def _match(self, rx: re.Pattern[bytes], what: str) -> bytes:
        m = rx.match(self.buf, self.pos)
        if m is None:
            raise ParseError(f"Expected {what}")
        self.pos = m.end()
        return m.group(0)

    # -- tokens ----------------------------------------------------------------
    def tag(self) -> bytes:
        return self._match(_TAG, "a tag")

    def atom(self) -> bytes:
        return self._match(_ATOM, "an atom")

    def keyword(self) -> str:
        """An atom returned in upper case, for command and attribute names."""
        return self.atom().decode("ascii").upper()

    def number(self) -> int:
        n = int(self._match(_NUMBER, "a number"))
        if n > MAX_NUMBER:
            raise ParseError("Number too large")
        return n

    def nz_number(self) -> int:
        n = self.number()
        if n == 0:
            raise ParseError("Expected a non-zero number")
        return n

    def quoted(self) -> bytes:
        m = _QUOTED.match(self.buf, self.pos)
        if m is None:
            raise ParseError("Bad quoted string")
        self.pos = m.end()
        s = m.group(1)
        return s.replace(b'\\"', b'"').replace(b"\\\\", b"\\") if b"\\" in s else s

    def literal(self) -> bytes:
        m = _LITERAL.match(self.buf, self.pos)
        if m is None:
            raise ParseError("Bad literal")
        n = int(m.group(1))
        start = m.end()
        if start + n > len(self.buf):
            raise ParseError("Literal shorter than announced")
        self.pos = start + n
        return self.buf[start : start + n]

    def literal8(self) -> bytes:
        """literal8 = "~{" number ["+"] "}" CRLF *OCTET (RFC 3516 §6), or a plain literal."""
        if self.take(b"~"):
            if self.peek() != 0x7B:
                raise ParseError("Bad literal8")
        return self.literal()

    def string(self) -> bytes:
        c = self.peek()
        if c == 0x22:
            return self.quoted()
        if c == 0x7B:
            return self.literal()
        raise ParseError("Expected a string")

    def astring(self) -> bytes:
        c = self.peek()
        if c == 0x22 or c == 0x7B:
            return self.string()
        return self._match(_ASTRING_ATOM, "a string")

    def nstring(self) -> bytes | None:
        if self.take_word(b"NIL"):
            return None
        return self.string()

    def list_mailbox(self) -> bytes:
        """list-mailbox = 1*list-char / string (§6.3.8 patterns with % and *)."""
        c = self.peek()
        if c == 0x22 or c == 0x7B:
            return self.string()
        return self._match(_LIST_CHARS, "a mailbox pattern")

    def paren_list(self, item: Callable[[], T]) -> list[T]:
        """``(`` item *(SP item) ``)``; empty lists allowed."""
        self.expect(b"(")
        out: list[T] = []
        if self.take(b")"):
            return out
        while True:
            out.append(item())
            if self.take(b")"):
                return out
            self.sp()

    # -- flags -----------------------------------------------------------------
    def flag(self) -> str:
        """flag = "\\Answered" / … / flag-keyword / flag-extension (§9)."""
        if self.take(b"\\"):
            name = self.atom().decode("ascii")
            return canonical_flag("\\" + name)
        return self.atom().decode("ascii")

    def flag_list(self) -> list[str]:
        return self.paren_list(self.flag)

    # -- dates -----------------------------------------------------------------
    def date(self) -> date:
        """date = date-text / DQUOTE date-text DQUOTE; date-text = date-day "-" date-month "-" date-year."""
        quoted = self.take(b'"')
        m = _DATE_TEXT.match(self.buf, self.pos)
        if m is None:
            raise ParseError("Expected a date such as 1-Feb-2024")
        self.pos = m.end()
        if quoted:
            self.expect(b'"')
        month = _MONTH_NUM.get(m.group(2).decode().upper())
        try:
            if month is None:
                raise ValueError
            return date(int(m.group(3)), month, int(m.group(1)))
        except ValueError:
            raise ParseError("Invalid date") from None

    def date_time(self) -> datetime:
        m = _DATE_TIME.match(self.buf, self.pos)
        if m is None:
            raise ParseError("Expected a date-time such as \"01-Feb-2024 10:00:00 +0000\"")
        self.pos = m.end()
        day, mon, year, hh, mm, ss, sign, zh, zm = m.groups()
        month = _MONTH_NUM.get(mon.decode().upper())
        try:
            if month is None or int(zm) > 59:
                raise ValueError
            offset = timedelta(hours=int(zh), minutes=int(zm))
            tz = timezone(-offset if sign == b"-" else offset)
            return datetime(int(year), month, int(day.strip()), int(hh), int(mm), int(ss), tzinfo=tz)
        except ValueError:
            raise ParseError("Invalid date-time") from None


_SYSTEM = {f.upper(): f for f in ("\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft", "\\Recent")}


def canonical_flag(flag: str) -> str:
    """System flags are case-insensitive: keep one spelling (§2.3.2)."""
    return _SYSTEM.get(flag.upper(), flag)
