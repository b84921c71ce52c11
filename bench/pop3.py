#!/usr/bin/env python3
"""POP3 download rate: Postroom vs Dovecot's POP3 server on the same messages.

Both servers get the same mail: one account with all N messages (the 1-client run)
and C accounts with N/C each (the C-client run, because a maildrop is locked to one
session). Each client is its own process: it logs in with USER/PASS, sends RETR for
every message one after the other (waiting for each, like fetchmail), checks the
octet count, and QUITs without deleting. Before timing, each maildrop is read once
so both servers have built their indexes. Printed: messages per second for each
server, and Postroom / Dovecot.

Dovecot runs as a standalone instance with its own config dir (bench/dovecot_peer.py,
/work/shared/PEERS.md), Maildir under the ``vmail`` user, plaintext on loopback; Postroom runs
``postroom serve`` as a subprocess with plaintext USER/PASS allowed on its POP3
listener. Without root or without Dovecot, only Postroom's figures are printed.

    python bench/pop3.py                 # 1,000 messages of 10 KB, 1 and 10 clients
    python bench/pop3.py --quick         # smoke run (tests/server/pop3/test_pop3_bench.py)
    python bench/pop3.py --workers 1     # Postroom with one worker process (default: one per core)
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from dovecot_peer import PASSWORD, BenchDovecot, unavailable  # noqa: E402
from postroom_peer import DOMAIN, BenchPostroom  # noqa: E402


def message(n: int, size: int) -> bytes:
    head = (f"From: bench@outside.test\r\nTo: u@{DOMAIN}\r\nSubject: bench {n}\r\n"
            f"Message-ID: <{n}@bench>\r\n\r\n").encode()
    line = b"The quick brown fox jumps over the lazy dog, again and again and again.\r\n"
    body = line * max(1, (size - len(head)) // len(line))
    if n % 7 == 0:
        body = b".a line that needs byte-stuffing\r\n" + body
    return head + body


def wait_port(port: int, proc: subprocess.Popen[bytes] | None = None, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                if s.recv(100).startswith(b"+OK"):
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing answers on port {port}")


# -- the client -----------------------------------------------------------------------
class Client:
    """A lean POP3 client: one RETR at a time, the reply read in large chunks."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        self.buf = b""
        self.line()

    def line(self) -> bytes:
        while (i := self.buf.find(b"\r\n")) < 0:
            self._recv()
        out, self.buf = self.buf[:i], self.buf[i + 2:]
        return out

    def _recv(self) -> None:
        chunk = self.sock.recv(262144)
        if not chunk:
            raise ConnectionError("server closed the connection")
        self.buf += chunk

    def cmd(self, text: str) -> bytes:
        self.sock.sendall(text.encode() + b"\r\n")
        reply = self.line()
        if not reply.startswith(b"+OK"):
            raise RuntimeError(f"{text.split()[0]}: {reply!r}")
        return reply

    def multiline(self) -> bytes:
        start = 0
        if self.buf.startswith(b".\r\n"):
            self.buf = self.buf[3:]
            return b""
        while (i := self.buf.find(b"\r\n.\r\n", start)) < 0:
            start = max(0, len(self.buf) - 4)
            self._recv()
        body, self.buf = self.buf[:i + 2], self.buf[i + 5:]
        return body

    def login(self, user: str) -> None:
        self.cmd(f"USER {user}")
        self.cmd(f"PASS {PASSWORD}")

    def download(self) -> int:
        count = int(self.cmd("STAT").split()[1])
        for n in range(1, count + 1):
            status = self.cmd(f"RETR {n}")
            body = self.multiline()
            octets = len(body) - body.count(b"\r\n.")  # undo byte-stuffing
            if status.split()[1].isdigit() and int(status.split()[1]) != octets:
                raise RuntimeError(f"RETR {n}: announced {status!r}, got {octets} octets")
        self.cmd("QUIT")
        self.sock.close()
        return count


def _client_proc(port: int, user: str, ready: mp.Queue, start: mp.synchronize.Event,  # type: ignore[type-arg]
                 out: mp.Queue) -> None:  # type: ignore[type-arg]
    try:
        c = Client(port)
        c.login(user)  # not timed: password hashing is not what this measures
    except Exception as exc:  # report, don't hang the parent
        ready.put(exc)
        return
    ready.put(None)
    start.wait()
    try:
        out.put(c.download())
    except Exception as exc:
        out.put(exc)


def run_clients(port: int, users: list[str]) -> tuple[int, float]:
    ctx = mp.get_context("fork")
    start = ctx.Event()
    ready: mp.Queue = ctx.Queue()  # type: ignore[type-arg]
    out: mp.Queue = ctx.Queue()  # type: ignore[type-arg]
    procs = [ctx.Process(target=_client_proc, args=(port, u, ready, start, out)) for u in users]
    for p in procs:
        p.start()
    failed = [r for r in (ready.get(timeout=120) for _ in procs) if r is not None]
    if failed:
        start.set()
        raise RuntimeError(f"login failed: {failed[0]}")
    t0 = time.perf_counter()
    start.set()
    results = [out.get(timeout=600) for _ in procs]
    elapsed = time.perf_counter() - t0
    for p in procs:
        p.join()
    errors = [r for r in results if isinstance(r, Exception)]
    if errors:
        raise RuntimeError(f"client failed: {errors[0]}")
    return sum(results), elapsed


# -- Postroom -------------------------------------------------------------------------
class Postroom(BenchPostroom):
    def __init__(self, root: Path, workers: int) -> None:
        super().__init__(root, "pop3", workers)

    def start(self) -> None:
        super().start()
        wait_port(self.port, self.proc)


# -- main -----------------------------------------------------------------------------
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=1000)
    ap.add_argument("--size", type=int, default=10 * 1024, help="octets per message")
    ap.add_argument("--clients", default="1,10", help="comma-separated client counts")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                    help="Postroom worker processes (default: one per CPU core, as an admin would set)")
    ap.add_argument("--rounds", type=int, default=3, help="timed rounds per case (best is kept)")
    ap.add_argument("--quick", action="store_true", help="50 messages of 2 KB, 1 and 2 clients, 1 round")
    ap.add_argument("--no-dovecot", action="store_true")
    args = ap.parse_args()
    if args.quick:
        args.messages, args.size, args.clients, args.rounds = 50, 2048, "1,2", 1
    counts = [int(c) for c in args.clients.split(",")]
    msgs = [message(i, args.size) for i in range(args.messages)]
    # One maildrop per client (POP3 locks a maildrop to one session), same total.
    plan = {c: [f"c{c}u{k}" for k in range(c)] for c in counts}
    mailboxes: dict[str, list[bytes]] = {}
    for c, users in plan.items():
        for k, u in enumerate(users):
            mailboxes[u] = msgs[k::c]

    why_not = "--no-dovecot" if args.no_dovecot else unavailable("pop3")
    tmp = Path(tempfile.mkdtemp(prefix="pop3-bench-"))
    os.chmod(tmp, 0o755)
    servers: list[Postroom | BenchDovecot] = [Postroom(tmp / "postroom", args.workers)]
    if why_not is None:
        # mail_fsync: Dovecot's default, as this bench has always run it (POP3 here only reads).
        servers.append(BenchDovecot(tmp / "dovecot", pop3_port=0, mail_fsync="optimized"))
    results: dict[tuple[str, int], float] = {}
    try:
        for srv in servers:
            srv.root.mkdir(exist_ok=True)
            os.chmod(srv.root, 0o755)
            srv.setup(mailboxes)
            srv.start()
            try:
                for c, users in plan.items():
                    logins = [srv.login(u) for u in users]
                    run_clients(srv.port, logins)  # warm-up: indexes, caches
                    best = 0.0
                    for _ in range(args.rounds):
                        n, secs = run_clients(srv.port, logins)
                        assert n == args.messages, (srv.name, n)
                        best = max(best, n / secs)
                    results[(srv.name, c)] = best
            finally:
                srv.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"POP3 download: {args.messages} messages of {args.size} octets, RETR one at a time, "
          f"best of {args.rounds}; Postroom workers={args.workers} ({os.cpu_count()} CPU cores)")
    if why_not is not None:
        print(f"(Dovecot not run: {why_not})")
    print(f"{'clients':>8} {'postroom msg/s':>15} {'dovecot msg/s':>14} {'ratio':>7}")
    for c in counts:
        p = results[("postroom", c)]
        d = results.get(("dovecot", c))
        ratio = f"{p / d:7.2f}" if d else "      -"
        dtext = f"{d:14.0f}" if d else f"{'-':>14}"
        print(f"{c:>8} {p:15.0f} {dtext} {ratio}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
