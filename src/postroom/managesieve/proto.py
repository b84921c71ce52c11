"""ManageSieve on the wire, without I/O (RFC 5804): command framing, tokens, responses.

A command is a line, or several when it carries literals: a line ending in ``{N+}``
(the non-synchronizing literal of RFC 5804 §4) or ``{N}`` is followed by exactly N
octets, then the command goes on with the next line. ManageSieve has no continuation
request for literals, so both forms are read the same way (what Dovecot and Cyrus do
for clients that send ``{N}``). :class:`Framer` assembles one command and says what
it needs next; :func:`tokenize` splits the finished command once. Responses are
:class:`Reply` records that encode themselves. The command table is in
:mod:`.commands`, the handlers in :mod:`.handlers`; :mod:`.server` only moves bytes.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable
from dataclasses import dataclass

# Lines carry verbs, names and SASL data; scripts travel as literals. Before login a
# client gets the small limits (like POP3's 1024-octet lines) so it cannot make us buffer.
MAX_LINE = 8192
MAX_LINE_PREAUTH = 4096
MAX_LITERAL_PREAUTH = 8192  # SASL responses (wire.sasl.MAX_RESPONSE is 2048 decoded octets)
MAX_NAME_LITERAL = 4096  # a script name sent as a literal (RFC 5804 §1.6 names are short)
MAX_QUOTED = 1024  # RFC 5804 §4: quoted strings are for short values; longer ones need a literal
MAX_ARGS = 4

_LITERAL_AT_END = re.compile(rb"\{(\d{1,10})(\+?)\}$")


class State(enum.Enum):
    """RFC 5804 §1.2: before and after AUTHENTICATE (LOGOUT just ends the connection)."""

    NONAUTH = "non-authenticated"
    AUTH = "authenticated"


class Action(enum.Enum):
    """What the connection must do after writing a reply."""

    NONE = "none"
    START_TLS = "start_tls"  # RFC 5804 §2.2: handshake right after "OK", then re-send capabilities
    CLOSE = "close"


class Code(str, enum.Enum):
    """Response codes (RFC 5804 §1.3)."""

    AUTH_TOO_WEAK = "AUTH-TOO-WEAK"
    ENCRYPT_NEEDED = "ENCRYPT-NEEDED"
    QUOTA = "QUOTA"
    QUOTA_MAXSCRIPTS = "QUOTA/MAXSCRIPTS"
    QUOTA_MAXSIZE = "QUOTA/MAXSIZE"
    TRANSITION_NEEDED = "TRANSITION-NEEDED"
    TRYLATER = "TRYLATER"
    ACTIVE = "ACTIVE"
    NONEXISTENT = "NONEXISTENT"
    ALREADYEXISTS = "ALREADYEXISTS"
    WARNINGS = "WARNINGS"
    TAG = "TAG"


def quote(text: str) -> bytes:
    """A string as RFC 5804 §4 ``string``: quoted when it can be, else a literal."""
    data = text.encode("utf-8")
    if len(data) <= MAX_QUOTED and b"\r" not in data and b"\n" not in data and b"\0" not in data:
        return b'"' + data.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
    return literal(data)


def literal(data: bytes) -> bytes:
    """RFC 5804 §4 ``literal-s2c``: ``{N}`` CRLF then the octets."""
    return b"{%d}\r\n" % len(data) + data


@dataclass(frozen=True, slots=True)
class Reply:
    """Response lines (``data``, already encoded, each ending in CRLF), then the final
    ``OK``/``NO``/``BYE`` with an optional response code and human-readable text."""

    status: str  # "OK", "NO" or "BYE"
    text: str = ""
    code: Code | None = None
    code_arg: str | None = None  # TAG's string (RFC 5804 §2.13)
    data: bytes = b""
    action: Action = Action.NONE

    @property
    def ok(self) -> bool:
        return self.status == "OK"

    def status_line(self) -> bytes:
        parts = [self.status.encode()]
        if self.code is not None:
            code = self.code.value.encode()
            if self.code_arg is not None:
                code += b" " + quote(self.code_arg)
            parts.append(b"(" + code + b")")
        if self.text:
            parts.append(quote(self.text))
        return b" ".join(parts) + b"\r\n"

    def chunks(self) -> list[bytes]:
        return [self.data, self.status_line()] if self.data else [self.status_line()]


@dataclass(frozen=True, slots=True)
class Challenge:
    """A SASL server challenge: a string (RFC 5804 §2.1), the client answers with one."""

    data: str  # already base64
    action: Action = Action.NONE

    def chunks(self) -> list[bytes]:
        return [quote(self.data) + b"\r\n"]


Response = Reply | Challenge


def ok(text: str = "", code: Code | None = None, data: bytes = b"", action: Action = Action.NONE,
       code_arg: str | None = None) -> Reply:
    return Reply("OK", text, code, code_arg, data, action)


def no(text: str, code: Code | None = None, action: Action = Action.NONE) -> Reply:
    return Reply("NO", text, code, None, b"", action)


def bye(text: str, code: Code | None = None) -> Reply:
    return Reply("BYE", text, code, None, b"", Action.CLOSE)


# ----------------------------------------------------------------------- framing


@dataclass(frozen=True, slots=True)
class NeedLiteral:
    """Read exactly ``size`` octets and give them to :meth:`Framer.feed_literal`. With
    ``discard`` the literal is over the limit: read and drop it, the command will be
    refused once complete (a non-synchronizing literal is already on its way)."""

    size: int
    discard: bool = False


@dataclass(frozen=True, slots=True)
class TooLarge:
    """A literal far over any limit: not worth reading, the connection ends with BYE."""

    size: int


@dataclass(frozen=True, slots=True)
class Command:
    """A complete command in wire form (literals as ``{N}`` CRLF data), without its CRLF.
    ``oversized``: a literal was dropped for being over the limit."""

    raw: bytes
    oversized: bool = False


Event = NeedLiteral | TooLarge | Command


def first_word(line: bytes) -> bytes:
    return line.split(b" ", 1)[0].strip().upper()


class Framer:
    """Assembles one command at a time from lines and literal bytes.

    ``limits(verb)`` gives (largest literal kept, largest literal worth reading and
    dropping) for the command being read, so PUTSCRIPT may carry a script while a
    client that has not logged in cannot send more than a SASL response.
    """

    def __init__(self, limits: Callable[[bytes], tuple[int, int]]) -> None:
        self._limits = limits
        self._parts: list[bytes] = []
        self._first: bytes | None = None
        self._oversized = False
        self._discarding = False

    @property
    def in_command(self) -> bool:
        return self._first is not None

    def reset(self) -> None:
        self._parts.clear()
        self._first = None
        self._oversized = False
        self._discarding = False

    def feed_line(self, line: bytes) -> Event:
        """``line`` includes its line end (CRLF, or a bare LF from lenient clients)."""
        if line.endswith(b"\r\n"):
            line = line[:-2]
        elif line.endswith(b"\n"):
            line = line[:-1]
        if self._first is None:
            self._first = line
        m = _LITERAL_AT_END.search(line)
        if m is None:
            self._parts.append(line)
            cmd = Command(b"".join(self._parts), self._oversized)
            self.reset()
            return cmd
        size = int(m.group(1))
        keep, drop = self._limits(first_word(self._first))
        if size > drop:
            self.reset()
            return TooLarge(size)
        self._discarding = size > keep
        self._oversized = self._oversized or self._discarding
        self._parts.append(line[: m.start()] + b"{%d}\r\n" % size)
        return NeedLiteral(size, self._discarding)

    def feed_literal(self, data: bytes) -> None:
        """The literal's octets (anything, when it was announced as ``discard``)."""
        if not self._discarding:
            self._parts.append(data)
        self._discarding = False


# ----------------------------------------------------------------------- tokens


class ProtocolError(Exception):
    """The command is malformed; ``str(exc)`` is safe to send to the client."""


@dataclass(frozen=True, slots=True)
class Args:
    """A tokenized command: the upper-cased verb and its arguments, strings as bytes
    and numbers as int (RFC 5804 §4: HAVESPACE's size is a number)."""

    verb: str
    args: tuple[bytes | int, ...]


_ATOM = re.compile(rb"[A-Za-z][A-Za-z0-9_-]{0,31}")
_NUMBER = re.compile(rb"\d{1,10}")
_LITERAL = re.compile(rb"\{(\d{1,10})\}\r\n")


def _string(raw: bytes, pos: int) -> tuple[bytes, int]:
    """A quoted string or literal at ``pos``; returns (value, next position)."""
    if raw[pos:pos + 1] == b'"':
        out = bytearray()
        i = pos + 1
        while i < len(raw):
            c = raw[i]
            if c == 0x22:  # closing quote
                if len(out) > MAX_QUOTED:
                    raise ProtocolError("Quoted string too long; use a literal")
                return bytes(out), i + 1
            if c == 0x5C:  # RFC 5804 §4 QUOTED-SPECIALS: only \" and \\ may be escaped
                if i + 1 >= len(raw) or raw[i + 1] not in b'"\\':
                    raise ProtocolError("Invalid escape in quoted string")
                out.append(raw[i + 1])
                i += 2
                continue
            if c in (0x0D, 0x0A, 0x00):
                raise ProtocolError("Invalid character in quoted string")
            out.append(c)
            i += 1
        raise ProtocolError("Unterminated quoted string")
    m = _LITERAL.match(raw, pos)
    if m is None:
        raise ProtocolError("Expected a string")
    start = m.end()
    end = start + int(m.group(1))
    if end > len(raw):
        raise ProtocolError("Literal shorter than announced")
    return raw[start:end], end


def tokenize(raw: bytes) -> Args:
    """Split a command: ``VERB [SP arg]*`` where each argument is a string or a number."""
    m = _ATOM.match(raw)
    if m is None:
        raise ProtocolError("Expected a command name")
    verb = m.group().decode().upper()
    pos = m.end()
    args: list[bytes | int] = []
    while pos < len(raw):
        if raw[pos:pos + 1] != b" ":
            raise ProtocolError("Expected a space between arguments")
        pos += 1
        if len(args) >= MAX_ARGS:
            raise ProtocolError("Too many arguments")
        n = _NUMBER.match(raw, pos)
        if n is not None and raw[n.end():n.end() + 1] in (b"", b" "):
            args.append(int(n.group()))
            pos = n.end()
            continue
        value, pos = _string(raw, pos)
        args.append(value)
    return Args(verb, tuple(args))


def single_string(raw: bytes) -> bytes:
    """A SASL response line: exactly one string (RFC 5804 §2.1)."""
    if not raw:
        raise ProtocolError("Expected a string")
    value, pos = _string(raw, 0)
    if pos != len(raw):
        raise ProtocolError("Unexpected data after the string")
    return value


def text_arg(value: bytes | int, what: str = "argument") -> str:
    """A string argument as text: RFC 5804 §4 strings are UTF-8."""
    if isinstance(value, int):
        raise ProtocolError(f"Expected a string as {what}")
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError(f"The {what} is not valid UTF-8") from None
