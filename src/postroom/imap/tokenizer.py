"""Framing of client commands: lines and literals, without I/O (RFC 3501 §2.2, §4.3).

A command is one or more lines; a line ending in ``{N}`` (synchronizing) or
``{N+}`` (RFC 7888 LITERAL+) is followed by exactly N octets of literal data, after
which the command goes on with the next line. The :class:`CommandFramer` takes
lines and literal data and answers what it needs next, so the glue knows when to
send the ``+`` continuation. The finished command is handed to the parser as one
buffer in wire form (``{N}\\r\\n`` + data), parsed once.

Sizes are bounded: each literal by a limit the caller chooses from the command's
first line (small before login, the message size for APPEND), and all literals of
a command together.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

_LITERAL_AT_END = re.compile(rb"\{(\d{1,10})(\+?)\}$")


@dataclass(frozen=True, slots=True)
class NeedLiteral:
    """The client announced a literal of ``size`` octets; send ``+`` first if ``sync``."""

    size: int
    sync: bool


@dataclass(frozen=True, slots=True)
class LiteralTooLarge:
    """The announced literal is over the limit. A synchronizing literal was not sent
    yet, so the command can be refused; a non-synchronizing one is already on its way
    (RFC 7888 §4): the caller must read and drop ``size`` octets or close."""

    tag: bytes
    size: int
    sync: bool


@dataclass(frozen=True, slots=True)
class Command:
    """A complete command in wire form, without its final CRLF."""

    raw: bytes


Event = NeedLiteral | LiteralTooLarge | Command


def first_words(line: bytes) -> tuple[bytes, bytes]:
    """Tag and upper-cased verb (``UID FETCH`` counts as one verb) of a command line."""
    parts = line.split(b" ", 3)
    tag = parts[0].strip() if parts else b""
    verb = parts[1].strip().upper() if len(parts) > 1 else b""
    if verb == b"UID" and len(parts) > 2:
        verb = b"UID " + parts[2].strip().upper()
    return tag, verb


class CommandFramer:
    """Assembles one command at a time from lines and literal bytes."""

    def __init__(self, limits: Callable[[bytes], tuple[int, int]]) -> None:
        # limits(verb) → (largest single literal, largest whole command) allowed now.
        self._limits = limits
        self._parts: list[bytes] = []
        self._total = 0
        self._first: bytes | None = None

    @property
    def in_command(self) -> bool:
        return self._first is not None

    def reset(self) -> None:
        self._parts.clear()
        self._total = 0
        self._first = None

    def feed_line(self, line: bytes) -> Event:
        """``line`` includes its line end (CRLF, or a bare LF from lenient clients)."""
        if line.endswith(b"\r\n"):
            line = line[:-2]
        elif line.endswith(b"\n"):
            line = line[:-1]
        if self._first is None:
            self._first = line
        self._total += len(line)
        m = _LITERAL_AT_END.search(line)
        if m is None:
            self._parts.append(line)
            # Each literal marker already carries its CRLF: the pieces simply join.
            raw = b"".join(self._parts)
            self.reset()
            return Command(raw)
        size = int(m.group(1))
        sync = not m.group(2)
        tag, verb = first_words(self._first)
        per_literal, total = self._limits(verb)
        if size > per_literal or self._total + size > total:
            self.reset()
            return LiteralTooLarge(tag, size, sync)
        # Normalise "{N+}" to "{N}" so the parser sees one literal syntax.
        self._parts.append(line[: m.start()] + b"{%d}\r\n" % size)
        return NeedLiteral(size, sync)

    def feed_literal(self, data: bytes) -> None:
        self._parts.append(data)
        self._total += len(data)

    def tag(self) -> bytes:
        return first_words(self._first or b"")[0]

    def verb(self) -> bytes:
        """The upper-cased verb of the command being assembled (b"" between commands)."""
        return first_words(self._first or b"")[1]
