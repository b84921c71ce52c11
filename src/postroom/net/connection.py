"""One accepted client connection, as protocol servers see it.

Protocol engines are sans-I/O; their ``server.py`` glue reads lines and exact byte
counts through this class, which enforces the limits every protocol needs (line
length, idle timeout) and implements STARTTLS so that nothing the client pipelined
before the handshake survives it (RFC 3207 §4.2, RFC 2595 §3.1, the 2011 STARTTLS
command-injection class of bugs). A compression layer (:mod:`.deflate`, IMAP COMPRESS) can
be switched on between the protocol and the socket (or TLS): reads, writes and the limits then
apply to the inflated stream, unchanged for the protocol.
"""

from __future__ import annotations

import asyncio
import collections
import socket
import ssl
import time
from typing import Any

from . import tls as _tls
from .deflate import DeflateError, DeflateStream


class ConnectionClosed(Exception):
    """The peer went away (EOF or reset)."""


class CompressionError(ConnectionClosed):
    """The peer's compressed data does not inflate, or inflates past what we accept; the
    connection is over (there is no way to resynchronize a deflate stream)."""


# Inflated octets per read of a compressed stream: what a read of the socket gives at most,
# so the limits see a compressed stream in pieces no bigger than a plaintext one's.
INFLATE_CHUNK = 65536
# Inflated octets of one overlong line we discard before hanging up, when compressed: in
# plaintext a client pays for each octet it makes us discard, compressed about 1/1000 of it.
MAX_DISCARD_COMPRESSED = 16 * 1024 * 1024


class LineTooLong(Exception):
    """A line exceeded the limit; the rest of it has been read and discarded."""


_QUICKACK = getattr(socket, "TCP_QUICKACK", None)


def _libc_setsockopt() -> Any:
    """libc's setsockopt(2), to set TCP_QUICKACK on a file descriptor directly; None where
    it cannot be had (then the transport's socket object is used).

    uvloop's ``get_extra_info("socket")`` gives a stand-in whose every ``setsockopt`` builds
    a ``socket.socket`` around the descriptor (itself three system calls) and detaches it:
    four system calls and two objects for each reply batch, where one call does. Owning no
    descriptor, this cannot close one by mistake as a second ``socket.socket`` would."""
    if _QUICKACK is None:
        return None
    try:
        import ctypes

        fn = ctypes.CDLL(None, use_errno=True).setsockopt
        fn.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_void_p, ctypes.c_uint)
        fn.restype = ctypes.c_int
        one = ctypes.c_int(1)
        size = ctypes.sizeof(one)
        ref = ctypes.addressof(one)
        level = int(socket.IPPROTO_TCP)

        def quickack(fd: int) -> None:
            fn(fd, level, _QUICKACK, ref, size)  # -1 (a socket gone under us) needs nothing done

        quickack.keep = one  # type: ignore[attr-defined]  # the int the address points at
        return quickack
    except (ImportError, OSError, AttributeError):
        return None


_quickack_fd = _libc_setsockopt()


class IdleTimeout(Exception):
    """Nothing arrived within the timeout."""


def within(end: float, timeout: float | None = None) -> float:
    """The time left until ``end`` (a ``time.monotonic()`` value), at most ``timeout``;
    IdleTimeout once it has passed."""
    left = end - time.monotonic()
    if left <= 0:
        raise IdleTimeout()
    return left if timeout is None else min(left, timeout)


class Connection:
    """Buffered line/byte reads with limits, writes, and in-place TLS upgrade."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *,
                 listener_name: str = "", server_tls: ssl.SSLContext | None = None,
                 implicit_tls: bool = False) -> None:
        self.reader = reader
        self.writer = writer
        self.listener_name = listener_name
        self.server_tls = server_tls
        self._buf = bytearray()
        self._eof = False
        peer = writer.get_extra_info("peername") or ("", 0)
        sock = writer.get_extra_info("sockname") or ("", 0)
        self.peer_ip: str = str(peer[0])
        self.peer_port: int = int(peer[1]) if len(peer) > 1 else 0
        self.local_ip: str = str(sock[0])
        self.local_port: int = int(sock[1]) if len(sock) > 1 else 0
        self.tls_active: bool = implicit_tls
        self.bytes_in = 0
        self.bytes_out = 0
        # Monotonic time since which the connection has waited for input with nothing
        # half-read, i.e. between commands; None while a command is being received or
        # processed. Lets a shutting-down server close idle sessions at once.
        self.idle_since: float | None = None
        # The idle timer (see _fill).
        # The socket, for TCP_QUICKACK: looked up once (uvloop makes a new wrapper object
        # on every get_extra_info("socket"), a cost on each reply batch). The same file
        # descriptor stays under TLS, so STARTTLS does not change it.
        self._sock: Any = writer.get_extra_info("socket") if _QUICKACK is not None else None
        self._fd = -1
        if self._sock is not None and _quickack_fd is not None:
            try:
                self._fd = int(self._sock.fileno())
            except (OSError, ValueError, TypeError):
                self._fd = -1
        # asyncio's stream protocol keeps a deque for drain() waiters: about 600 bytes each,
        # as much as the rest of an idle session's Python objects together would like to be.
        # A list does what it is used for (append, remove, iterate) in a few dozen bytes.
        proto: Any = getattr(writer, "_protocol", None)
        waiters = getattr(proto, "_drain_waiters", None)
        if type(waiters) is collections.deque and not waiters:
            proto._drain_waiters = []
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiter: asyncio.Task[Any] | None = None
        self._deadline = 0.0
        self._timed_out = False
        self._deflate: DeflateStream | None = None

    # -- reading ---------------------------------------------------------------
    # The idle timeout is one lazily re-armed timer per connection rather than an
    # ``asyncio.timeout`` (a timer handle and a context manager) around every read: a
    # busy session reads thousands of times per idle period. Each wait records when it
    # started; the timer, when it fires, cancels the waiting task only if the wait it
    # finds has lasted the full timeout, and otherwise re-arms itself for that wait's
    # deadline. The cancellation is turned into IdleTimeout as asyncio.timeout does
    # (``uncancel``), so a cancellation from elsewhere (server shutdown) still propagates.
    async def _fill(self, timeout: float | None) -> None:
        z = self._deflate
        if z is None:
            self._buf += await self._receive(timeout)
            return
        end = None
        while True:
            try:
                out = z.read(INFLATE_CHUNK)
                if out:
                    self._buf += out
                    return
                if timeout is not None:
                    # As readline: the timeout is for the whole piece, however it trickles in.
                    if end is None:
                        end = time.monotonic() + timeout
                    else:
                        timeout = within(end)
                z.feed(await self._receive(timeout))
            except DeflateError as exc:
                self._eof = True
                raise CompressionError(f"invalid compressed data: {exc}") from None

    async def _receive(self, timeout: float | None) -> bytes:
        """The next chunk off the socket (or TLS), as it came."""
        if self._eof:
            raise ConnectionClosed()
        if not self._buf:
            self.idle_since = time.monotonic()
        reader = self.reader
        if timeout is None or getattr(reader, "_buffer", None):
            # Data already waiting, or no limit: the read cannot outlast a timeout.
            try:
                chunk = await reader.read(65536)
            except (ConnectionError, ssl.SSLError, OSError):
                self._eof = True
                raise ConnectionClosed() from None
        else:
            # The loop is looked up once: on Python 3.11 get_running_loop() (and current_task()
            # without a loop) makes a getpid() system call each time, twice per command here.
            loop = self._loop
            if loop is None:
                loop = self._loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout
            self._deadline = deadline
            self._waiter = task = asyncio.current_task(loop)
            timer = self._timer
            if timer is None or timer.when() > deadline:
                if timer is not None:
                    timer.cancel()
                self._timer = loop.call_at(deadline, self._on_timer)
            try:
                # (the read is inline, here and above: a coroutine less per command)
                chunk = await reader.read(65536)
            except (ConnectionError, ssl.SSLError, OSError):
                self._eof = True
                raise ConnectionClosed() from None
            except asyncio.CancelledError:
                if self._timed_out:
                    self._timed_out = False
                    if task is not None and task.uncancel() == 0:
                        raise IdleTimeout() from None
                raise
            finally:
                # Cleared in the step that resumed us: the timer never sees a stale waiter.
                self._waiter = None
        self.idle_since = None
        if not chunk:
            self._eof = True
            raise ConnectionClosed()
        self.bytes_in += len(chunk)
        return chunk

    def _on_timer(self) -> None:
        self._timer = None
        task = self._waiter
        if task is None or task.done():
            return  # not waiting: the next wait arms the timer again
        loop = self._loop or asyncio.get_running_loop()
        if loop.time() < self._deadline:
            self._timer = loop.call_at(self._deadline, self._on_timer)
            return
        self._timed_out = True
        task.cancel()

    async def readline(self, limit: int, timeout: float | None) -> bytes:
        """One line including its LF (and CR before it, if any).

        A line longer than ``limit`` is consumed up to its LF and :class:`LineTooLong` is
        raised, so the protocol can answer with an error and stay in sync.
        """
        buf = self._buf  # the same object for the connection's life (cleared, never replaced)
        start = 0
        end = None
        if not buf and self._deflate is None:
            # Between commands nothing is buffered and the next chunk is usually the whole
            # line: read it and hand it over without the loop's bookkeeping or a second copy.
            if timeout is not None:
                end = time.monotonic() + timeout
            buf += await self._receive(timeout)
            if buf[-1:] == b"\n" and len(buf) <= limit and buf.find(b"\n") == len(buf) - 1:
                line = bytes(buf)
                buf.clear()
                return line
        while True:
            i = buf.find(b"\n", start)
            if i >= 0:
                line = bytes(buf[: i + 1])
                del buf[: i + 1]
                if len(line) > limit:
                    raise LineTooLong()
                return line
            if timeout is not None:
                # The timeout is for the whole line, not each piece of it: a client that
                # trickles a byte now and then cannot hold the connection for ever.
                if end is None:
                    end = time.monotonic() + timeout
                else:
                    timeout = within(end)
            if len(self._buf) > limit:
                await self._discard_line(timeout, end)
                raise LineTooLong()
            start = len(self._buf)
            await self._fill(timeout)

    async def _discard_line(self, timeout: float | None, end: float | None) -> None:
        discarded = 0
        while True:
            i = self._buf.find(b"\n")
            if i >= 0:
                del self._buf[: i + 1]
                return
            discarded += len(self._buf)
            if self._deflate is not None and discarded > MAX_DISCARD_COMPRESSED:
                self._eof = True
                raise CompressionError("overlong line in compressed data")
            self._buf.clear()
            await self._fill(timeout if end is None else within(end))

    async def readexactly(self, n: int, timeout: float | None) -> bytes:
        while len(self._buf) < n:
            await self._fill(timeout)
        data = bytes(self._buf[:n])
        del self._buf[:n]
        return data

    def ack_quickly(self) -> None:
        """Ask the kernel to ACK what arrives next at once (Linux TCP_QUICKACK).

        After the server answers a command (an IMAP "+"), Linux delays its ACKs to ride on
        the next reply; a client with Nagle on then holds back the last piece of its data
        until that ACK comes, up to 40 ms later. Worth asking before a big upload.
        """
        fd = self._fd
        if fd >= 0:
            # Only while the transport holds the descriptor: once it closes, the number may
            # already belong to another connection.
            if not self.writer.transport.is_closing():
                _quickack_fd(fd)
            return
        sock = self._sock
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
            except OSError:
                pass

    async def read_some(self, timeout: float | None) -> bytes:
        """Whatever is buffered, or the next chunk from the peer (for streaming parsers)."""
        if not self._buf:
            await self._fill(timeout)
        data = bytes(self._buf)
        self._buf.clear()
        return data

    def unread(self, data: bytes) -> None:
        """Give bytes back to the front of the buffer (a parser read past its message)."""
        self._buf[:0] = data

    def has_buffered_input(self) -> bool:
        """True when the client sent more than was read (pipelining, or an injection attempt)."""
        return (bool(self._buf) or bool(getattr(self.reader, "_buffer", b""))
                or (self._deflate is not None and self._deflate.has_input))

    # -- writing ---------------------------------------------------------------
    def write(self, data: bytes) -> None:
        """One batch of output; when compressed, flushed (Z_SYNC_FLUSH) so none is held back."""
        if self._deflate is not None:
            data = self._deflate.compress_flush(data)
        self.bytes_out += len(data)
        try:
            self.writer.write(data)
        except RuntimeError:
            raise self._closed_under_us() from None

    def writelines(self, chunks: list[bytes]) -> int:
        """Write several buffers as one (uvloop sends them with one writev); returns the octets
        (on the wire: compressed ones when compressing, the batch ending in a sync flush)."""
        z = self._deflate
        if z is not None:
            chunks = [z.compress(c) for c in chunks]
            chunks.append(z.flush())
        n = 0
        for c in chunks:
            n += len(c)
        self.bytes_out += n
        try:
            self.writer.writelines(chunks)
        except RuntimeError:
            raise self._closed_under_us() from None
        return n

    def _closed_under_us(self) -> ConnectionClosed:
        # uvloop raises RuntimeError ("the handler is closed") when a write comes after
        # the transport closed itself, e.g. on a reset while the reply was being made:
        # that is the peer going away, not a server fault.
        self._eof = True
        return ConnectionClosed()

    async def drain(self, timeout: float | None = 60.0) -> None:
        transport = self.writer.transport
        if not transport.get_write_buffer_size() and not transport.is_closing():
            # All of it is with the kernel already (uvloop and asyncio send at once what the
            # socket takes): StreamWriter.drain would return at once, and a timeout around it
            # (a timer handle, a context manager) costs more than the write did.
            return
        try:
            async with asyncio.timeout(timeout):
                await self.writer.drain()
        except TimeoutError:
            raise IdleTimeout() from None
        except (ConnectionError, ssl.SSLError, OSError):
            self._eof = True
            raise ConnectionClosed() from None

    async def send(self, data: bytes, timeout: float | None = 60.0) -> None:
        self.write(data)
        await self.drain(timeout)

    # -- compression -----------------------------------------------------------
    @property
    def compressed(self) -> bool:
        return self._deflate is not None

    def start_compression(self) -> None:
        """Compress both directions from now on (raw deflate, RFC 4978), once the protocol's
        "go ahead" reply has been written uncompressed.

        Anything already read past that command is the start of the compressed stream (a
        client may send compressed data as soon as it has sent the command)."""
        if self._deflate is not None:
            raise RuntimeError("compression already active")
        z = DeflateStream()
        if self._buf:
            z.feed(bytes(self._buf))
            self._buf.clear()
        self._deflate = z

    # -- TLS -------------------------------------------------------------------
    async def start_tls(self, timeout: float = 60.0) -> None:
        """Upgrade in place after the protocol's "go ahead" reply has been sent.

        Whatever the client sent before the handshake is discarded: a command injected
        in plaintext must never be executed as if it came over TLS.
        """
        if self.server_tls is None:
            raise RuntimeError("no TLS context")
        self._buf.clear()
        pending = getattr(self.reader, "_buffer", None)
        if pending:
            pending.clear()
        try:
            async with asyncio.timeout(timeout):
                await self.writer.start_tls(self.server_tls)
        except TimeoutError:
            raise IdleTimeout() from None
        except (ConnectionError, ssl.SSLError, OSError):
            self._eof = True
            raise ConnectionClosed() from None
        self.tls_active = True

    def ssl_object(self) -> Any:
        return self.writer.get_extra_info("ssl_object")

    def tls_description(self) -> str | None:
        """Protocol and cipher, for logs and ``Received`` headers; None in plaintext."""
        return _tls.describe(self.ssl_object()) if self.tls_active else None

    async def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        try:
            self.writer.close()
            async with asyncio.timeout(5):
                await self.writer.wait_closed()
        except Exception:  # closing a broken socket may fail in many ways; nothing to do
            pass
