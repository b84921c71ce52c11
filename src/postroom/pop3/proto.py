"""POP3 on the wire, without I/O: command lines in, replies out.

Everything here is pure: parsing a command line, the session states, the reply
records and how they are encoded, and TOP's cut. Byte-stuffing is the shared
``postroom.wire.dotstuff.stuff`` (one module for SMTP and POP3, GUIDE principle 7). The command table
(verb → handler, states, arguments) lives in :mod:`.commands`, the handlers in
:mod:`.handlers`; :mod:`.server` only moves bytes.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from ..wire.dotstuff import reply_chunks

# RFC 2449 §4: a command line is at most 255 octets including CRLF, and a client
# MUST NOT send longer. We accept somewhat more (some clients send long user names
# or AUTH initial responses, RFC 5034 §4) but stay bounded.
MAX_COMMAND_LINE = 1024
# RFC 5034 §4: SASL responses have no such limit; a few KB covers PLAIN and LOGIN.
MAX_SASL_LINE = 8192
# RFC 2449 §4: each argument is at most 40 octets (AUTH initial responses and
# PASS, whose single argument may contain spaces per RFC 1939 §7, are exempt).
MAX_ARG_LENGTH = 40


class State(enum.Enum):
    """RFC 1939 §3: the three states of a POP3 session."""

    AUTHORIZATION = "AUTHORIZATION"
    TRANSACTION = "TRANSACTION"
    UPDATE = "UPDATE"


class Action(enum.Enum):
    """What the connection must do after writing a reply."""

    NONE = "none"
    START_TLS = "start_tls"  # RFC 2595 §4: handshake right after "+OK" to STLS
    CLOSE = "close"


class Code(str, enum.Enum):
    """Extended response codes (RFC 2449 §8, RFC 3206)."""

    IN_USE = "IN-USE"  # RFC 2449 §8.1.1: the maildrop is locked by another session
    LOGIN_DELAY = "LOGIN-DELAY"  # RFC 2449 §8.1.2
    SYS_TEMP = "SYS/TEMP"  # RFC 3206 §4: a temporary problem, try again later
    SYS_PERM = "SYS/PERM"  # RFC 3206 §4: a permanent problem unrelated to credentials
    AUTH = "AUTH"  # RFC 3206 §5: the credentials were wrong or refused


@dataclass(frozen=True, slots=True)
class Reply:
    """One status line, optionally followed by a multi-line body.

    ``body`` is sent as is: already byte-stuffed and ending with the terminating
    ``.CRLF`` (RFC 1939 §3), as :func:`listing` and ``wire.dotstuff.stuff`` make it;
    or the same in pieces (``wire.dotstuff.stuffed``), which go out with the status
    line in one vectored write without being joined.
    """

    ok: bool
    text: str = ""
    code: Code | None = None
    body: bytes | tuple[bytes, ...] | None = None
    action: Action = Action.NONE

    def status_line(self) -> bytes:
        line = "+OK" if self.ok else "-ERR"
        if self.code is not None:
            line += f" [{self.code.value}]"
        if self.text:
            line += " " + self.text
        return (line + "\r\n").encode("utf-8")

    def chunks(self) -> list[bytes]:
        return reply_chunks(self.status_line(), self.body)

    def encode(self) -> bytes:
        return b"".join(self.chunks())


@dataclass(frozen=True, slots=True)
class Challenge:
    """A SASL server challenge: ``+ base64`` (RFC 5034 §4); the next line is the response."""

    data: str  # already base64, may be empty
    action: Action = Action.NONE

    def chunks(self) -> list[bytes]:
        return [b"+ " + self.data.encode("ascii") + b"\r\n"]

    def encode(self) -> bytes:
        return b"".join(self.chunks())


Response = Reply | Challenge


def ok(text: str = "", body: bytes | tuple[bytes, ...] | None = None, action: Action = Action.NONE) -> Reply:
    return Reply(True, text, None, body, action)


def err(text: str, code: Code | None = None, action: Action = Action.NONE) -> Reply:
    return Reply(False, text, code, None, action)


def listing(lines: list[str]) -> bytes:
    """A multi-line body from lines that cannot start with a dot (LIST, UIDL, CAPA)."""
    return "".join(line + "\r\n" for line in lines).encode("utf-8") + b".\r\n"


class CommandError(Exception):
    """The line could not be parsed; ``str(exc)`` is safe to send to the client."""


@dataclass(frozen=True, slots=True)
class Command:
    verb: str  # upper case
    args: tuple[str, ...]
    rest: str  # everything after "VERB " as sent: PASS's argument may hold spaces


def parse_command(line: bytes) -> Command:
    """RFC 1939 §3: a case-insensitive keyword, then arguments separated by spaces."""
    if line.endswith(b"\n"):
        line = line[:-2] if line.endswith(b"\r\n") else line[:-1]
    if not line:
        raise CommandError("Empty command")
    if b"\0" in line or b"\r" in line:
        raise CommandError("Invalid characters in command")
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        raise CommandError("Command is not valid UTF-8") from None
    verb, _, rest = text.partition(" ")
    # RFC 1939 §3: keywords are three or four characters (RFC 2449 allows longer
    # extension keywords); anything else cannot be a command we know.
    if not verb.isascii() or not verb.isalnum() or not verb[0].isalpha() or len(verb) > 16:
        raise CommandError("Unknown command")
    return Command(verb.upper(), tuple(rest.split()), rest)


def parse_msg_number(arg: str) -> int | None:
    """A message number (RFC 1939 §3: decimal, counting from 1); None if malformed."""
    if not arg.isascii() or not arg.isdigit() or len(arg) > 10:
        return None
    n = int(arg)
    return n if n >= 1 else None


def parse_non_negative(arg: str) -> int | None:
    if not arg.isascii() or not arg.isdigit() or len(arg) > 10:
        return None
    return int(arg)


def top_of(raw: bytes, lines: int) -> bytes:
    """RFC 1939 §7 TOP: the header, the blank line, then ``lines`` lines of the body."""
    end = raw.find(b"\r\n\r\n")
    if end < 0:
        return raw  # no body: the whole message is header
    pos = end + 4
    for _ in range(lines):
        if pos >= len(raw):
            break
        nl = raw.find(b"\n", pos)
        pos = len(raw) if nl < 0 else nl + 1
    return raw[:pos]
