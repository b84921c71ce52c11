"""One accepted client connection, as protocol servers see it.

Protocol engines are sans-I/O; their ``server.py`` glue reads lines and exact byte
counts through this class, which enforces the limits every protocol needs (line
length, idle timeout) and implements STARTTLS so that nothing the client pipelined
before the handshake survives it (RFC 3207 §4.2, RFC 2595 §3.1, the 2011 STARTTLS
command-injection class of bugs). A compression layer (:mod:`.deflate`, IMAP COMPRESS) can
be switched on between the protocol and the socket (or TLS): reads, writes and the limits then
apply to the inflated stream, unchanged for the protocol.

Input arrives through :class:`InputProtocol`, an ``asyncio.Protocol`` that appends what the
transport delivers to one buffer and wakes the one reader waiting for it: a read finds a whole
line already buffered and returns with no wait, and otherwise waits on one future, never
through asyncio's StreamReader (its read, wait and resume layers cost more per command than
the protocols' own work). Reading pauses once :data:`HIGH_WATER` octets sit unread and nobody
waits for more (a pipelining client meets TCP back-pressure, not an ever-growing buffer).
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections.abc import Callable
from typing import Any

from .. import log
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


def _end_wait(fut: asyncio.Future[None]) -> None:
    # The timer of InputProtocol.wait_lost: the wait ends as if the loss had been reported.
    if not fut.done():
        fut.set_result(None)


class IdleTimeout(Exception):
    """Nothing arrived within the timeout."""


def within(end: float, timeout: float | None = None) -> float:
    """The time left until ``end`` (a ``time.monotonic()`` value), at most ``timeout``;
    IdleTimeout once it has passed."""
    left = end - time.monotonic()
    if left <= 0:
        raise IdleTimeout()
    return left if timeout is None else min(left, timeout)


logger = log.get("net")

# Unread input at which the transport stops reading while nobody waits for more: a client that
# pipelines faster than we answer fills its socket buffers, not our memory. A reader that waits
# resumes it, so a line or literal longer than this still arrives (bounded by its own limits).
HIGH_WATER = 256 * 1024


class InputProtocol(asyncio.Protocol):
    """The transport's protocol for one connection: input lands in one buffer, and the one
    task waiting for input (a :class:`Connection` read) is woken by setting a future.

    Attribute names follow asyncio's StreamReader and StreamWriter where code outside this
    module reads them (``transport``, ``close()``, ``get_extra_info()``, ``at_eof()``; a new
    protocol taking the transport over gets the rest from :meth:`hand_over`):
    :attr:`Connection.reader` and :attr:`Connection.writer` are this object."""

    # Slots: ten thousand idle IMAP sessions hold ten thousand of these.
    __slots__ = (
        "_buffer",
        "_drain_waiters",
        "_eof",
        "_gone",
        "_lost",
        "_on_made",
        "_over_ssl",
        "_paused",
        "_write_paused",
        "adopted",
        "high_water",
        "on_input",
        "received",
        "task",
        "transport",
        "waiter",
    )

    def __init__(self, on_made: Callable[[InputProtocol], None] | None = None,
                 high_water: int = HIGH_WATER) -> None:
        self.transport: Any = None
        self._buffer = bytearray()  # what arrived and nobody has taken yet
        self._paused = False  # reading paused by us (HIGH_WATER)
        self._eof = False  # EOF or connection lost: nothing more will arrive
        self.received = 0  # octets off the wire (or the TLS layer), for the logs
        self.waiter: asyncio.Future[None] | None = None  # the read waiting for input
        self.high_water = high_water
        self._on_made = on_made
        self._over_ssl = False
        self._write_paused = False
        self._drain_waiters: list[asyncio.Future[None]] = []
        self._lost: asyncio.Future[None] | None = None
        self._gone = False  # connection_lost has been called
        self.adopted: Any = None  # a StreamReaderProtocol whose transport this took over
        self.task: asyncio.Task[None] | None = None  # the session's task (kept referenced)
        #: Connection._on_input while a session answers input in this callback (answer_inline).
        self.on_input: Callable[[bytes], bool] | None = None

    # -- asyncio.Protocol --------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self._over_ssl = transport.get_extra_info("sslcontext") is not None
        if self._on_made is not None:
            self._on_made(self)

    def data_received(self, data: bytes) -> None:
        buf = self._buffer
        buf += data
        self.received += len(data)
        w = self.waiter
        if w is not None:
            hook = self.on_input
            if hook is not None and hook(data):
                return  # answered here (Connection.answer_inline): the read goes on waiting
            self.waiter = None
            if not w.done():
                w.set_result(None)
        elif len(buf) > self.high_water and not self._paused:
            self._pause()

    def eof_received(self) -> bool:
        self._eof = True
        self._wake()
        # Half-closed: the session may still write its last reply (a client that sends QUIT
        # and shuts down its side). TLS cannot stay half-open, and asyncio warns if asked.
        return not self._over_ssl

    def connection_lost(self, exc: Exception | None) -> None:
        self._eof = True
        self._gone = True
        self._wake()
        for w in self._drain_waiters:
            if not w.done():
                w.set_result(None)
        self._drain_waiters.clear()
        if self._lost is not None and not self._lost.done():
            self._lost.set_result(None)
        if self.adopted is not None:  # its owner may wait for its end (wait_closed)
            self.adopted.connection_lost(exc)

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        for w in self._drain_waiters:
            if not w.done():
                w.set_result(None)
        self._drain_waiters.clear()

    # -- for Connection ----------------------------------------------------------------
    def _wake(self) -> None:
        w = self.waiter
        if w is not None:
            self.waiter = None
            if not w.done():
                w.set_result(None)

    def _pause(self) -> None:
        try:
            self.transport.pause_reading()
            self._paused = True
        except (AttributeError, NotImplementedError, RuntimeError):
            pass  # a transport that cannot pause (or is closing): nothing to hold back

    def resume(self) -> None:
        """Read from the socket again (a reader wants more than is buffered)."""
        if self._paused:
            self._paused = False
            try:
                self.transport.resume_reading()
            except (AttributeError, NotImplementedError, RuntimeError):
                pass

    def at_eof(self) -> bool:
        return self._eof and not self._buffer

    def hand_over(self) -> tuple[bytes, bool]:
        """For a protocol that has just been set on the transport in this one's place (the HTTP
        listener's aiohttp bridge): the input that arrived before the switch (taken out of this
        buffer, to be fed to the new protocol first) and whether the peer had already closed its
        side. Reading resumes if it was paused; what the transport reads from now on goes to the
        new protocol, and only after this step (a read is never delivered within this call)."""
        data = bytes(self._buffer)
        self._buffer.clear()
        self.resume()
        return data, self._eof

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        t = self.transport
        return default if t is None else t.get_extra_info(name, default)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    async def wait_writable(self) -> None:
        """Until the transport takes writes again (or the connection is gone)."""
        if self._gone:
            raise ConnectionClosed()
        if not self._write_paused:
            return
        w = asyncio.get_running_loop().create_future()
        self._drain_waiters.append(w)
        try:
            await w
        finally:
            if w in self._drain_waiters:
                self._drain_waiters.remove(w)
        if self._gone:
            raise ConnectionClosed()

    async def wait_lost(self, timeout: float | None = None) -> None:
        """Until the transport has reported the connection lost, or ``timeout`` seconds.

        The time limit is a timer handle that ends the wait, not ``asyncio.timeout`` (a context
        manager, the current task looked up, the timer rescheduled): every connection waits
        here once as it closes, and with one message a connection (smtp-source, many MTAs)
        that was a step of its own per message. When the limit ends the wait, every other
        wait for this connection's loss ends with it: it is being abandoned."""
        if self._gone:
            return
        loop = asyncio.get_running_loop()
        lost = self._lost
        if lost is None:
            lost = self._lost = loop.create_future()
        if timeout is None:
            await lost
            return
        timer = loop.call_later(timeout, _end_wait, lost)
        try:
            await lost
        finally:
            timer.cancel()

    @classmethod
    def adopt(cls, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> InputProtocol:
        """Take over the transport of an ``asyncio.start_server`` stream pair, with whatever its
        reader already holds (code and tests that accept connections through streams)."""
        self = cls()
        transport: Any = writer.transport
        self.transport = transport
        self._over_ssl = transport.get_extra_info("sslcontext") is not None
        pending = getattr(reader, "_buffer", None)
        if pending:
            self._buffer += pending
            pending.clear()
        self._eof = bool(reader.at_eof() or getattr(reader, "_eof", False))
        self.adopted = transport.get_protocol()
        transport.set_protocol(self)
        if getattr(reader, "_paused", False):
            reader._paused = False  # type: ignore[attr-defined]
            transport.resume_reading()
        if transport.is_closing() and not self._eof:
            self._eof = True
        return self


class Connection:
    """Buffered line/byte reads with limits, writes, and in-place TLS upgrade."""

    def __init__(self, reader: asyncio.StreamReader | None = None, writer: asyncio.StreamWriter | None = None,
                 *, listener_name: str = "", server_tls: ssl.SSLContext | None = None,
                 implicit_tls: bool = False, stream: InputProtocol | None = None) -> None:
        """Over ``stream`` (the runtime's accepted connections: :mod:`postroom.server`) or
        over the transport of a ``reader``/``writer`` pair, which it takes over."""
        if stream is None:
            if reader is None or writer is None:
                raise TypeError("Connection needs a stream, or a reader and a writer")
            stream = InputProtocol.adopt(reader, writer)
        self._stream = stream
        # Compatibility names: the stream plays both parts (see InputProtocol).
        self.reader: Any = stream
        self.writer: Any = stream
        self.listener_name = listener_name
        self.server_tls = server_tls
        # Unread input, as the protocol sees it: the stream's own buffer in plaintext (no copy
        # between them), the inflated octets once compressed (start_compression).
        self._buf = stream._buffer
        peer = stream.get_extra_info("peername") or ("", 0)
        sock = stream.get_extra_info("sockname") or ("", 0)
        self.peer_ip: str = str(peer[0])
        self.peer_port: int = int(peer[1]) if len(peer) > 1 else 0
        self.local_ip: str = str(sock[0])
        self.local_port: int = int(sock[1]) if len(sock) > 1 else 0
        self.tls_active: bool = implicit_tls
        self.bytes_out = 0
        # Monotonic time since which the connection has waited for input with nothing
        # half-read, i.e. between commands; None while a command is being received or
        # processed. Lets a shutting-down server close idle sessions at once.
        self.idle_since: float | None = None
        # The socket, for TCP_QUICKACK: looked up once (uvloop makes a new wrapper object
        # on every get_extra_info("socket"), a cost on each reply batch). The same file
        # descriptor stays under TLS, so STARTTLS does not change it.
        self._sock: Any = stream.get_extra_info("socket") if _QUICKACK is not None else None
        self._fd = -1
        if self._sock is not None and _quickack_fd is not None:
            try:
                self._fd = int(self._sock.fileno())
            except (OSError, ValueError, TypeError):
                self._fd = -1
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._deadline = 0.0
        self._wait_timeout = 0.0  # the timeout of the wait in progress (answer_inline restarts it)
        self._deflate: DeflateStream | None = None
        self._inline: Callable[[bytearray], bool] | None = None
        self._answered = False  # answer_inline answered during readline's first wait

    @property
    def bytes_in(self) -> int:
        """Octets received (on the wire: compressed ones when compressing)."""
        return self._stream.received

    # -- reading ---------------------------------------------------------------
    # The idle timeout is one lazily re-armed timer per connection rather than an
    # ``asyncio.timeout`` (a timer handle and a context manager) around every read: a
    # busy session reads thousands of times per idle period. Each wait records its
    # deadline; the timer, when it fires, fails the waiting future with IdleTimeout only
    # if that wait's deadline has passed, and otherwise re-arms itself for it. Failing the
    # future (not cancelling the task) leaves any input that arrives at the same moment in
    # the buffer, and a cancellation from elsewhere (server shutdown) is never confused
    # with a timeout.
    async def _wait(self, timeout: float | None) -> None:
        """Until more input has arrived (ConnectionClosed after EOF, IdleTimeout after
        ``timeout``)."""
        st = self._stream
        if st._eof:
            raise ConnectionClosed()
        if st._paused:
            st.resume()
        if not self._buf:
            self.idle_since = time.monotonic()
        # The loop is looked up once: on Python 3.11 get_running_loop() makes a getpid()
        # system call each time.
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        st.waiter = fut
        if timeout is not None:
            deadline = loop.time() + timeout
            self._deadline = deadline
            self._wait_timeout = timeout
            self._waiter = fut
            timer = self._timer
            if timer is None or timer.when() > deadline:
                if timer is not None:
                    timer.cancel()
                self._timer = loop.call_at(deadline, self._on_timer)
        try:
            await fut
        finally:
            self._waiter = None
            if st.waiter is fut:
                st.waiter = None
        self.idle_since = None

    def _on_timer(self) -> None:
        self._timer = None
        fut = self._waiter
        if fut is None or fut.done():
            return  # not waiting: the next wait arms the timer again
        loop = self._loop or asyncio.get_running_loop()
        if loop.time() < self._deadline:
            self._timer = loop.call_at(self._deadline, self._on_timer)
            return
        fut.set_exception(IdleTimeout())

    async def _fill(self, timeout: float | None) -> None:
        """More input into ``_buf``."""
        z = self._deflate
        if z is None:
            before = len(self._buf)
            while len(self._buf) == before:
                await self._wait(timeout)
            return
        raw = self._stream._buffer
        end = None
        while True:
            try:
                if raw:
                    z.feed(bytes(raw))
                    raw.clear()
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
                await self._wait(timeout)
            except DeflateError as exc:
                self._stream._eof = True
                raise CompressionError(f"invalid compressed data: {exc}") from None

    async def readline(self, limit: int, timeout: float | None) -> bytes:
        """One line including its LF (and CR before it, if any).

        A line longer than ``limit`` is consumed up to its LF and :class:`LineTooLong` is
        raised, so the protocol can answer with an error and stay in sync.
        """
        buf = self._buf  # replaced only by start_compression, between commands
        i = buf.find(b"\n")
        if i >= 0 and i == len(buf) - 1 and i < limit:
            # The usual case: the buffer holds exactly one whole command line.
            line = bytes(buf)
            buf.clear()
            return line
        start = 0
        end = None
        while True:
            if i >= 0:
                if i == len(buf) - 1:  # the line is all there is: no slice, no shift
                    line = bytes(buf)
                    buf.clear()
                else:
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
                    self._answered = False
                else:
                    if self._answered:  # the first wait was held open by answer_inline: the line began since
                        self._answered = False
                        end = time.monotonic() + timeout
                    timeout = within(end)
            if len(buf) > limit:
                await self._discard_line(timeout, end)
                raise LineTooLong()
            start = len(buf)
            if self._deflate is None:
                await self._wait(timeout)  # (what arrives lands in buf itself)
            else:
                await self._fill(timeout)
            i = buf.find(b"\n", start)

    def answer_inline(self, hook: Callable[[bytearray], bool] | None) -> None:
        """Let ``hook`` answer input in the protocol's callback, without waking the task, while
        the task waits in :meth:`readline` with nothing buffered (NNTP's ARTICLE and POP3's RETR by number:
        docs/nntp.md). It is called with the buffer when input arrives into an empty one;
        returning True means it consumed the whole buffer and wrote its answer, and the read
        goes on waiting, its idle timeout restarted; False leaves the input to the read. The
        caller sets it only around its own ``readline`` (never while a message body or a
        literal is read) and clears it with None; it must not raise. Not while compressing."""
        self._inline = hook
        self._stream.on_input = self._on_input if hook is not None else None

    def line_hook(self, answer: Callable[[bytes], list[bytes] | None], busy: Callable[[], bool],
                  tag: str) -> Callable[[bytearray], bool]:
        """A hook for :meth:`answer_inline` that answers one whole command line:
        ``answer(line)`` gives the reply's pieces, or None to leave the line to the task.
        Declined when ``busy()`` (earlier replies not yet written, the server stopping), when
        more than one line is buffered (a pipelined batch: the task keeps the order), or when
        the kernel is not taking our writes (back-pressure is the task's: it drains). Never
        raises into the transport: a failing ``answer`` is logged and the task answers the line."""
        def hook(buf: bytearray) -> bool:
            if busy() or buf.find(b"\n") != len(buf) - 1 or self._stream.transport.get_write_buffer_size():
                return False
            try:
                chunks = answer(bytes(buf))
            except Exception:
                logger.exception("%s answering in the callback failed", tag)
                return False
            if chunks is None:
                return False
            buf.clear()
            try:
                self.writelines(chunks)
            except ConnectionClosed:
                return False  # the task finds the connection closed at its next read
            return True
        return hook

    def _on_input(self, data: bytes) -> bool:
        hook = self._inline
        buf = self._buf
        # Only input that starts a line: the waiting readline then has nothing half-read.
        if hook is None or len(buf) != len(data) or self._deflate is not None:
            return False
        if not hook(buf):  # (it does not raise: it runs in the transport's callback)
            return False
        self._answered = True
        if self._waiter is not None and self._loop is not None:
            self._deadline = self._loop.time() + self._wait_timeout
        return True

    async def _discard_line(self, timeout: float | None, end: float | None) -> None:
        discarded = 0
        while True:
            i = self._buf.find(b"\n")
            if i >= 0:
                del self._buf[: i + 1]
                return
            discarded += len(self._buf)
            if self._deflate is not None and discarded > MAX_DISCARD_COMPRESSED:
                self._stream._eof = True
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
            if not self._stream.transport.is_closing():
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
        z = self._deflate
        return bool(self._buf) or (z is not None and (z.has_input or bool(self._stream._buffer)))

    # -- writing ---------------------------------------------------------------
    def write(self, data: bytes) -> None:
        """One batch of output; when compressed, flushed (Z_SYNC_FLUSH) so none is held back."""
        if self._deflate is not None:
            data = self._deflate.compress_flush(data)
        self.bytes_out += len(data)
        try:
            self._stream.transport.write(data)
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
            self._stream.transport.writelines(chunks)
        except RuntimeError:
            raise self._closed_under_us() from None
        return n

    def _closed_under_us(self) -> ConnectionClosed:
        # uvloop raises RuntimeError ("the handler is closed") when a write comes after
        # the transport closed itself, e.g. on a reset while the reply was being made:
        # that is the peer going away, not a server fault.
        self._stream._eof = True
        return ConnectionClosed()

    async def drain(self, timeout: float | None = 60.0) -> None:
        st = self._stream
        transport = st.transport
        if not transport.get_write_buffer_size() and not transport.is_closing():
            # All of it is with the kernel already (uvloop and asyncio send at once what the
            # socket takes): nothing to wait for, and a timeout around the wait (a timer
            # handle, a context manager) would cost more than the write did.
            return
        if transport.is_closing():
            # Closing: let the transport notice a lost connection first (as StreamWriter).
            await asyncio.sleep(0)
            if st._gone:
                raise ConnectionClosed()
        if not st._write_paused:
            return
        try:
            async with asyncio.timeout(timeout):
                await st.wait_writable()
        except TimeoutError:
            raise IdleTimeout() from None

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
        # From here the stream's buffer holds compressed input and ours the inflated octets.
        self._buf = bytearray()
        self._deflate = z

    # -- TLS -------------------------------------------------------------------
    async def start_tls(self, timeout: float = 60.0) -> None:
        """Upgrade in place after the protocol's "go ahead" reply has been sent.

        Whatever the client sent before the handshake is discarded: a command injected
        in plaintext must never be executed as if it came over TLS.
        """
        if self.server_tls is None:
            raise RuntimeError("no TLS context")
        st = self._stream
        await self.drain(timeout)
        # Dropped in the same step as the handshake starts (loop.start_tls pauses reading
        # before it yields): nothing read in plaintext reaches the TLS session.
        self._buf.clear()
        st._buffer.clear()
        st.resume()
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                transport = await loop.start_tls(st.transport, st, self.server_tls, server_side=True)
        except TimeoutError:
            raise IdleTimeout() from None
        except (ConnectionError, ssl.SSLError, OSError):
            st._eof = True
            raise ConnectionClosed() from None
        if transport is None:  # the connection was lost during the handshake
            st._eof = True
            raise ConnectionClosed()
        st.transport = transport
        st._over_ssl = True
        self.tls_active = True

    def ssl_object(self) -> Any:
        return self._stream.get_extra_info("ssl_object")

    def tls_description(self) -> str | None:
        """Protocol and cipher, for logs and ``Received`` headers; None in plaintext."""
        return _tls.describe(self.ssl_object()) if self.tls_active else None

    async def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        try:
            self._stream.close()
            await self._stream.wait_lost(5.0)
        except Exception:  # closing a broken socket may fail in many ways; nothing to do
            pass
