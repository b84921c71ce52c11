"""A DEFLATE layer for a byte stream (RFC 1951 raw deflate, as IMAP COMPRESS uses it, RFC 4978).

Sans-I/O: bytes in, bytes out, no socket. :class:`DeflateStream` holds both directions of one
connection. Outbound, :meth:`DeflateStream.compress` takes what the protocol writes and
:meth:`DeflateStream.flush` ends each batch with a sync flush (RFC 4978 §4: the peer must be
able to read every response without waiting for more). Inbound, :meth:`DeflateStream.feed`
takes what came off the wire and :meth:`DeflateStream.read` gives it back inflated, at most
``max_length`` octets at a time, keeping the rest compressed: a few kilobytes that inflate to
gigabytes (a zip bomb) never exist inflated in memory at once, and the reader's own limits
(line length, literal size) see the inflated stream piece by piece, as they would see a socket.
"""

from __future__ import annotations

import zlib

# RFC 4978 §4: raw deflate, no zlib header or checksum; a negative window size says so to zlib.
WBITS = -15


class DeflateError(Exception):
    """The peer's data is not a valid deflate stream."""


class DeflateStream:
    """Both directions of one compressed stream."""

    __slots__ = ("_out", "_in", "_pending", "_full")

    def __init__(self, level: int = 6) -> None:
        # Level 6 and the default memory level: what Dovecot and zlib default to; a larger
        # level costs CPU on every FETCH for a few percent on the wire.
        self._out = zlib.compressobj(level, zlib.DEFLATED, WBITS)
        self._in = zlib.decompressobj(WBITS)
        # Compressed input fed but not yet given to the decompressor (zlib's unconsumed_tail
        # plus anything fed since).
        self._pending = b""
        # The last read filled max_length: zlib may hold more output (the rest of a long
        # match) even with no input left, so the next read asks it again.
        self._full = False

    # -- outbound ----------------------------------------------------------------
    def compress(self, data: bytes) -> bytes:
        """Compress ``data``; zlib may keep some of it back until :meth:`flush`."""
        return self._out.compress(data)

    def flush(self) -> bytes:
        """Everything compressed so far, ending on a byte boundary (Z_SYNC_FLUSH) so the
        peer can inflate it all now; the stream stays open."""
        return self._out.flush(zlib.Z_SYNC_FLUSH)

    def compress_flush(self, data: bytes) -> bytes:
        """``compress(data) + flush()``: one batch of output."""
        return self._out.compress(data) + self._out.flush(zlib.Z_SYNC_FLUSH)

    # -- inbound -----------------------------------------------------------------
    def feed(self, data: bytes) -> None:
        """Compressed octets from the peer."""
        if self._in.eof:
            # A final block ended the stream (RFC 4978 has no way to end it but closing the
            # connection): anything after it is not ours to read.
            if data:
                raise DeflateError("data after the end of the deflate stream")
            return
        self._pending = self._pending + data if self._pending else data

    @property
    def has_input(self) -> bool:
        """Input is waiting to be inflated (:meth:`read` may give more without :meth:`feed`)."""
        return bool(self._pending) or self._full

    def read(self, max_length: int) -> bytes:
        """Up to ``max_length`` (> 0) inflated octets; ``b""`` when more input is needed.

        Raises :class:`DeflateError` for input that does not inflate."""
        if not self._pending and not self._full:
            return b""
        data, self._pending = self._pending, b""
        try:
            out = self._in.decompress(data, max_length)
        except zlib.error as exc:
            self._full = False
            raise DeflateError(str(exc)) from None
        self._pending = self._in.unconsumed_tail
        self._full = len(out) >= max_length
        if self._in.eof and self._in.unused_data:
            raise DeflateError("data after the end of the deflate stream")
        return out
