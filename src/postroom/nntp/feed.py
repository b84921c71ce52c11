"""The durable outgoing feed: articles accepted here, offered to the configured peers.

Queueing. When :meth:`News.post` accepts an article (a local POST, one from a peer, one
from a list gateway) it adds :func:`queue_statements`' rows to the transaction that
completes the article's history entry: one ``feed`` row (peer, Message-ID, next try,
attempts) per ``[[nntp.peers]]`` entry that has a ``host``, whose ``groups`` wildmat
matches a group the article was stored in, and whose name is not already in the
article's Path (it has the article, RFC 5537 §3.3). So an accepted article is queued
exactly when it is committed, and a crash cannot lose the queue entry. Then
:func:`wake` starts this process's runner at once; the others poll every second.

Offering. One runner per server (the process holding ``data_dir/news-feed.lock``, like
the outbound queue's scheduler lock; another worker takes over if it dies) runs a task
per peer. Each claims due rows (pushing their next try one lease ahead, so a second
runner on another PostgreSQL node skips them), connects, reads CAPABILITIES and offers
the articles with RFC 4644 streaming (pipelined CHECKs, then TAKETHIS for the wanted
ones) when the peer advertises STREAMING and ``streaming`` is on, with IHAVE (RFC 3977
§6.3.2) otherwise. A row is deleted when the peer took the article or refused it for
good (235/239, 435/437/438/439) or the article is gone (expired or cancelled since);
a "try later" (436/431, 400), a refused connection or a timeout reschedules it after
the next ``[nntp] feed_retry`` step, and after ``feed_max_attempts`` it is dropped
(logged). The rows live in the store's database, so a restart loses nothing.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..news.state import SqliteNewsState
from ..news.wildmat import compile_wildmat
from ..wire.dotstuff import stuffed
from .peering import path_entries
from .settings import NntpSettings, PeerSettings, read_settings

if TYPE_CHECKING:
    from ..context import ServerContext
    from ..news.service import News

log = logging.getLogger("postroom.nntp.feed")

Stmt = tuple[str, tuple[Any, ...]]

BATCH = 50  # articles claimed (and CHECKs pipelined) at a time
LEASE = 300.0  # a claim's length: how long a row is hidden from other runners
POLL = 1.0  # how often idle runners look for rows other processes queued
LOCK_RETRY = 5.0
CONNECT_TIMEOUT = 30.0
REPLY_TIMEOUT = 120.0  # RFC 3977 §3.1: generous; a peer may take a while to store an article
MAX_REPLY_LINE = 4096

_INSERT = "INSERT INTO feed(peer, message_id, next_try, attempts) VALUES (?, ?, ?, 0) ON CONFLICT DO NOTHING"

# -- queueing (called by News.post inside its commit) -----------------------------------------
_settings_cache: dict[int, tuple[Any, NntpSettings]] = {}


def _settings(config: Any) -> NntpSettings:
    """``[nntp]`` of this config object (a SIGHUP reload brings a new object)."""
    cached = _settings_cache.get(id(config))
    if cached is None or cached[0] is not config:
        cached = (config, read_settings(config, []))
        _settings_cache.clear()
        _settings_cache[id(config)] = cached
    return cached[1]


def wants(peer: PeerSettings, newsgroups: Sequence[str], path: str) -> bool:
    """Whether ``peer`` is fed an article in ``newsgroups`` whose Path is ``path``."""
    if not peer.host or peer.name.lower() in path_entries(path):
        return False
    match = compile_wildmat(peer.groups)
    return any(match(g) for g in newsgroups)


def queue_statements(config: Any, *, message_id: str, newsgroups: Sequence[str], path: str,
                     now: float) -> list[Stmt]:
    """The ``feed`` rows for a just-accepted article (see the module docstring)."""
    return [(_INSERT, (p.name, message_id, now)) for p in _settings(config).peers
            if wants(p, newsgroups, path)]


_wakeups: set[asyncio.Event] = set()


def wake() -> None:
    """Something was queued in this process: the runner (if it is here) looks now."""
    for ev in _wakeups:
        ev.set()


# -- talking to a peer ------------------------------------------------------------------------
class FeedError(Exception):
    """The connection to the peer failed or it answered out of protocol: retry later."""


@dataclass(slots=True)
class Outcome:
    done: list[str]  # delete: sent, refused for good, or gone
    retry: list[str]  # try again after the next retry step


def _for_peer(raw: bytes) -> bytes:
    """The stored article as sent on: without any Xref (ours is local, RFC 5536 §3.2.14)."""
    end = raw.find(b"\r\n\r\n")
    head = raw[:end + 2] if end >= 0 else raw
    if b"xref:" not in head.lower():
        return raw
    lines = head.split(b"\r\n")
    kept: list[bytes] = []
    skipping = False
    for line in lines:
        if line[:1] in (b" ", b"\t") and skipping:
            continue  # a folded continuation of Xref
        skipping = line.lower().startswith(b"xref:")
        if not skipping:
            kept.append(line)
    return b"\r\n".join(kept) + (raw[end + 2:] if end >= 0 else b"")


class PeerConnection:
    """One outgoing NNTP connection to a peer (we are the client here)."""

    def __init__(self, peer: PeerSettings, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.peer = peer
        self.reader = reader
        self.writer = writer
        self.streaming = False

    @classmethod
    async def open(cls, peer: PeerSettings) -> PeerConnection:
        tls = ssl.create_default_context() if peer.tls != "none" else None
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                reader, writer = await asyncio.open_connection(
                    peer.host, peer.port, ssl=tls if peer.tls == "implicit" else None, limit=MAX_REPLY_LINE * 16)
        except (OSError, TimeoutError) as exc:
            raise FeedError(f"connect to {peer.host}:{peer.port} failed: {exc}") from None
        c = cls(peer, reader, writer)
        try:
            code, text = await c.status()
            if code not in (200, 201):  # RFC 3977 §5.1.1: 400/502 say "not now" / "not you"
                raise FeedError(f"greeting {code} {text}")
            if peer.tls == "starttls":
                code, text = await c.cmd("STARTTLS")
                if code != 382:
                    raise FeedError(f"STARTTLS refused: {code} {text}")
                assert tls is not None
                await writer.start_tls(tls, server_hostname=peer.host)
            caps = await c.capabilities()
            if peer.streaming and "STREAMING" in caps:
                code, _text = await c.cmd("MODE STREAM")
                c.streaming = code == 203
            if not c.streaming and "IHAVE" not in caps and caps:
                raise FeedError("the peer offers neither IHAVE nor STREAMING to us")
        except BaseException:
            c.abort()
            raise
        return c

    async def _line(self) -> bytes:
        """One line from the peer, without its line end; FeedError when none comes."""
        try:
            async with asyncio.timeout(REPLY_TIMEOUT):
                line = await self.reader.readline()
        except (OSError, TimeoutError, ValueError) as exc:
            raise FeedError(f"no reply: {exc!r}") from None
        if not line.endswith(b"\n"):
            raise FeedError("connection closed")
        return line.rstrip(b"\r\n")

    async def status(self) -> tuple[int, str]:
        text = (await self._line()).decode("utf-8", "replace")
        if len(text) < 3 or not text[:3].isdigit():
            raise FeedError(f"not a status line: {text[:80]!r}")
        return int(text[:3]), text[4:]

    async def cmd(self, line: str) -> tuple[int, str]:
        self.writer.write(line.encode() + b"\r\n")
        await self._drain()
        return await self.status()

    async def _drain(self) -> None:
        try:
            async with asyncio.timeout(REPLY_TIMEOUT):
                await self.writer.drain()
        except (OSError, TimeoutError) as exc:
            raise FeedError(f"send failed: {exc!r}") from None

    async def capabilities(self) -> set[str]:
        """RFC 3977 §5.2; an old server without CAPABILITIES (500) is assumed to take IHAVE."""
        code, _text = await self.cmd("CAPABILITIES")
        if code != 101:
            return set()
        caps: set[str] = set()
        while True:
            word = (await self._line()).split(b" ", 1)[0].decode("ascii", "replace").upper()
            if word == ".":
                return caps
            caps.add(word)

    def _send_article(self, raw: bytes) -> None:
        self.writer.writelines(stuffed(_for_peer(raw)))

    async def offer(self, news: News, mids: list[str], out: Outcome) -> None:
        """Offer ``mids``, noting in ``out`` what became of each (also when FeedError, the
        connection broke, ends it half way: the articles not yet answered are in ``retry``)."""
        await (self._stream(news, mids, out) if self.streaming else self._ihave(news, mids, out))

    async def _ihave(self, news: News, mids: list[str], out: Outcome) -> None:
        for i, mid in enumerate(mids):
            raw = await news.raw_by_id(mid)
            if raw is None:
                out.done.append(mid)  # expired or cancelled meanwhile
                continue
            try:
                code, text = await self.cmd(f"IHAVE {mid}")
                if code == 335:
                    self._send_article(raw)
                    await self._drain()
                    code, text = await self.status()
            except FeedError:
                out.retry.extend(mids[i:])
                raise
            _log_result(self.peer, mid, code, text)
            if code in (235, 435, 437):  # RFC 3977 §6.3.2.2: taken, not wanted, rejected
                out.done.append(mid)
            elif code == 436:
                out.retry.append(mid)
            else:  # 400, 480, 502 ...: the session is no good for this
                out.retry.extend(mids[i + 1:])
                out.retry.append(mid)
                raise FeedError(f"IHAVE answered {code} {text}")

    async def _stream(self, news: News, mids: list[str], out: Outcome) -> None:
        """RFC 4644: all CHECKs pipelined, then a TAKETHIS for each wanted article."""
        for mid in mids:
            self.writer.write(f"CHECK {mid}\r\n".encode())
        wanted: list[str] = []
        try:
            await self._drain()
            for mid in mids:
                code, text = await self.status()
                if code == 238:
                    wanted.append(mid)
                elif code == 438:
                    out.done.append(mid)
                    _log_result(self.peer, mid, code, text)
                elif code == 431:
                    out.retry.append(mid)
                    _log_result(self.peer, mid, code, text)
                else:
                    raise FeedError(f"CHECK answered {code} {text}")
        except FeedError:
            answered = set(out.done) | set(out.retry) | set(wanted)
            out.retry.extend(m for m in mids if m not in answered)
            out.retry.extend(wanted)
            raise
        sent: list[str] = []
        try:
            for mid in wanted:
                raw = await news.raw_by_id(mid)
                if raw is None:
                    out.done.append(mid)
                    continue
                self.writer.write(f"TAKETHIS {mid}\r\n".encode())
                self._send_article(raw)
                sent.append(mid)
                await self._drain()
            for i, mid in enumerate(sent):
                code, text = await self.status()
                _log_result(self.peer, mid, code, text)
                if code in (239, 439):
                    out.done.append(mid)
                else:  # 400 (try later, closing) or out of protocol
                    out.retry.extend(sent[i:])
                    raise FeedError(f"TAKETHIS answered {code} {text}")
        except FeedError:
            finished = set(out.done) | set(out.retry)
            out.retry.extend(m for m in wanted if m not in finished)
            raise

    async def quit(self) -> None:
        try:
            async with asyncio.timeout(5.0):
                await self.cmd("QUIT")
        except (FeedError, TimeoutError):
            pass
        self.abort()

    def abort(self) -> None:
        self.writer.close()


def _log_result(peer: PeerSettings, mid: str, code: int, text: str) -> None:
    what = {235: "sent", 239: "sent", 435: "not wanted", 438: "not wanted", 437: "rejected",
            439: "rejected", 436: "deferred", 431: "deferred"}.get(code, "failed")
    log.info("feed %s: %s %s: %d %s", peer.name, mid, what, code, text)


# -- the runner ---------------------------------------------------------------------------------
class FeedRunner:
    """One per server: a task per fed peer, each claiming and offering its rows."""

    def __init__(self, ctx: ServerContext) -> None:
        self.ctx = ctx
        self.wakeup = asyncio.Event()
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._main: asyncio.Task[None] | None = None
        self._lock_fd: int | None = None
        self._stopping = False

    @property
    def settings(self) -> NntpSettings:
        from .server import settings_for

        return settings_for(self.ctx)

    async def news(self) -> News:
        from .server import news_for

        return await news_for(self.ctx)

    def start(self) -> None:
        _wakeups.add(self.wakeup)
        self._main = asyncio.get_running_loop().create_task(self._run(), name="postroom-nntp-feed")

    async def stop(self) -> None:
        _wakeups.discard(self.wakeup)
        # First let the peer tasks finish the batch in hand (its outcome recorded, its claim
        # released); a cancelled task can lose a claim whose UPDATE had committed, and that row
        # would wait out the lease. Then cancel what is still running.
        self._stopping = True
        self.wakeup.set()
        peers = list(self._tasks.values())
        if peers:
            await asyncio.wait(peers, timeout=5)
        tasks = [t for t in (self._main, *peers) if t is not None and not t.done()]
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=10)
        for t in tasks:
            if t.done() and not t.cancelled() and t.exception() is not None:
                log.error("feed task failed while stopping: %r", t.exception())
        self._tasks.clear()
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock: another worker takes over
            self._lock_fd = None

    def _try_lock(self) -> bool:
        path = self.ctx.config.data_dir / "news-feed.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self._lock_fd = fd
        return True

    async def _run(self) -> None:
        while not self._try_lock():
            await asyncio.sleep(LOCK_RETRY)
        log.info("news feed runner started (pid=%d)", os.getpid())
        news = await self.news()
        if isinstance(news.state, SqliteNewsState):
            # The lock makes this the only runner: claims in the table are a dead one's.
            await news.state.execute([("UPDATE feed SET next_try = ? WHERE next_try < 0", (time.time(),))])
        while not self._stopping:
            # Peers come and go with SIGHUP reloads: one task per peer that has a host.
            fed = {p.name: p for p in self.settings.peers if p.host}
            for name in list(self._tasks):
                if name not in fed or self._tasks[name].done():
                    task = self._tasks.pop(name)
                    task.cancel()
            for name in fed:
                if name not in self._tasks:
                    self._tasks[name] = asyncio.get_running_loop().create_task(
                        self._peer_loop(name), name=f"postroom-nntp-feed-{name}")
            await asyncio.sleep(POLL * 5)

    def _peer(self, name: str) -> PeerSettings | None:
        for p in self.settings.peers:
            if p.name == name and p.host:
                return p
        return None

    async def _peer_loop(self, name: str) -> None:
        while not self._stopping:
            peer = self._peer(name)
            if peer is None:
                return
            try:
                busy = await self._session(peer)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("feed %s: runner error; retrying", name)
                busy = False
            if not busy and not self._stopping:
                self.wakeup.clear()
                try:
                    # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a
                    # cancellation that arrives as the event is set, and stop() would hang.
                    async with asyncio.timeout(POLL):
                        await self.wakeup.wait()
                except TimeoutError:
                    pass

    # A claimed row's next_try is the lease's end, negated: due rows are those with
    # 0 <= next_try <= now and claims whose lease ran out (-now <= next_try < 0), and a
    # runner that starts on SQLite (the only one: it holds the lock) can tell the claims a
    # killed runner left behind from rows that wait for their retry, and release them.
    _DUE = "((next_try >= 0 AND next_try <= ?) OR (next_try < 0 AND next_try >= ?))"

    async def _claim(self, news: News, peer: str) -> list[tuple[str, int]]:
        now = time.time()
        rows = await news.state.query(
            f"UPDATE feed SET next_try = ? WHERE peer = ? AND {self._DUE} AND message_id IN "
            f"(SELECT message_id FROM feed WHERE peer = ? AND {self._DUE} ORDER BY abs(next_try) LIMIT ?) "
            "RETURNING message_id, attempts", -(now + LEASE), peer, now, -now, peer, now, -now, BATCH)
        return [(str(m), int(a)) for m, a in rows]

    async def _release(self, news: News, peer: str, mids: Sequence[str]) -> None:
        """Claimed rows not offered after all (shutdown): due again at once."""
        now = time.time()
        await news.state.execute([("UPDATE feed SET next_try = ? WHERE peer = ? AND message_id = ? AND next_try < 0",
                                   (now, peer, m)) for m in mids])

    async def _session(self, peer: PeerSettings) -> bool:
        """Offer everything due for ``peer`` over one connection; True if any was due."""
        news = await self.news()
        rows = await self._claim(news, peer.name)
        if not rows:
            return False
        conn: PeerConnection | None = None
        try:
            while rows:
                attempts = dict(rows)
                out = Outcome([], [])
                try:
                    if conn is None:
                        conn = await PeerConnection.open(peer)
                    await conn.offer(news, [m for m, _a in rows], out)
                except FeedError as exc:
                    log.info("feed %s: %s (%d article(s) deferred)", peer.name, exc, len(rows))
                    finished = set(out.done) | set(out.retry)
                    out.retry.extend(m for m, _a in rows if m not in finished)
                    await self._record(news, peer, out, attempts)
                    if conn is not None:
                        conn.abort()
                        conn = None
                    return True
                await self._record(news, peer, out, attempts)
                rows = await self._claim(news, peer.name) if not self._stopping else []
        except BaseException:
            # Cancelled (shutdown) or a bug: the claimed rows not yet recorded are due again
            # now (those the peer already took are offered again: it answers "not wanted").
            if conn is not None:
                conn.abort()
                conn = None
            try:
                await self._release(news, peer.name, [m for m, _a in rows])
            except Exception:
                log.exception("feed %s: could not release claimed rows; they are due after %gs", peer.name, LEASE)
            raise
        finally:
            if conn is not None:
                await conn.quit()
        return True

    async def _record(self, news: News, peer: PeerSettings, out: Outcome, attempts: dict[str, int]) -> None:
        s = self.settings
        now = time.time()
        stmts: list[Stmt] = [("DELETE FROM feed WHERE peer = ? AND message_id = ?", (peer.name, m))
                             for m in dict.fromkeys(out.done)]
        for m in dict.fromkeys(out.retry):
            if m in out.done:
                continue
            n = attempts.get(m, 0) + 1
            if n >= s.feed_max_attempts:
                log.warning("feed %s: %s dropped after %d attempts", peer.name, m, n)
                stmts.append(("DELETE FROM feed WHERE peer = ? AND message_id = ?", (peer.name, m)))
                continue
            wait = s.feed_retry[min(n, len(s.feed_retry)) - 1]
            stmts.append(("UPDATE feed SET next_try = ?, attempts = ? WHERE peer = ? AND message_id = ?",
                          (now + wait, n, peer.name, m)))
        if stmts:
            await news.state.execute(stmts)


# -- runtime hooks (nntp/server.py's start_services/stop_services call these) -----------------
_runners: dict[int, FeedRunner] = {}


async def start(ctx: ServerContext) -> None:
    if id(ctx) in _runners:
        return
    runner = FeedRunner(ctx)
    runner.start()
    _runners[id(ctx)] = runner


async def stop(ctx: ServerContext) -> None:
    runner = _runners.pop(id(ctx), None)
    if runner is not None:
        await runner.stop()
