#!/usr/bin/env python3
"""POP3 download rate: Postroom vs Dovecot's POP3 server on the same messages.

Both servers get the same mail: one account with all N messages (the 1-client run)
and C accounts with N/C each (the C-client run, because a maildrop is locked to one
session). Each client is its own process: it logs in with USER/PASS, sends RETR for
every message one after the other (waiting for each, like fetchmail), checks the
octet count, and QUITs without deleting. Before timing, each maildrop is read once
so both servers have built their indexes.

Both servers run at the same time and the timed runs alternate between them
(Postroom first in even runs, Dovecot first in odd ones), so a neighbour's load on a
shared machine falls on both alike. Printed per client count: the median messages
per second of each server over ``--runs``, the median of the per-run ratios
Postroom / Dovecot, and each server's CPU per message (user + system time of all its
processes, from /proc, summed over the timed runs), which is the steadier figure on a
busy machine; ``cpu ratio`` is Dovecot's CPU per message over Postroom's. With several
Postroom workers, how its connections were spread over them in each run (a busier worker hands
a new connection to a less busy one, net/balance.py, so 10 sessions land 5/5; a burst may give 6/4). A run of one
pass lasts about 0.1 s here; ``--passes N`` makes each client download its maildrop N times.

Dovecot runs as a standalone instance with its own config dir (bench/dovecot_peer.py,
/work/shared/PEERS.md), Maildir under the ``vmail`` user, plaintext on loopback; Postroom runs
``postroom serve`` as a subprocess with plaintext USER/PASS allowed on its POP3
listener. Without root or without Dovecot, only Postroom's figures are printed.

    python bench/pop3.py                 # 1,000 messages of 10 KB, 1 and 10 clients, 5 runs
    python bench/pop3.py --clients 10    # issue #22 item 3
    python bench/pop3.py --clients 10 --passes 5   # runs of about 0.5 s instead of 0.1 s
    python bench/pop3.py --quick         # smoke run (tests/server/pop3/test_pop3_bench.py)
    python bench/pop3.py --workers 1     # Postroom with one worker process (default: one per core)
"""

from __future__ import annotations

import argparse
import dataclasses
import multiprocessing as mp
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from dovecot_peer import PASSWORD, BenchDovecot, unavailable
from imap import _tree as process_tree
from imap import connections_per_process, cpu_seconds
from postroom_peer import DOMAIN, BenchPostroom


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

    def download(self, passes: int = 1) -> int:
        """RETR every message ``passes`` times (a re-RETR is plain POP3), then QUIT."""
        count = int(self.cmd("STAT").split()[1])
        for _ in range(passes):
            for n in range(1, count + 1):
                status = self.cmd(f"RETR {n}")
                body = self.multiline()
                octets = len(body) - body.count(b"\r\n.")  # undo byte-stuffing
                if status.split()[1].isdigit() and int(status.split()[1]) != octets:
                    raise RuntimeError(f"RETR {n}: announced {status!r}, got {octets} octets")
        self.cmd("QUIT")
        self.sock.close()
        return count * passes


def _client_proc(port: int, user: str, passes: int, ready: mp.Queue,  # type: ignore[type-arg]
                 start: mp.synchronize.Event, out: mp.Queue) -> None:  # type: ignore[type-arg]
    try:
        c = Client(port)
        c.login(user)  # not timed: password hashing is not what this measures
    except Exception as exc:  # report, don't hang the parent
        ready.put(exc)
        return
    ready.put(None)
    start.wait()
    try:
        out.put(c.download(passes))
    except Exception as exc:
        out.put(exc)


def run_procs(target: Callable[..., None], arglists: list[tuple], pids: Callable[[], list[int]],
              what: str, timeout: float, on_ready: Callable[[], object] | None = None,
              ) -> tuple[int, float, float]:
    """(items, seconds, server CPU seconds) for one forked client per entry of ``arglists``:
    ``target(*args, ready, start, out)`` says on ``ready`` that it is set up (None, or the
    exception), waits for ``start`` and puts its count (or exception) on ``out``. The clock and
    the CPU count of the server processes ``pids()`` start once every client is ready (and
    ``on_ready()`` has run). bench/nntp.py's readers run the same way."""
    ctx = mp.get_context("fork")
    start = ctx.Event()
    ready: mp.Queue = ctx.Queue()  # type: ignore[type-arg]
    out: mp.Queue = ctx.Queue()  # type: ignore[type-arg]
    procs = [ctx.Process(target=target, args=(*args, ready, start, out)) for args in arglists]
    for p in procs:
        p.start()
    failed = [r for r in (ready.get(timeout=120) for _ in procs) if r is not None]
    if failed:
        start.set()
        raise RuntimeError(f"{what} could not start: {failed[0]}")
    if on_ready is not None:
        on_ready()
    c0 = cpu_seconds(pids())
    t0 = time.perf_counter()
    start.set()
    results = [out.get(timeout=timeout) for _ in procs]
    elapsed = time.perf_counter() - t0
    cpu = cpu_seconds(pids()) - c0
    for p in procs:
        p.join()
    errors = [r for r in results if isinstance(r, Exception)]
    if errors:
        raise RuntimeError(f"{what} failed: {errors[0]}")
    return sum(results), elapsed, cpu


def run_clients(port: int, users: list[str], passes: int = 1, pids: Callable[[], list[int]] = list,
                on_ready: Callable[[], object] | None = None) -> tuple[int, float, float]:
    """(messages, seconds, server CPU seconds) for one client per user, logged in before
    the clock and the CPU count of the server processes ``pids()`` start."""
    return run_procs(_client_proc, [(port, u, passes) for u in users], pids, "client", 600, on_ready)


# -- Postroom -------------------------------------------------------------------------
class Postroom(BenchPostroom):
    def __init__(self, root: Path, workers: int) -> None:
        super().__init__(root, "pop3", workers)

    def start(self) -> None:
        super().start()
        wait_port(self.port, self.proc)


def server_pids(srv: Postroom | BenchDovecot) -> Callable[[], list[int]]:
    """The server's processes (Postroom's supervisor and workers; Dovecot's master and the
    login, auth and per-connection processes it forks), looked up afresh at each count."""
    def pids() -> list[int]:
        if isinstance(srv, Postroom):
            root = srv.proc.pid if srv.proc is not None else None
        else:
            root = srv.master_pid()
        return process_tree(root) if root is not None else []
    return pids


@dataclasses.dataclass
class Case:
    """The timed runs of one server at one client count."""

    rates: list[float] = dataclasses.field(default_factory=list)  # messages per second
    cpu: float = 0.0  # server CPU seconds over all the runs
    messages: int = 0
    # Per run: established connections per server process, most first (Postroom's workers
    # balance their sessions, net/balance.py: an uneven split here is worth a look).
    splits: list[list[int]] = dataclasses.field(default_factory=list)

    def rate(self) -> float:
        return statistics.median(self.rates)

    def cpu_us(self) -> float:
        """Server CPU per message over all the runs: /proc counts in clock ticks (10 ms), so
        the sum over the runs is a finer figure than a median of a few ticks each."""
        return self.cpu / max(self.messages, 1) * 1e6


def bench(servers: list[Postroom | BenchDovecot], users: list[str], args: argparse.Namespace,
          ) -> dict[str, Case]:
    """``args.runs`` alternated runs of ``users`` downloading at once from each server."""
    cases = {srv.name: Case() for srv in servers}
    for srv in servers:
        run_clients(srv.port, [srv.login(u) for u in users])  # warm-up: indexes, caches, \\Seen
    for run in range(args.runs):
        # Alternate who goes first: load from neighbours, or a slow start, hits both alike.
        for srv in servers if run % 2 == 0 else servers[::-1]:
            case = cases[srv.name]
            pids = server_pids(srv)

            def spread(srv: Postroom | BenchDovecot = srv, case: Case = case,
                       pids: Callable[[], list[int]] = pids) -> None:
                if isinstance(srv, Postroom):
                    case.splits.append(connections_per_process(srv.port, pids()))

            n, secs, cpu = run_clients(srv.port, [srv.login(u) for u in users], args.passes, pids, spread)
            assert n == args.messages * args.passes, (srv.name, n)
            case.rates.append(n / secs)
            case.cpu += cpu
            case.messages += n
    return cases


def report(results: dict[int, dict[str, Case]], args: argparse.Namespace, why_not: str | None) -> None:
    print(f"POP3 download: {args.messages} messages of {args.size} octets, RETR one at a time"
          f"{f', {args.passes} passes' if args.passes > 1 else ''}; median of {args.runs} alternated runs; "
          f"Postroom workers={args.workers} ({os.cpu_count()} CPU cores)")
    if why_not is not None:
        print(f"(Dovecot not run: {why_not})")
    print(f"{'clients':>8} {'postroom msg/s':>15} {'dovecot msg/s':>14} {'ratio':>7}"
          f" {'postroom us cpu/msg':>20} {'dovecot us cpu/msg':>19} {'cpu ratio':>10}")
    for c, cases in results.items():
        p, d = cases["postroom"], cases.get("dovecot")
        if d is None:
            print(f"{c:>8} {p.rate():15.0f} {'-':>14} {'-':>7} {p.cpu_us():20.1f} {'-':>19} {'-':>10}")
            continue
        # The ratio of each run (both servers measured back to back), then their median.
        ratio = statistics.median(a / b for a, b in zip(p.rates, d.rates))
        # CPU is counted in clock ticks (10 ms): a tiny run (--quick) may count none.
        cpu_ratio = f"{d.cpu_us() / p.cpu_us():10.2f}" if p.cpu_us() else f"{'-':>10}"
        print(f"{c:>8} {p.rate():15.0f} {d.rate():14.0f} {ratio:7.2f} {p.cpu_us():20.1f} {d.cpu_us():19.1f}"
              f" {cpu_ratio}")
    for c, cases in results.items():
        if "dovecot" in cases:
            runs = " ".join(f"{a / b:.2f}" for a, b in zip(cases["postroom"].rates, cases["dovecot"].rates))
            print(f"  ratio per run, {c} client(s): {runs}")
        if cases["postroom"].splits and args.workers > 1:
            spread = " ".join("/".join(map(str, x)) for x in cases["postroom"].splits)
            print(f"  postroom connections per worker per run, {c} client(s): {spread}")


# -- main -----------------------------------------------------------------------------
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=1000)
    ap.add_argument("--size", type=int, default=10 * 1024, help="octets per message")
    ap.add_argument("--clients", default="1,10", help="comma-separated client counts")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                    help="Postroom worker processes (default: one per CPU core, as an admin would set)")
    ap.add_argument("--runs", type=int, default=5, help="timed runs per server and client count (median)")
    ap.add_argument("--passes", type=int, default=1,
                    help="times each client downloads its maildrop in one timed run (longer runs)")
    ap.add_argument("--quick", action="store_true", help="50 messages of 2 KB, 1 and 2 clients, 1 run")
    ap.add_argument("--no-dovecot", action="store_true")
    args = ap.parse_args()
    if args.quick:
        args.messages, args.size, args.clients, args.runs = 50, 2048, "1,2", 1
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
    results: dict[int, dict[str, Case]] = {}
    try:
        for srv in servers:
            srv.root.mkdir(exist_ok=True)
            os.chmod(srv.root, 0o755)
            srv.setup(mailboxes)
            srv.start()
        for c, users in plan.items():
            results[c] = bench(servers, users, args)
    finally:
        for srv in servers:
            srv.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    report(results, args, why_not)
    return 0


if __name__ == "__main__":
    sys.exit(main())
