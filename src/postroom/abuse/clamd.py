"""clamd's INSTREAM protocol, I/O-free: the request frames and the reply parser.

clamd (ClamAV's daemon, see clamd(8)) scans a stream sent as ``zINSTREAM\\0``
followed by chunks, each a 4-byte unsigned big-endian length and that many octets, and
a zero-length chunk that ends the stream. The ``z`` prefix makes clamd end its reply
with NUL instead of a newline, so a reply is read up to the first NUL (or EOF). The
replies are ``stream: OK``, ``stream: <signature name> FOUND``, ``INSTREAM size limit
exceeded. ERROR`` (more than clamd's StreamMaxLength was sent) and ``<reason> ERROR``
for everything else. The asyncio client is :mod:`postroom.abuse.clamav`.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Iterator
from dataclasses import dataclass

COMMAND = b"zINSTREAM\0"
END = b"\0\0\0\0"  # the zero-length chunk
CHUNK = 256 * 1024  # well under clamd's default StreamMaxLength (25 MB) and its chunk buffer
MAX_REPLY = 4096  # a reply longer than this is not clamd's
MAX_NAME = 100  # signature names are echoed in SMTP replies: bounded, printable ASCII


class Status(enum.Enum):
    CLEAN = "clean"
    FOUND = "found"
    TOO_LARGE = "too-large"  # clamd's StreamMaxLength was exceeded: not scanned
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class Verdict:
    status: Status
    detail: str = ""  # the signature name (FOUND) or clamd's error text (ERROR), sanitised


def frames(data: bytes, chunk: int = CHUNK) -> Iterator[bytes]:
    """The whole request for ``data``, one write per chunk: the command is joined to the
    first chunk and the end mark to the last, so a typical message is a single send."""
    if chunk <= 0:
        raise ValueError("chunk size must be positive")
    view = memoryview(data)
    head = COMMAND
    for start in range(0, len(view), chunk):
        piece = view[start:start + chunk]
        tail = END if start + chunk >= len(view) else b""
        yield b"".join((head, struct.pack(">I", len(piece)), piece, tail))
        head = b""
    if not view:
        yield COMMAND + END


def encode(data: bytes, chunk: int = CHUNK) -> bytes:
    """:func:`frames` joined (tests and small messages)."""
    return b"".join(frames(data, chunk))


def decode_request(raw: bytes) -> bytes:
    """The stream a request carries (the inverse of :func:`encode`, for a test server).

    Raises ValueError on a request that is not one complete zINSTREAM."""
    if not raw.startswith(COMMAND):
        raise ValueError("not a zINSTREAM request")
    pos, out = len(COMMAND), list[bytes]()
    while True:
        if len(raw) - pos < 4:
            raise ValueError("truncated chunk length")
        (size,) = struct.unpack_from(">I", raw, pos)
        pos += 4
        if size == 0:
            if pos != len(raw):
                raise ValueError("data after the end of the stream")
            return b"".join(out)
        if len(raw) - pos < size:
            raise ValueError("truncated chunk")
        out.append(raw[pos:pos + size])
        pos += size


def _clean_text(s: str) -> str:
    """Printable ASCII only: the text goes into SMTP replies, headers and log lines."""
    return "".join(c if " " <= c <= "~" else "?" for c in s).strip()[:MAX_NAME]


def parse_reply(raw: bytes) -> Verdict:
    """clamd's reply to one zINSTREAM (with or without its terminating NUL)."""
    text = raw.split(b"\0", 1)[0].decode("utf-8", "replace").strip()
    if text.startswith("stream:"):
        body = text[len("stream:"):].strip()
        if body == "OK":
            return Verdict(Status.CLEAN)
        if body.endswith(" FOUND"):
            name = _clean_text(body[:-len(" FOUND")])
            if name:
                return Verdict(Status.FOUND, name)
    if text.endswith("ERROR"):
        reason = text[:-len("ERROR")].strip()
        if reason.startswith("stream:"):
            reason = reason[len("stream:"):].strip()
        if "size limit exceeded" in reason:
            return Verdict(Status.TOO_LARGE, _clean_text(reason))
        return Verdict(Status.ERROR, _clean_text(reason) or "error")
    return Verdict(Status.ERROR, f"unexpected reply: {_clean_text(text)}" if text else "empty reply")


class ReplyReader:
    """Collects reply bytes until the NUL that ends a z-command's reply.

    ``feed`` returns True when the reply is complete; a reply that grows past
    :data:`MAX_REPLY` without a NUL is an error rather than a memory sink."""

    __slots__ = ("buf",)

    def __init__(self) -> None:
        self.buf = bytearray()

    def feed(self, data: bytes) -> bool:
        self.buf += data
        if len(self.buf) > MAX_REPLY:
            raise ValueError("clamd reply too long")
        return b"\0" in self.buf

    def verdict(self) -> Verdict:
        return parse_reply(bytes(self.buf))
