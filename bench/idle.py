#!/usr/bin/env python3
"""10,000 idle IMAP clients: memory per connection and new-mail latency, Postroom vs Dovecot.

``--sessions`` (10,000) authenticated IMAP sessions over ``--users`` (100) accounts, each with
INBOX selected and in IDLE (RFC 2177), first in plaintext, then over implicit TLS (IMAPS), on one
server with its default process model (Postroom: ``workers = 1``; Dovecot: a process per IMAP
connection, and one per login when over TLS). Printed per server and mode:

- memory per connection: the PSS of all the server's processes (``/proc/PID/smaps_rollup``, the
  process tree under the server's main pid) with the sessions open, minus the same server's PSS
  just before they were opened, divided by the sessions;
- the latency from a delivery's acknowledgement to the ``* N EXISTS`` on every idling session of
  that user (median and p99 over ``--deliveries`` deliveries, each to another user, i.e. over
  deliveries × sessions per user samples). Postroom: from the SMTP ``250`` after DATA (a
  durable commit, then the reply). Dovecot has no SMTP server of its own here: from the exit of
  ``dovecot-lda`` (its local delivery agent, fsync on) for the same message;
- the server's CPU time per delivery (its processes' user + system time over the deliveries, from
  /proc): what the latency is made of on a quiet machine. Postroom's includes receiving and storing
  the message over SMTP; Dovecot's leaves out ``dovecot-lda``, which is not its master's child;
- dropped sessions (closed before the end) and missed wake-ups (no EXISTS within 10 s of the
  delivery). Postroom must have neither (the exit status says so); Dovecot's are reported (its
  IDLE notices some changes only at its ``mailbox_idle_check_interval``, 30 s).

The load generator is one process of raw asyncio protocols (no imaplib): a few hundred bytes of
state per session. It raises its own RLIMIT_NOFILE; each server gets a limit big enough for
``--sessions`` (Postroom: ``[limits] connections`` and ``connections_per_ip``; Dovecot: the
process and client limits below, printed with what it reached). Sessions come from 127.0.0.1.

    python bench/idle.py                       # 10,000 sessions, plain and TLS, both servers
    python bench/idle.py --quick               # 100 sessions over 10 users (tests/bench smoke run)
    python bench/idle.py --only postroom --modes plain --sessions 2000
    python bench/idle.py --dovecot-sessions 2000   # Dovecot at a size this machine's memory allows
    python bench/idle.py --cheap-login         # see below

An argon2id check costs about 0.2 s of CPU here. Postroom remembers the credentials it verified
(``[limits] auth_cache``), so opening the sessions costs one check per account and worker (200 for
100 accounts on 2 workers, 40 s of CPU) and an HMAC for every other login; before that cache, 10,000
sessions took half an hour of CPU on two cores. Dovecot's ``{PLAIN}`` passwd-file costs nothing. With
``--cheap-login`` the Postroom server under test (this script, calling ``postroom serve``) compares
the password instead: only opening the sessions gets cheaper, the idle sessions and the wake-ups
are measured as they are. The output says which was used.

Needs root and Debian's dovecot-imapd for the Dovecot side; without them only Postroom runs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from dovecot_peer import PASSWORD, DovecotPeer, free_port, unavailable
from postroom_peer import DOMAIN, BenchPostroom

OPEN_AT_ONCE = 100  # sessions being opened concurrently (the listen backlog is 512)


def raise_nofile(wanted: int) -> int:
    """Raise this process's RLIMIT_NOFILE towards ``wanted`` (at most the hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


# -- memory ---------------------------------------------------------------------
def process_tree(root: int) -> list[int]:
    """``root`` and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(b")") + 2:].split()[1])
        children.setdefault(ppid, []).append(int(d))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo += children.get(pid, [])
    return out


def pss_kb(pids: list[int]) -> int:
    """Sum of the processes' PSS in KiB (shared pages split between the processes sharing them)."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
                        break
        except OSError:
            continue
    return total


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of the processes (and their reaped children), from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
    return total / tick


# -- the load generator ---------------------------------------------------------
class IdleClient(asyncio.Protocol):
    """One IMAP session: LOGIN, SELECT INBOX, IDLE, then it notes when ``* N EXISTS`` comes."""

    __slots__ = ("buf", "closed", "early", "exists_at", "last_exists", "ready", "step", "transport")

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.early: list[bytes] = []  # lines not taken yet (the greeting may come before anyone waits)
        self.step: asyncio.Future[None] | None = None  # woken when a line comes
        self.ready = False
        self.closed = False
        self.exists_at = 0.0
        self.last_exists = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            i = self.buf.find(b"\n")
            if i < 0:
                return
            line, self.buf = self.buf[:i + 1], self.buf[i + 1:]
            if self.ready:
                if line.startswith(b"* ") and line.rstrip().endswith(b" EXISTS"):
                    self.exists_at = time.monotonic()
                    self.last_exists = int(line.split()[1])
                continue
            self.early.append(line)
            if self.step is not None and not self.step.done():
                self.step.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.step is not None and not self.step.done():
            self.step.set_result(None)

    async def command(self, line: bytes, untagged_ok: bool = False) -> bytes:
        """Send ``line``; the tagged reply, a BYE, or (``untagged_ok``) the greeting or "+"."""
        if line:
            assert self.transport is not None
            self.transport.write(line)
        deadline = time.monotonic() + 120
        while True:
            while self.early:
                got = self.early.pop(0)
                if got[:1] not in (b"*", b"+") or got.startswith(b"* BYE") or (
                        untagged_ok and got.startswith((b"* OK", b"+"))):
                    return got
            if self.closed:
                return b""
            self.step = asyncio.get_running_loop().create_future()
            await asyncio.wait_for(self.step, max(0.1, deadline - time.monotonic()))


@dataclass
class Target:
    """The server as the load generator sees it."""
    name: str
    port: int
    tls_port: int
    login: dict[str, str]  # user → login name
    pid: int  # main process: the whole tree under it is measured
    extra_pids: list[int] = field(default_factory=list)


async def open_session(port: int, tls: ssl.SSLContext | None, user: str) -> IdleClient:
    loop = asyncio.get_running_loop()
    _, c = await loop.create_connection(IdleClient, "127.0.0.1", port, ssl=tls,
                                        server_hostname="localhost" if tls else None)
    greeting = await c.command(b"", untagged_ok=True)
    if not greeting.startswith(b"* OK"):
        raise RuntimeError(f"greeting: {greeting!r}")
    r = await c.command(b"a LOGIN " + user.encode() + b" " + PASSWORD.encode() + b"\r\n")
    if not r.startswith(b"a OK"):
        raise RuntimeError(f"login {user}: {r!r}")
    r = await c.command(b"b SELECT INBOX\r\n")
    if not r.startswith(b"b OK"):
        raise RuntimeError(f"select: {r!r}")
    r = await c.command(b"c IDLE\r\n", untagged_ok=True)
    if not r.startswith(b"+"):
        raise RuntimeError(f"idle: {r!r}")
    c.ready = True
    return c


async def open_all(port: int, tls: ssl.SSLContext | None, users: list[str], n: int) -> list[tuple[str, IdleClient]]:
    sem = asyncio.Semaphore(OPEN_AT_ONCE)
    out: list[tuple[str, IdleClient]] = []

    async def one(i: int) -> None:
        user = users[i % len(users)]
        async with sem:
            for attempt in range(5):
                try:
                    out.append((user, await open_session(port, tls, user)))
                    return
                except (TimeoutError, OSError, RuntimeError) as exc:
                    if attempt == 4:
                        raise RuntimeError(f"session {i} ({user}) could not be opened: {exc}") from None
                    await asyncio.sleep(0.2 * (attempt + 1))

    await asyncio.gather(*(one(i) for i in range(n)))
    return out


async def smtp_deliver(port: int, rcpt: str, body: bytes) -> float:
    """Deliver over SMTP; returns the monotonic time the final 250 was read."""
    r, w = await asyncio.open_connection("127.0.0.1", port)

    async def reply() -> bytes:
        while True:
            line = await r.readline()
            if line[3:4] != b"-":
                return line

    await reply()
    for cmd in (b"EHLO bench.test\r\n", b"MAIL FROM:<bench@outside.test>\r\n", f"RCPT TO:<{rcpt}>\r\n".encode(),
                b"DATA\r\n"):
        w.write(cmd)
        code = await reply()
        if code[:1] not in (b"2", b"3"):
            raise RuntimeError(f"SMTP {cmd!r}: {code!r}")
    w.write(body + b".\r\n")
    done = await reply()
    t = time.monotonic()
    if not done.startswith(b"250"):
        raise RuntimeError(f"SMTP DATA: {done!r}")
    w.write(b"QUIT\r\n")
    w.close()
    return t


async def lda_deliver(conf: Path, user: str, body: bytes) -> float:
    """Deliver with dovecot-lda; returns the monotonic time it exited."""
    p = await asyncio.create_subprocess_exec("/usr/lib/dovecot/dovecot-lda", "-c", str(conf), "-d", user,
                                             stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    _, err = await p.communicate(body)
    t = time.monotonic()
    if p.returncode != 0:
        raise RuntimeError(f"dovecot-lda: {err.decode(errors='replace')}")
    return t


def message(i: int) -> bytes:
    return (f"From: bench@outside.test\r\nTo: someone@{DOMAIN}\r\nSubject: idle bench {i}\r\n"
            f"Message-ID: <idle{i}.{time.time_ns()}@bench.test>\r\n\r\nNew mail {i}.\r\n").encode()


@dataclass
class Result:
    server: str
    mode: str
    sessions: int
    per_conn_kb: float
    base_mb: float
    median_ms: float
    p99_ms: float
    cpu_ms: float
    dropped: int
    missed: int
    samples: int


async def run_mode(t: Target, mode: str, n: int, users: list[str], deliveries: int,
                   deliver: object) -> Result:
    tls = None
    port = t.port
    if mode == "tls":
        tls = ssl.create_default_context()
        tls.check_hostname = False
        tls.verify_mode = ssl.CERT_NONE
        port = t.tls_port
    # Warm-up: one session end to end, so one-off costs (imports, caches) are in the baseline.
    warm = await open_session(port, tls, t.login[users[0]])
    assert warm.transport is not None
    warm.transport.write(b"DONE\r\nz LOGOUT\r\n")
    await asyncio.sleep(1.0)
    before = pss_kb(process_tree(t.pid) + t.extra_pids)
    started = time.monotonic()
    sessions = await open_all(port, tls, [t.login[u] for u in users], n)
    opened = time.monotonic() - started
    await asyncio.sleep(2.0)  # let the servers settle (Dovecot's processes finish starting)
    after = pss_kb(process_tree(t.pid) + t.extra_pids)
    per_conn = (after - before) / n
    by_user: dict[str, list[IdleClient]] = {}
    for login, c in sessions:
        by_user.setdefault(login, []).append(c)
    lat: list[float] = []
    missed = 0
    cpu0 = cpu_seconds(process_tree(t.pid) + t.extra_pids)
    for d in range(deliveries):
        user = users[d % len(users)]
        group = by_user[t.login[user]]
        want = {id(c): c.last_exists for c in group}
        t0 = await deliver(user, message(d))  # type: ignore[operator]
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline and any(c.last_exists == want[id(c)] for c in group):
            await asyncio.sleep(0.002)
        for c in group:
            if c.last_exists == want[id(c)]:
                missed += 1
            else:
                lat.append(max(0.0, c.exists_at - t0))
        await asyncio.sleep(0.05)
    # The server's CPU per delivery, its wake-ups and pushes included: what the latency is made of
    # on a quiet machine (on a busy one, waits for a core are added to it).
    cpu_ms = (cpu_seconds(process_tree(t.pid) + t.extra_pids) - cpu0) * 1000 / max(1, deliveries)
    dropped = sum(1 for _, c in sessions if c.closed)
    for _, c in sessions:
        if c.transport is not None and not c.closed:
            c.transport.close()
    await asyncio.sleep(1.0)
    lat.sort()
    med = statistics.median(lat) * 1000 if lat else float("nan")
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000 if lat else float("nan")
    print(f"  {t.name:8} {mode:5} {n:6} sessions opened in {opened:5.1f} s: "
          f"{per_conn:8.1f} KB/conn (PSS {before / 1024:.0f} -> {after / 1024:.0f} MB), "
          f"EXISTS latency median {med:6.1f} ms p99 {p99:6.1f} ms over {len(lat)}, server CPU {cpu_ms:.1f} ms "
          f"per delivery, dropped {dropped}, missed {missed}",
          flush=True)
    return Result(t.name, mode, n, per_conn, before / 1024, med, p99, cpu_ms, dropped, missed, len(lat))


# -- the servers ----------------------------------------------------------------
class IdlePostroom(BenchPostroom):
    """``postroom serve`` with its default single worker: IMAP, IMAPS and SMTP listeners."""

    cheap_login = False

    def __init__(self, root: Path, users: list[str], sessions: int) -> None:
        # ``connections`` is per worker; 10,000 idle sessions need it raised from the default 1,000.
        limit = sessions + 100
        super().__init__(root, "imap", 1, limits=f"connections = {limit}\nconnections_per_ip = {limit}")
        self.users = users
        self.imaps, self.smtp = free_port(), free_port()

    def start_target(self) -> Target:
        self.setup({u: [] for u in self.users})
        cfg = self.root / "postroom.toml"
        cfg.write_text(cfg.read_text() + f"""[listeners.imaps]
address = "127.0.0.1:{self.imaps}"
tls = "implicit"
[listeners.smtp]
address = "127.0.0.1:{self.smtp}"
[mailauth]
check_listeners = []
""")
        self.start()
        assert self.proc is not None
        wait_greeting(self.port, self.proc, self.root / "serve.log")
        return Target(self.name, self.port, self.imaps, {u: self.login(u) for u in self.users}, self.proc.pid)

    async def deliver(self, user: str, body: bytes) -> float:
        return await smtp_deliver(self.smtp, self.login(user), body)

    def start(self) -> None:
        if not self.cheap_login:
            super().start()
            return
        with open(self.root / "serve.log", "wb") as log:
            self.proc = subprocess.Popen([sys.executable, __file__, SERVE_CHEAP, str(self.root / "postroom.toml")],
                                         stdout=subprocess.DEVNULL, stderr=log)


class IdleDovecot(DovecotPeer):
    """Dovecot with TLS on an IMAPS listener and its process and client limits raised for
    ``sessions`` connections (its default process model kept: a process per IMAP session, a
    login process per connection over TLS)."""

    name = "dovecot"

    def __init__(self, root: Path, users: list[str], sessions: int) -> None:
        super().__init__(root, users=users, imap_port=0)
        self.sessions = sessions
        self.imaps_port = free_port()

    def limits(self) -> str:
        n = self.sessions + 100
        return f"""default_process_limit = {n}
default_client_limit = {2 * n}
default_vsz_limit = 1G
service imap {{
  process_limit = {n}
}}
service anvil {{
  client_limit = {3 * n}
}}
service auth {{
  client_limit = {3 * n}
}}
"""

    def config(self) -> str:
        from postroom.net.tls import write_self_signed

        write_self_signed(self.root / "cert.pem", self.root / "key.pem", "localhost")
        text = super().config().replace("ssl = no\n", f"ssl = yes\nssl_cert = <{self.root}/cert.pem\n"
                                                      f"ssl_key = <{self.root}/key.pem\n")
        text = text.replace("mail_max_userip_connections = 200", f"mail_max_userip_connections = {self.sessions}")
        text = text.replace("  inet_listener imaps {\n    port = 0\n  }\n",
                            f"  inet_listener imaps {{\n    address = 127.0.0.1\n    port = {self.imaps_port}\n"
                            "    ssl = yes\n  }\n")
        return text + self.limits()

    def start_target(self) -> Target:
        for u in self.users:
            self.fill(u, [])
        self.start()
        pid = self.master_pid()
        assert pid is not None
        return Target(self.name, self.imap_port or 0, self.imaps_port, {u: u for u in self.users}, pid)

    async def deliver(self, user: str, body: bytes) -> float:
        return await lda_deliver(self.conf, user, body)


def wait_greeting(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    import socket

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {log.read_text(errors='replace')[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                if s.recv(100).startswith(b"* OK"):
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError("server did not greet")


SERVE_CHEAP = "--serve-with-cheap-login"


def serve_with_cheap_login(config: str) -> int:
    """``postroom serve`` whose password check is a plain comparison (``--cheap-login``): the
    bench's accounts all have the one password. Only the login costs less; what a session holds
    once logged in, and every wake-up, is the server's own code."""
    from postroom.auth import authenticator
    from postroom.server import serve

    authenticator.verify_password = lambda _stored, password: password == PASSWORD  # type: ignore[assignment]
    authenticator.needs_rehash = lambda _stored: False  # type: ignore[assignment]
    return serve(config)


def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == SERVE_CHEAP:
        return serve_with_cheap_login(sys.argv[2])
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sessions", type=int, default=10_000)
    ap.add_argument("--users", type=int, default=100)
    ap.add_argument("--deliveries", type=int, default=10, help="deliveries per mode, each to another user")
    ap.add_argument("--modes", default="plain,tls")
    ap.add_argument("--only", action="append", choices=("postroom", "dovecot"))
    ap.add_argument("--dovecot-sessions", type=int, help="sessions for Dovecot (default: --sessions)")
    ap.add_argument("--cheap-login", action="store_true",
                    help="Postroom checks passwords by plain comparison (argon2id costs ~0.2 s of CPU per login)")
    ap.add_argument("--quick", action="store_true", help="100 sessions over 10 users (smoke run)")
    args = ap.parse_args()
    if args.quick:
        args.sessions, args.users, args.deliveries = 100, 10, 3
    modes = [m for m in args.modes.split(",") if m]
    servers = args.only or ["postroom", "dovecot"]
    why = unavailable("imap")
    if "dovecot" in servers and why is None and not Path("/usr/lib/dovecot/dovecot-lda").exists():
        why = "dovecot-lda is missing"
    if "dovecot" in servers and why is not None:
        print(f"dovecot: skipped ({why})")
        servers = [s for s in servers if s != "dovecot"]
    users = [f"idle{i}" for i in range(args.users)]
    nofile = raise_nofile(2 * max(args.sessions, args.dovecot_sessions or 0) + 1000)
    print(f"load generator: RLIMIT_NOFILE {nofile}; {args.users} users, {args.deliveries} deliveries per mode; "
          f"Postroom logins: {'plain comparison (--cheap-login)' if args.cheap_login else 'argon2id'}")
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    results: list[Result] = []
    for name in servers:
        root = Path(tempfile.mkdtemp(prefix=f"postroom-idle-{name}-"))
        root.chmod(0o755)
        n = args.sessions if name == "postroom" else (args.dovecot_sessions or args.sessions)
        try:
            if name == "postroom":
                srv: IdlePostroom | IdleDovecot = IdlePostroom(root, users, n)
                srv.cheap_login = args.cheap_login
                target = srv.start_target()
            else:
                srv = IdleDovecot(root, users, n)
                target = srv.start_target()
                print(f"  dovecot limits: {' '.join(srv.limits().split())}")
            for mode in modes:
                results.append(asyncio.run(run_mode(target, mode, n, users, args.deliveries, srv.deliver)))
        finally:
            srv.stop()
            shutil.rmtree(root, ignore_errors=True)
    print()
    print(f"{'server':10} {'mode':6} {'sessions':>8} {'KB/conn':>9} {'median ms':>10} {'p99 ms':>8} {'CPU ms':>7} "
          f"{'dropped':>8} {'missed':>7}")
    for r in results:
        print(f"{r.server:10} {r.mode:6} {r.sessions:8} {r.per_conn_kb:9.1f} {r.median_ms:10.1f} "
              f"{r.p99_ms:8.1f} {r.cpu_ms:7.1f} {r.dropped:8} {r.missed:7}")
    targets = {"plain": 16.0, "tls": 48.0}
    for r in results:
        if r.server == "postroom":
            peer = next((p for p in results if p.server == "dovecot" and p.mode == r.mode), None)
            ratio = f", Dovecot/Postroom memory {peer.per_conn_kb / r.per_conn_kb:.1f}x" if peer and r.per_conn_kb > 0 else ""
            print(f"postroom {r.mode}: {r.per_conn_kb:.1f} KB/conn (target <= {targets[r.mode]:.0f}), "
                  f"p99 {r.p99_ms:.1f} ms (target <= 50){ratio}")
    # A Postroom session that closed or missed a new message is a failure; Dovecot's are reported.
    return 1 if any(r.dropped or r.missed for r in results if r.server == "postroom") else 0


if __name__ == "__main__":
    sys.exit(main())
