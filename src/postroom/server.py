"""The runtime: listeners, connection limits, workers, signals.

One process serves every configured listener. With ``workers = N`` a supervisor
forks N worker processes, each binding the same addresses with SO_REUSEPORT (one Python
process uses one core); the kernel hashes each connection to one of them, and a worker
busier than another hands its new connection over (net/balance.py). SIGTERM:
stop accepting, let connections finish what they are doing (protocols watch
``ctx.stopping`` and close after the transaction in flight), exit 0; HTTP listeners
accept until the mail sessions are done, so /readyz can answer 503 meanwhile. SIGHUP:
re-read the config and the TLS certificate; listener address changes need a restart.
A worker whose supervisor has died (SIGKILL) stops the same way within a second.

Tests start the same runtime in-process with :func:`running`.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import signal
import socket
import ssl
import sys
import time
from collections import Counter
from contextlib import asynccontextmanager
from types import ModuleType
from typing import AsyncIterator

from . import log as _log
from . import metrics, protocols
from .auth import Authenticator
from .auth.authenticator import failure_log_for
from .config import Config, Listener, load
from .context import ServerContext
from .net.balance import Balancer
from .net.connection import Connection, InputProtocol
from .net.tls import reload_certificate, server_context
from .storage import open_store

GRACE_SECONDS = 30.0
HANDSHAKE_TIMEOUT = 30.0  # implicit TLS: seconds a client has to complete its handshake

# What an idle client hears when the server shuts down, in its own protocol.
GOODBYE = {
    "smtp": b"421 4.3.2 Server shutting down, try again later\r\n",
    "submission": b"421 4.3.2 Server shutting down, try again later\r\n",
    "pop3": b"-ERR [SYS/TEMP] Server shutting down\r\n",
    "imap": b"* BYE [UNAVAILABLE] Server shutting down\r\n",
    "managesieve": b'BYE "Server shutting down"\r\n',
    "nntp": b"400 Server shutting down\r\n",
}
IDLE_CLOSE_AFTER = 0.5
SUPERVISOR_CHECK = 1.0  # seconds between a worker's checks that its supervisor still runs
PURGE_EVERY = 3600.0  # seconds a session must have been waiting for a command to be closed at shutdown

# What a client hears when it is over a connection limit, in its own protocol.
BUSY = {
    "smtp": b"421 4.7.0 Too many connections, try again later\r\n",
    "submission": b"421 4.7.0 Too many connections, try again later\r\n",
    "pop3": b"-ERR [SYS/TEMP] Too many connections, try again later\r\n",
    "imap": b"* BYE [UNAVAILABLE] Too many connections, try again later\r\n",
    "managesieve": b'BYE "Too many connections"\r\n',
    "nntp": b"400 Too many connections\r\n",
    # Sent before the request is read: an early response, which HTTP/1.1 clients accept.
    "http": b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 5\r\nConnection: close\r\n"
            b"Content-Length: 0\r\n\r\n",
}


class Server:
    def __init__(self, cfg: Config, balancer: Balancer | None = None) -> None:
        self.cfg = cfg
        # Set in a worker of several: spreads connections by load (net/balance.py).
        self._balancer = balancer
        self._listening: list[tuple[Listener, ModuleType]] = []  # by the index handed over with a socket
        self._adopting: set[asyncio.Task[None]] = set()
        self.log = _log.get("server")
        self.ctx: ServerContext | None = None
        self.servers: list[asyncio.base_events.Server] = []
        self._http_servers: list[asyncio.base_events.Server] = []  # open until the mail sessions end
        self.addresses: dict[str, tuple[str, int]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._conns: dict[asyncio.Task[None], tuple[Connection, Listener]] = {}
        self._per_ip: Counter[str] = Counter()
        self._service_mods: list[ModuleType] = []
        self._purger: asyncio.Task[None] | None = None

    async def start(self, reuse_port: bool = False) -> None:
        cfg = self.cfg
        metrics.enable()  # before anything counts (a supervisor enabled multiprocess mode already)
        store = open_store(cfg)
        await store.open()
        for d in cfg.domains:
            if not await store.has_domain(d):
                await store.add_domain(d)
        tls = server_context(cfg.tls_cert, cfg.tls_key)
        # Failed-login counters: shared by every node when the store is PostgreSQL.
        auth = Authenticator(store, cfg.limits.auth_failures_per_ip, failures=failure_log_for(cfg),
                             cache_ttl=cfg.limits.auth_cache)
        try:
            await auth.open()
        except BaseException:
            await store.close()
            raise
        self.ctx = ctx = ServerContext(cfg, store, tls, auth)
        problems: list[str] = []
        for check in protocols.settings_parsers():
            check(cfg, problems)
        if problems:
            await auth.close()
            await store.close()
            from .errors import ConfigError

            raise ConfigError(problems)
        self._service_mods = protocols.service_modules()
        for mod in self._service_mods:
            start = getattr(mod, "start_services", None)
            if start is not None:
                await start(ctx)
        self._purger = asyncio.create_task(self._purge_periodically(), name="postroom-purge")
        for lst in cfg.listeners:
            handler = protocols.module_for(lst.protocol)
            if handler is None:
                self.log.warning("listener %s: protocol %s is not available in this version; not started",
                                 lst.name, lst.protocol)
                continue
            # Each accepted connection gets an InputProtocol (net/connection.py: input buffered
            # without asyncio's stream layers) and its session runs in a task of its own.
            # A balancing worker accepts implicit-TLS connections in plaintext: one it hands
            # over must still be untouched, so the handshake waits until _adopt_one.
            index = len(self._listening)
            self._listening.append((lst, handler))
            on_made = functools.partial(self._spawn, lst=lst, mod=handler, index=index)
            implicit = lst.tls == "implicit" and self._balancer is None
            srv = await asyncio.get_running_loop().create_server(
                functools.partial(InputProtocol, on_made),
                host=lst.host, port=lst.port, reuse_address=True, reuse_port=reuse_port or None,
                ssl=tls if implicit else None, ssl_handshake_timeout=HANDSHAKE_TIMEOUT if implicit else None,
                backlog=512,
            )
            self.servers.append(srv)
            if lst.protocol == "http":
                self._http_servers.append(srv)
            sock = srv.sockets[0].getsockname()
            self.addresses[lst.name] = (sock[0], sock[1])
            self.log.info("listening %s %s:%d (%s, tls=%s)", lst.name, sock[0], sock[1], lst.protocol, lst.tls)
        ctx.state["runtime"] = self  # for modules that report on it (HTTP /readyz, ports bound for port 0)
        if self._balancer is not None:
            asyncio.get_running_loop().add_reader(self._balancer.inbox.fileno(), self._adopt)

    async def _purge_periodically(self, every: float = PURGE_EVERY) -> None:
        while True:
            await asyncio.sleep(every)
            assert self.ctx is not None
            try:
                removed, freed = await self.ctx.store.purge()
                if removed:
                    self.log.info("purge: removed %d segment(s), freed %d bytes", removed, freed)
            except Exception:
                self.log.exception("purge failed; will try again")

    def _spawn(self, stream: InputProtocol, *, lst: Listener, mod: ModuleType, index: int,
               adopted: bool = False) -> None:
        b = self._balancer
        if b is not None and not adopted:
            # Called from connection_made: nothing has been read or written yet.
            if self._hand_over(stream, b, index):
                return
            if lst.tls == "implicit":
                # Kept, but accepted in plaintext: adopted here like a handed-over one, with
                # the handshake asyncio does (a start_tls now could miss a ClientHello that
                # the loop reads right after this callback).
                self._adopt_here(stream, index)
                return
        if b is not None:  # counted now: the next accept in this loop iteration must see it
            b.opened()
        # The stream holds the task (as asyncio's StreamReaderProtocol does): the loop keeps
        # only a weak reference to it.
        stream.task = asyncio.get_running_loop().create_task(self._accept(stream, lst=lst, mod=mod))

    def _hand_over(self, stream: InputProtocol, b: Balancer, index: int) -> bool:
        """Send a just-accepted connection to a less busy worker; False to serve it here."""
        if self.ctx is None or self.ctx.stopping.is_set():
            return False
        slot = b.target()
        if slot is None:
            return False
        sock = stream.transport.get_extra_info("socket")
        if sock is None or not b.hand_over(slot, index, sock.fileno()):
            return False
        if self.log.isEnabledFor(logging.DEBUG):
            peer = stream.get_extra_info("peername") or ("", 0)
            self.log.debug("%s %s:%s handed over to worker %d", self._listening[index][0].name,
                           peer[0], peer[1], slot)
        # The other worker holds the connection now; closing our descriptor leaves it open.
        stream.transport.abort()
        return True

    def _adopt_here(self, stream: InputProtocol, index: int) -> None:
        sock = stream.transport.get_extra_info("socket")
        try:
            if sock is None:  # every transport asyncio and uvloop make has one
                raise OSError("the transport has no socket")
            fd = os.dup(sock.fileno())
        except OSError as exc:  # out of descriptors: as if accept itself had failed
            self.log.warning("%s: cannot take a connection: %s", self._listening[index][0].name, exc)
            stream.transport.abort()
            return
        stream.transport.abort()
        self._adopt_task(index, socket.socket(fileno=fd))

    def _adopt_task(self, index: int, sock: socket.socket) -> None:
        sock.setblocking(False)
        task = asyncio.get_running_loop().create_task(self._adopt_one(index, sock))
        self._adopting.add(task)
        task.add_done_callback(self._adopting.discard)

    def _adopt(self) -> None:
        """Connections other workers handed over: served as if accepted here."""
        assert self._balancer is not None
        for index, sock in self._balancer.receive():
            if index >= len(self._listening):  # cannot happen between workers of one config
                sock.close()
                continue
            self._adopt_task(index, sock)

    async def _adopt_one(self, index: int, sock: socket.socket) -> None:
        lst, mod = self._listening[index]
        on_made = functools.partial(self._spawn, lst=lst, mod=mod, index=index, adopted=True)
        tls = self.ctx.tls if lst.tls == "implicit" and self.ctx is not None else None
        try:
            await asyncio.get_running_loop().connect_accepted_socket(
                functools.partial(InputProtocol, on_made), sock,
                ssl=tls, ssl_handshake_timeout=HANDSHAKE_TIMEOUT if tls is not None else None)
        except (OSError, TimeoutError) as exc:  # the client went, or its TLS handshake failed (SSLError)
            self.log.info("%s: connection not taken: %s", lst.name, exc)
            sock.close()

    async def _accept(self, stream: InputProtocol, *, lst: Listener, mod: ModuleType) -> None:
        assert self.ctx is not None
        ctx = self.ctx
        task = asyncio.current_task()
        assert task is not None
        conn = Connection(stream=stream, listener_name=lst.name, server_tls=ctx.tls,
                          implicit_tls=lst.tls == "implicit")
        ip = conn.peer_ip
        limits = ctx.config.limits
        if (ctx.stopping.is_set() and lst.protocol != "http") or len(self._tasks) >= limits.connections or \
                self._per_ip[ip] >= limits.connections_per_ip:
            self.log.info("%s %s refused: connection limit", lst.name, ip)
            if self._balancer is not None:
                self._balancer.closed()
            metrics.CONNECTIONS_REFUSED.labels(lst.protocol).inc()
            try:
                await conn.send(BUSY.get(lst.protocol, b""), timeout=5)
            except Exception:  # the peer may already be gone; nothing to tell it then
                pass
            await conn.close()
            return
        self._tasks.add(task)
        self._conns[task] = (conn, lst)
        self._per_ip[ip] += 1
        metrics.connection_opened(lst.protocol)
        try:
            await mod.handle(ctx, conn, lst)
        except asyncio.CancelledError:
            if ctx.stopping.is_set():  # closed at shutdown while idle: say goodbye
                try:
                    await conn.send(GOODBYE.get(lst.protocol, b""), timeout=2)
                except Exception:  # the peer may be gone; nothing more to do
                    pass
        except Exception:
            self.log.exception("%s %s: unexpected error in connection handler", lst.name, ip)
        finally:
            self._tasks.discard(task)
            self._conns.pop(task, None)
            metrics.connection_closed(lst.protocol)
            if self._balancer is not None:
                self._balancer.closed()
            self._per_ip[ip] -= 1
            if self._per_ip[ip] <= 0:
                del self._per_ip[ip]
            await conn.close()

    async def stop(self, grace: float = GRACE_SECONDS) -> None:
        if self.ctx is None:
            return
        self.ctx.stopping.set()
        if self._balancer is not None:  # nothing more handed to us; what waits stays queued
            self._balancer.retire()
            asyncio.get_running_loop().remove_reader(self._balancer.inbox.fileno())
        # HTTP listeners stay open while mail sessions finish, so that /readyz answers 503 and
        # load balancers send no new clients here (docs/http.md); they close once none is left.
        for srv in self.servers:
            if srv not in self._http_servers:
                srv.close()
        if self._purger is not None:
            self._purger.cancel()
        if self._tasks:
            self.log.info("waiting up to %.0fs for %d connection(s) to finish", grace, len(self._tasks))
            loop = asyncio.get_running_loop()
            deadline = loop.time() + grace
            # Sessions waiting for their next command are closed at once; those in the
            # middle of something (a DATA transfer, a FETCH) get to finish it.
            while self._tasks and loop.time() < deadline:
                if not any(lst.protocol != "http" for _conn, lst in self._conns.values()):
                    self._close_http_listeners()
                now = time.monotonic()
                for t, (conn, _lst) in list(self._conns.items()):
                    if conn.idle_since is not None and now - conn.idle_since >= IDLE_CLOSE_AFTER:
                        t.cancel()
                await asyncio.wait(list(self._tasks), timeout=0.2)
            self._close_http_listeners()
            pending = list(self._tasks)
            for t in pending:
                t.cancel()
            if pending:
                await asyncio.wait(pending, timeout=5)
        self._close_http_listeners()
        for mod in reversed(self._service_mods):
            stop = getattr(mod, "stop_services", None)
            if stop is not None:
                try:
                    await stop(self.ctx)
                except Exception:
                    self.log.exception("stopping services of %s", getattr(mod, "__name__", mod))
        await self.ctx.auth.close()
        await self.ctx.store.close()
        self.ctx = None

    def _close_http_listeners(self) -> None:
        for srv in self._http_servers:
            srv.close()
        self._http_servers.clear()

    def reload(self, path: str) -> None:
        """SIGHUP: new limits, protocol settings and certificate for new connections."""
        assert self.ctx is not None
        try:
            cfg = load(path)
            assert self.ctx.tls is not None
            reload_certificate(self.ctx.tls, cfg.tls_cert, cfg.tls_key)
        except Exception as exc:
            self.log.error("reload failed, keeping the running config: %s", exc)
            return
        if [(lst.name, lst.host, lst.port, lst.tls) for lst in cfg.listeners] != \
                [(lst.name, lst.host, lst.port, lst.tls) for lst in self.cfg.listeners]:
            self.log.warning("reload: listener changes take effect only after a restart")
        raise_open_files(cfg.limits.connections, self.log)  # a reload may raise [limits] connections
        self.cfg = cfg
        self.ctx.config = cfg
        self.ctx.auth.verified.ttl = cfg.limits.auth_cache
        self.ctx.state.clear()
        self.ctx.state["runtime"] = self
        self.log.info("configuration reloaded from %s", path)


@asynccontextmanager
async def running(cfg: Config) -> AsyncIterator[Server]:
    """Start the whole runtime in this event loop (for tests); stop it on exit."""
    srv = Server(cfg)
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop(grace=5)


async def _serve_forever(path: str, cfg: Config, reuse_port: bool, supervisor: int | None = None,
                         balancer: Balancer | None = None) -> int:
    loop = asyncio.get_running_loop()
    # A SIGHUP while the server starts (its "listening" lines are already out, so an admin or
    # a script may reload now) is kept and carried out once it has started: ignored (a
    # worker's disposition until here) it was lost, and with the default one it ended the process.
    reload_asked: list[bool] = []
    loop.add_signal_handler(signal.SIGHUP, reload_asked.append, True)
    srv = Server(cfg, balancer)
    await srv.start(reuse_port=reuse_port)
    metrics.WORKERS_ALIVE.set(1)
    done = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, done.set)
    loop.add_signal_handler(signal.SIGINT, done.set)
    loop.add_signal_handler(signal.SIGHUP, srv.reload, path)
    if reload_asked:
        srv.reload(path)
    watch = None if supervisor is None else asyncio.create_task(_watch_supervisor(supervisor, srv, done))
    if supervisor is None:  # a supervisor says it once for all its workers
        _warn_if_root(srv.log)
    await done.wait()
    srv.log.info("shutting down")
    if watch is not None:
        watch.cancel()
    await srv.stop()
    return 0


def _warn_if_root(log: logging.Logger) -> None:
    # Nothing here needs root once the ports are bound, and a flaw in a protocol engine
    # would hand an attacker the whole machine.
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        log.warning("running as root: a dedicated user with CAP_NET_BIND_SERVICE is safer "
                    "(contrib/postroom.service, docs/deployment.md)")


async def _watch_supervisor(supervisor: int, srv: Server, done: asyncio.Event) -> None:
    """Stop (finishing what is in flight) once the supervisor is gone.

    A supervisor killed with SIGKILL (the OOM killer, ``kill -9``) cannot pass on a
    SIGTERM: its workers would go on serving as orphans that no later stop or reload
    reaches, alongside the workers of the next ``postroom serve`` (SO_REUSEPORT lets
    both bind). The kernel re-parents an orphan, which ``getppid`` shows.
    """
    while os.getppid() == supervisor:
        await asyncio.sleep(SUPERVISOR_CHECK)
    srv.log.error("supervisor pid=%d is gone; stopping", supervisor)
    done.set()


def _run_worker(path: str, cfg: Config, reuse_port: bool, supervisor: int | None = None,
                balancer: Balancer | None = None) -> int:
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # uvloop is a dependency, but the server still works without it
        pass
    return asyncio.run(_serve_forever(path, cfg, reuse_port, supervisor, balancer))


# Descriptors a worker uses besides its client connections: listeners, the store's files and
# connections, outbound SMTP, DNS, the event loop's own, logs.
SPARE_FILES = 256


def raise_open_files(connections: int, log: logging.Logger) -> int:
    """Raise RLIMIT_NOFILE (per process, inherited by workers) to hold ``connections`` client
    sockets plus :data:`SPARE_FILES`, as far as the hard limit allows; warn when it cannot.
    Returns the connections the soft limit now has room for.

    Distributions start services with a soft limit of 1,024 (systemd's default, kept for
    select(2) users): ten thousand idle IMAP clients need ten times that. Only the soft limit
    is raised; the hard one is the administrator's (``LimitNOFILE=`` in the unit file)."""
    try:
        import resource
    except ImportError:  # not on this platform: nothing to raise
        return connections
    wanted = connections + SPARE_FILES
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        if target > soft:
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
                soft = target
            except (ValueError, OSError) as exc:
                log.warning("could not raise the open-files limit to %d: %s", target, exc)
    room = connections if soft == resource.RLIM_INFINITY else max(0, soft - SPARE_FILES)
    if room < connections:
        log.warning("open-files limit %d (hard limit %s) holds about %d connections per worker, "
                    "fewer than [limits] connections = %d: raise the hard limit (LimitNOFILE=, "
                    "ulimit -Hn)", soft, "unlimited" if hard == resource.RLIM_INFINITY else hard,
                    room, connections)
    return room


def serve(path: str) -> int:
    """``postroom serve``: run until SIGTERM; supervise workers when there are several."""
    cfg = load(path)
    _log.setup(cfg.log_level)
    log = _log.get("server")
    raise_open_files(cfg.limits.connections, log)
    if cfg.workers == 1:
        return _run_worker(path, cfg, reuse_port=False)
    if not hasattr(socket, "SO_REUSEPORT"):
        log.error("workers > 1 needs SO_REUSEPORT, which this system lacks")
        return 1
    # Before the first fork: every worker writes its values where a scrape merges them.
    metrics.use_directory(metrics.directory_for(cfg.data_dir))
    children: dict[int, int] = {}
    # Before the first fork as well: the workers' session counts and inboxes (net/balance.py).
    balancer = Balancer(cfg.workers)

    supervisor = os.getpid()

    def spawn(slot: int) -> None:
        pid = os.fork()
        if pid == 0:
            # Until the worker's event loop installs its own handlers: a reload has nothing
            # to reload yet, and a stop has nothing in flight to finish.
            signal.signal(signal.SIGHUP, signal.SIG_IGN)
            for s in (signal.SIGTERM, signal.SIGINT):
                signal.signal(s, lambda *_: os._exit(0))
            code = 1
            try:
                balancer.attach(slot)
                code = _run_worker(path, cfg, reuse_port=True, supervisor=supervisor, balancer=balancer)
            except BaseException:
                logging.getLogger("postroom.server").exception("worker failed")
            finally:
                sys.stderr.flush()
                os._exit(code)
        children[pid] = slot

    stopping = False

    def forward(sig: int, _frame: object) -> None:
        nonlocal stopping
        if sig in (signal.SIGTERM, signal.SIGINT):
            stopping = True
        for pid in list(children):
            try:
                os.kill(pid, signal.SIGTERM if sig == signal.SIGINT else sig)
            except ProcessLookupError:
                pass

    for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(s, forward)
    for slot in range(cfg.workers):
        spawn(slot)
    log.info("supervisor pid=%d started %d workers", os.getpid(), cfg.workers)
    _warn_if_root(log)
    status = 0
    while children:
        try:
            pid, st = os.wait()
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        if pid not in children:
            continue
        slot = children.pop(pid)
        balancer.mark_gone(slot)
        metrics.process_died(pid)
        code = os.waitstatus_to_exitcode(st)
        if not stopping:
            metrics.WORKER_RESTARTS.inc()
            log.error("worker pid=%d exited with %d; restarting it", pid, code)
            spawn(slot)
        elif code != 0:
            status = code
    return status


def tls_context_for(cfg: Config) -> ssl.SSLContext:
    return server_context(cfg.tls_cert, cfg.tls_key)
