"""Sans-I/O pieces of the SMTP client: reply parsing, EHLO capabilities, parameters.

Nothing here touches a socket; :mod:`postroom.outbound.client` feeds bytes in and
gets :class:`Reply` objects out, so every rule below is testable with plain bytes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# RFC 5321 §4.5.3.1.5: a reply line is at most 512 octets; servers exceed it in
# practice, so we accept more but still bound it, and bound the number of lines.
MAX_LINE = 4096
MAX_LINES = 100

_ENHANCED = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})(?:\s|$)")


class ReplyError(Exception):
    """The peer broke the reply syntax (RFC 5321 §4.2); the connection is unusable."""


@dataclass(frozen=True, slots=True)
class Reply:
    code: int
    lines: tuple[str, ...]

    @property
    def text(self) -> str:
        return " / ".join(self.lines)

    @property
    def ok(self) -> bool:
        return 200 <= self.code < 400

    @property
    def transient(self) -> bool:
        return 400 <= self.code < 500

    @property
    def permanent(self) -> bool:
        return self.code >= 500

    @property
    def enhanced(self) -> str | None:
        """RFC 3463 status code from the first line (RFC 2034 ENHANCEDSTATUSCODES), if any."""
        m = _ENHANCED.match(self.lines[0]) if self.lines else None
        if m and m.group(1) == str(self.code)[0]:
            return f"{m.group(1)}.{m.group(2)}.{m.group(3)}"
        return None

    def status(self, default_detail: str = "0.0") -> str:
        """An RFC 3463 status for DSNs: the server's own, or class.default_detail."""
        return self.enhanced or f"{str(self.code)[0]}.{default_detail}"

    def __str__(self) -> str:
        return f"{self.code} {self.text}"


class ReplyParser:
    """Bytes in, complete replies out: ``250-a\\r\\n250 b\\r\\n`` → one Reply(250, ("a", "b"))."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._code: int | None = None
        self._lines: list[str] = []

    def feed(self, data: bytes) -> list[Reply]:
        self._buf += data
        out: list[Reply] = []
        while True:
            i = self._buf.find(b"\n")
            if i < 0:
                if len(self._buf) > MAX_LINE:
                    raise ReplyError("reply line too long")
                return out
            raw = bytes(self._buf[:i]).rstrip(b"\r")
            del self._buf[: i + 1]
            if len(raw) > MAX_LINE:
                raise ReplyError("reply line too long")
            reply = self._line(raw)
            if reply is not None:
                out.append(reply)

    def _line(self, raw: bytes) -> Reply | None:
        # RFC 5321 §4.2: Reply-line = *( Reply-code "-" [ textstring ] CRLF )
        #                               Reply-code [ SP textstring ] CRLF
        if len(raw) < 3 or not raw[:3].isdigit() or (len(raw) > 3 and raw[3:4] not in b" -"):
            raise ReplyError(f"malformed reply line {raw[:40]!r}")
        code = int(raw[:3])
        if not 200 <= code <= 599:
            raise ReplyError(f"reply code {code} out of range")
        if self._code is not None and code != self._code:
            raise ReplyError("reply code changed inside a multiline reply")
        self._code = code
        self._lines.append(raw[4:].decode("utf-8", "replace"))
        if len(self._lines) > MAX_LINES:
            raise ReplyError("too many reply lines")
        if raw[3:4] == b"-":
            return None
        reply = Reply(code, tuple(self._lines))
        self._code, self._lines = None, []
        return reply

    @property
    def pending(self) -> bool:
        return bool(self._buf) or self._code is not None


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What an EHLO reply offers (RFC 5321 §4.1.1.1); HELO gives an empty set."""

    keywords: dict[str, str] = field(default_factory=dict)  # upper-case keyword → parameters
    esmtp: bool = True

    def has(self, keyword: str) -> bool:
        return keyword.upper() in self.keywords

    @property
    def size_limit(self) -> int | None:
        """RFC 1870 §4: ``SIZE 0`` or ``SIZE`` alone means no fixed limit."""
        v = self.keywords.get("SIZE")
        if v is None:
            return None
        v = v.strip()
        return int(v) if v.isascii() and v.isdigit() and int(v) > 0 else None

    @property
    def auth_mechanisms(self) -> tuple[str, ...]:
        return tuple(self.keywords.get("AUTH", "").upper().split())


def parse_ehlo(reply: Reply) -> Capabilities:
    """The first line is the greeting domain; each further line one extension."""
    kw: dict[str, str] = {}
    for line in reply.lines[1:]:
        name, _, params = line.strip().partition(" ")
        if name:
            kw[name.upper()] = params
    return Capabilities(kw)
