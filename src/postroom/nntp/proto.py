"""NNTP on the wire, without I/O: command lines in, numbered replies out.

Everything here is pure: parsing a command line (RFC 3977 §3.1), the argument
forms (ranges, message-ids, article numbers, dates), and the reply records and how
they are encoded. Dot-stuffing is the shared :mod:`postroom.wire.dotstuff`. The
command table lives in :mod:`.commands`, the handlers in :mod:`.handlers` and
:mod:`.peering`; :mod:`.server` only moves bytes.
"""

from __future__ import annotations

import calendar
import enum
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..wire.dotstuff import reply_chunks

if TYPE_CHECKING:
    from .session import Session

# RFC 3977 §3.1: a command line is at most 512 octets including CRLF.
MAX_COMMAND_LINE = 512
# RFC 4643 §2.4.2: an AUTHINFO SASL command (initial response included) and the client's
# responses may be up to 12288 octets (base64 credentials).
MAX_SASL_LINE = 12288
# RFC 3977 §3.1: each argument is at most 497 octets; a keyword at most 12 characters
# (we allow 20: XGTITLE-style extensions) — anything longer is not a verb we know.
MAX_ARG_LENGTH = 497
MAX_VERB_LENGTH = 20
# RFC 5536 §3.1.3 / RFC 3977 §3.6: a message-id is at most 250 octets.
MAX_MESSAGE_ID = 250


class State(enum.Enum):
    """Whether the client has logged in (RFC 4643): AUTHINFO is refused afterwards (502)."""

    UNAUTHENTICATED = "unauthenticated"
    AUTHENTICATED = "authenticated"


class Action(enum.Enum):
    """What the connection must do after writing a reply."""

    NONE = "none"
    START_TLS = "start_tls"  # RFC 4642 §2.2: handshake right after "382"
    CLOSE = "close"


@dataclass(frozen=True, slots=True)
class Reply:
    """One status line ``code text``, optionally followed by a multi-line block.

    ``body`` is sent as is: already dot-stuffed and ending with ``.CRLF`` (as
    :func:`listing` and ``wire.dotstuff.stuffed`` make it), or the same in pieces
    that go out with the status line in one vectored write.
    """

    code: int
    text: str = ""
    body: bytes | tuple[bytes, ...] | None = None
    action: Action = Action.NONE

    def status_line(self) -> bytes:
        text = self.text
        if not text:
            return f"{self.code}\r\n".encode()
        if "\r" in text or "\n" in text:  # never a line break inside the status line
            text = text.replace("\r", " ").replace("\n", " ")
        return f"{self.code} {text}\r\n".encode()

    def chunks(self) -> list[bytes]:
        return reply_chunks(self.status_line(), self.body)

    def encode(self) -> bytes:
        return b"".join(self.chunks())


#: What a handler does with the article that follows POST, IHAVE or TAKETHIS: it gets
#: the un-stuffed bytes (CRLF line ends), or None when the article was larger than
#: ``[nntp] max_article_size`` (read to its end and dropped: nothing is stored half).
ArticleHandler = Callable[["Session", "bytes | None"], Awaitable["Response"]]


@dataclass(frozen=True, slots=True)
class ReadArticle:
    """Send ``prompt`` (340 for POST, 335 for IHAVE; None for TAKETHIS, whose article
    follows the command at once, RFC 4644 §2.5), read one dot-terminated article, then
    answer with what ``then`` returns."""

    prompt: Reply | None
    then: ArticleHandler
    #: The answer when the process's message memory (``[limits] message_memory``) is in use
    #: by other sessions: the article was read and dropped; try again later (436 for IHAVE).
    busy: Reply = Reply(441, "Server busy, try again later")

    def chunks(self) -> list[bytes]:
        return self.prompt.chunks() if self.prompt is not None else []


Response = Reply | ReadArticle


def reply(code: int, text: str = "", body: bytes | tuple[bytes, ...] | None = None,
          action: Action = Action.NONE) -> Reply:
    return Reply(code, text, body, action)


def listing(lines: list[str] | list[bytes]) -> bytes:
    """A multi-line block from lines; a line that starts with a dot is stuffed (RFC 3977 §3.1.1)."""
    out = bytearray()
    for line in lines:
        b = line.encode("utf-8", "surrogateescape") if isinstance(line, str) else line
        if b.startswith(b"."):
            out += b"."
        out += b
        out += b"\r\n"
    out += b".\r\n"
    return bytes(out)


class CommandError(Exception):
    """The line could not be parsed; ``str(exc)`` is safe to send with a 500/501."""


@dataclass(frozen=True, slots=True)
class Command:
    verb: str  # upper case
    args: tuple[str, ...]
    rest: str  # everything after the verb, as sent (AUTHINFO PASS may hold spaces)


def parse_command(line: bytes) -> Command:
    """RFC 3977 §3.1: a case-insensitive keyword, then arguments separated by spaces or tabs."""
    if line.endswith(b"\n"):
        line = line[:-2] if line.endswith(b"\r\n") else line[:-1]
    if not line.strip():
        raise CommandError("Empty command")
    if b"\0" in line or b"\r" in line:
        raise CommandError("Invalid characters in command")
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        # RFC 3977 §3.1: arguments are UTF-8; keep the bytes of a wildmat we cannot decode out.
        raise CommandError("Command is not valid UTF-8") from None
    text = text.lstrip(" \t")
    parts = text.replace("\t", " ").split(" ", 1)
    verb = parts[0]
    rest = parts[1] if len(parts) > 1 else ""
    if not verb.isascii() or not verb.isalnum() or len(verb) > MAX_VERB_LENGTH:
        raise CommandError("Unknown command")
    return Command(verb.upper(), tuple(rest.split()), rest)


# -- argument forms ---------------------------------------------------------------
MAX_NUMBER = 2**63 - 1  # RFC 3977 §6: article numbers up to 2^63-1 (we issue far fewer)


def parse_number(arg: str) -> int | None:
    """An article number (RFC 3977 §6: 1*16DIGIT); None if malformed."""
    if not arg.isascii() or not arg.isdigit() or len(arg) > 16:
        return None
    n = int(arg)
    return n if 0 <= n <= MAX_NUMBER else None


def parse_range(arg: str) -> tuple[int, int] | None:
    """RFC 3977 §3.2.1.1 range: ``n``, ``n-`` (to the end) or ``n-m``; None if malformed.
    An open end is returned as MAX_NUMBER; an inverted range is valid and empty."""
    lo_s, dash, hi_s = arg.partition("-")
    lo = parse_number(lo_s)
    if lo is None:
        return None
    if not dash:
        return lo, lo
    if not hi_s:
        return lo, MAX_NUMBER
    hi = parse_number(hi_s)
    return None if hi is None else (lo, hi)


def is_message_id(arg: str) -> bool:
    """RFC 3977 §3.6: ``<`` then printable US-ASCII without ``>`` then ``>``, at most 250 octets."""
    if len(arg) < 3 or len(arg) > MAX_MESSAGE_ID or arg[0] != "<" or arg[-1] != ">":
        return False
    inner = arg[1:-1]
    return all(33 <= ord(c) <= 126 and c != ">" for c in inner)


def parse_date_time(date: str, time_: str, gmt: str | None) -> float | None:
    """NEWGROUPS/NEWNEWS ``date time [GMT]`` (RFC 3977 §7.3.2): yymmdd or yyyymmdd and
    hhmmss; without GMT the server's local time. None if malformed."""
    if not (date.isascii() and date.isdigit() and time_.isascii() and time_.isdigit()):
        return None
    if len(time_) != 6 or len(date) not in (6, 8):
        return None
    if gmt is not None and gmt.upper() != "GMT":
        return None
    if len(date) == 6:
        # RFC 3977 §7.3.2: a two-digit year is the closest century to now.
        yy = int(date[:2])
        this = time.gmtime().tm_year
        year = this - this % 100 + yy
        if year > this + 50:
            year -= 100
        elif year < this - 50:
            year += 100
        mm, dd = int(date[2:4]), int(date[4:6])
    else:
        year, mm, dd = int(date[:4]), int(date[4:6]), int(date[6:8])
    hh, mi, ss = int(time_[:2]), int(time_[2:4]), int(time_[4:6])
    if not (1 <= mm <= 12 and 1 <= dd <= 31 and hh <= 23 and mi <= 59 and ss <= 60):
        return None
    fields = (year, mm, dd, hh, mi, ss, 0, 0, -1)
    try:
        if gmt is not None:
            return float(calendar.timegm(fields))
        return time.mktime(fields)
    except (OverflowError, ValueError):
        return None


def format_date(t: float) -> str:
    """DATE's ``yyyymmddhhmmss`` in UTC (RFC 3977 §7.1)."""
    return time.strftime("%Y%m%d%H%M%S", time.gmtime(t))


def split_article(raw: bytes) -> tuple[bytes, bytes]:
    """(header block without the blank line, body) of a CRLF article (RFC 3977 §6.2.1)."""
    end = raw.find(b"\r\n\r\n")
    if end < 0:
        if raw.endswith(b"\r\n"):
            return raw[:-2], b""
        return raw, b""
    return raw[:end], raw[end + 4:]
