"""The end of an SMTP/POP3 dot-terminated block, found safely and fast.

RFC 5321 §4.1.1.4: the data ends with the sequence CRLF "." CRLF, and only that
sequence. A bare LF or bare CR next to the dot (``\\n.\\n``, ``\\r.\\n``,
``\\n.\\r\\n`` …) is *content*: servers that accepted those as the end allowed
"SMTP smuggling" (a second, forged message hidden inside the first, 2023).
RFC 5321 §4.5.2: a leading "." on a line is removed (transparency).

:class:`DataReader` is incremental and chunk-based: the server feeds it whatever
the socket returned, it scans for the terminator with ``bytes.find`` (no
per-line Python work), and hands back the body plus anything the client sent
after the terminator (a pipelined next command).

:func:`normalize_newlines` turns remaining bare CR / bare LF into CRLF so the
stored message always has CRLF line ends; :func:`stuff` is the inverse of
un-stuffing, for senders (outbound SMTP, POP3 RETR), and :func:`stuffed` the same
in pieces for a vectored write.
"""

from __future__ import annotations

import re

END = b"\r\n.\r\n"
_BARE = re.compile(rb"\r\n|\r|\n")


class DataReader:
    """Collects one dot-terminated block.

    ``feed(chunk)`` returns True once the terminator has been seen; then ``body``
    holds the un-stuffed content (its last line still ends with CRLF) and
    ``leftover`` the bytes that followed the terminator. When the content exceeds
    ``max_size`` octets, reading continues to the terminator (so the session stays
    in sync) but the bytes are discarded and ``too_big`` is set.
    """

    __slots__ = ("max_size", "_buf", "_scan", "_raw", "done", "too_big", "body", "leftover")

    def __init__(self, max_size: int) -> None:
        self.max_size = max_size
        # A virtual CRLF before the first line, so that ".\r\n" at once is an empty
        # message and a "." opening the first line is un-stuffed like any other.
        self._buf = bytearray(b"\r\n")
        self._scan = 0
        self._raw = 0  # wire octets seen so far
        self.done = False
        self.too_big = False
        self.body = b""
        self.leftover = b""

    def feed(self, chunk: bytes) -> bool:
        if self.done:
            raise RuntimeError("DataReader already complete")
        self._raw += len(chunk)
        self._buf += chunk
        i = self._buf.find(END, self._scan)
        if i < 0:
            # Keep the scan position 4 bytes back: the terminator may straddle chunks.
            self._scan = max(0, len(self._buf) - 4)
            # Stuffing adds at most one octet per line; allow some slack before giving up.
            if not self.too_big and len(self._buf) > self.max_size + self.max_size // 8 + 4096:
                self.too_big = True
            if self.too_big:
                tail = bytes(self._buf[-4:])
                self._buf = bytearray(tail)
                self._scan = 0
            return False
        self.leftover = bytes(self._buf[i + 5:])
        self.done = True
        if self.too_big:
            self._buf = bytearray()
            return True
        block = bytes(self._buf[: i + 2])  # up to and including the CRLF before "."
        self._buf = bytearray()
        if b"\r\n." in block:
            block = block.replace(b"\r\n.", b"\r\n")  # RFC 5321 §4.5.2
        self.body = block[2:]
        if len(self.body) > self.max_size:
            self.too_big = True
            self.body = b""
        return True

    def drop_rest(self) -> None:
        """Keep reading to the terminator (the session stays in sync) without keeping the
        content, as for a message over ``max_size``: there is no memory left for it."""
        self.too_big = True

    @property
    def octets(self) -> int:
        """Wire octets consumed (for logs and the too-big reply)."""
        return self._raw - len(self.leftover)


def normalize_newlines(data: bytes) -> bytes:
    """Every bare CR and bare LF becomes CRLF (a no-op, fast, for well-formed input)."""
    return normalize_newlines_counted(data)[0]


def normalize_newlines_counted(data: bytes) -> tuple[bytes, int]:
    """:func:`normalize_newlines`, and the number of LFs in what it returns: the check
    counts them anyway, and the store's MIME parse would count them again (a single-part
    body's line count for BODYSTRUCTURE comes from it; ``Store.deliver(newlines=)``)."""
    crlf = data.count(b"\r\n")
    lf = data.count(b"\n")
    if lf == crlf and data.count(b"\r") == crlf:
        return data, lf
    out = _BARE.sub(b"\r\n", data)
    return out, out.count(b"\n")


# A line that starts with a dot. sre's scan for this literal prefix takes about half the
# time of bytes.find / bytes.replace, whose search (CPython's default_find) slows down on
# text where CR, LF and "." are as frequent as they are in mail.
_LINE_DOT = re.compile(rb"\n\.")


def stuff(data: bytes) -> bytes:
    """Dot-stuff a CRLF message and append the terminator (RFC 5321 §4.5.2)."""
    if data.startswith(b"."):
        data = b"." + data
    if _LINE_DOT.search(data) is not None:
        data = data.replace(b"\r\n.", b"\r\n..")
    if data and not data.endswith(b"\r\n"):
        data += b"\r\n"
    return data + b".\r\n"


def stuffed(data: bytes) -> tuple[bytes, ...]:
    """``stuff(data)`` as pieces to send with one writev: most messages have no line that
    starts with a dot, and then the stored bytes go out as they are, not copied twice."""
    if not data.startswith(b".") and _LINE_DOT.search(data) is None:
        if data.endswith(b"\r\n"):
            return (data, b".\r\n")
        return (data, b"\r\n.\r\n") if data else (b".\r\n",)
    return (stuff(data),)


def reply_chunks(status: bytes, body: bytes | tuple[bytes, ...] | None) -> list[bytes]:
    """A POP3 or NNTP reply as the pieces of one vectored write: the status line, then the
    dot-stuffed multi-line body (one piece, or several handed out without a joined copy)."""
    if body is None:
        return [status]
    if isinstance(body, tuple):
        return [status, *body]
    return [status, body]
