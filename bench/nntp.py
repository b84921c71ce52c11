#!/usr/bin/env python3
"""NNTP reading rate: Postroom vs INN 2 on the same 100,000-article group.

Both servers get the same articles in one group, loaded the fastest honest way before any clock
starts: Postroom through its news layer (``News.post``, many at a time so the store commits them
in groups), INN over its own feed port (MODE STREAM and pipelined TAKETHIS, RFC 4644, as a peer
would send them; INN writes its overview as it takes them). INN runs from tests/innpeer.py (its
own directory, loopback, Debian's inn2 binaries); readers reach it with MODE READER, which hands
the connection to ``nnrpd``.

Then, over real NNTP sockets, ``C`` reader processes at a time, each connected and in the group
(MODE READER, GROUP) before the clock starts:

* ``OVER``: each client reads the whole group's overview in ranges of ``--chunk`` articles
  (``OVER lo-hi``, what tin and slrn do on entering a group); the rate is overview lines per
  second over all clients;
* ``ARTICLE``: the clients share the group (client k takes every C-th article) and fetch each by
  number, one at a time, waiting for each (a reader, or suck); the rate is articles per second.

Neither reader pipelines: each sends one command and reads its whole answer before the next, the same
client code against both servers, so neither gains from batching replies (Postroom writes the replies of
pipelined commands together; nnrpd writes as it goes). Both servers run at the same time and the timed
runs alternate between them, so a neighbour's load on a shared machine falls on both alike. Printed per operation and client count: the median rate of
each server over ``--runs``, the median of the per-run ratios Postroom / INN (the issue's target is
at least 1), and each server's CPU per item (user + system time of all its processes from /proc,
children included: INN's nnrpd per connection), the steadier figure on a busy machine.

    python bench/nntp.py                  # 100,000 articles of ~2 KB, 1 and 4 clients, 3 runs
    python bench/nntp.py --articles 20000 --clients 1,2,8 --runs 5
    python bench/nntp.py --quick          # smoke run (tests/bench/test_nntp_bench.py)
    python bench/nntp.py --no-inn         # Postroom only
    python bench/nntp.py --articles 10000 --clients 1 --ops ARTICLE --pin apart

``--pin same`` puts every process of both servers and every reader on CPU 0; ``--pin apart`` puts
the servers on CPU 1 and the readers on CPU 0. With one reader the rate is one round trip per
article, and on a virtual machine whose idle CPUs halt (no guest halt polling) a round trip
between two CPUs pays two wake-ups through the hypervisor, which costs both sides far more CPU
than the work itself; on one CPU there is no wake-up to pay. Unpinned, the kernel places the
reader and the server as it likes, and runs of the same tree differ by a factor of three
(docs/nntp.md, "One reader: the round trip").
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
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
sys.path.insert(1, str(ROOT / "tests"))  # the INN fixture, shared with the peering tests

from imap import _tree as process_tree
from imap import connections_per_process
from pop3 import Case, Client, run_procs
from postroom_peer import BenchPostroom, write_config

GROUP = "bench.nntp"
OPS = ("OVER", "ARTICLE")

_WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet", "kilo",
          "lima", "mike", "november", "oscar", "papa", "quebec", "romeo", "sierra", "tango", "uniform",
          "victor", "whiskey", "xray", "yankee", "zulu"]


def article(n: int, size: int) -> bytes:
    """Article ``n``: the required headers (RFC 5536 §3.1), a thread reference for most, and a body
    of ~``size`` octets in lines of prose; every 7th has a line that needs dot-stuffing."""
    refs = f"References: <a{n - n % 5}@bench.test>\r\n" if n % 5 else ""
    subject = " ".join(_WORDS[(n * 7 + i) % len(_WORDS)] for i in range(5))
    head = (f"Path: bench.test!not-for-mail\r\nFrom: Poster {n % 97} <poster{n % 97}@bench.test>\r\n"
            f"Newsgroups: {GROUP}\r\nSubject: {'Re: ' if refs else ''}{subject} {n}\r\n"
            f"Date: Sun, 06 Dec 2026 12:{n // 60 % 60:02d}:{n % 60:02d} +0000\r\n"
            f"Message-ID: <a{n}@bench.test>\r\n{refs}Organization: Postroom bench\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n\r\n").encode()
    line = " ".join(_WORDS[(n + i) % len(_WORDS)] for i in range(11)).encode() + b"\r\n"
    body = line * max(1, (size - len(head)) // len(line))
    if n % 7 == 0:
        body = b".a line that needs dot-stuffing\r\n" + body
    return head + body


def stuffed(raw: bytes) -> bytes:
    """``raw`` (CRLF lines) dot-stuffed and terminated, as it goes on the wire (RFC 3977 §3.1.1)."""
    if raw.startswith(b"."):
        raw = b"." + raw
    return raw.replace(b"\r\n.", b"\r\n..") + b".\r\n"


# -- the reader -----------------------------------------------------------------------
class Reader(Client):
    """bench/pop3.py's lean client (one command at a time, replies read in large chunks, the
    dot-terminated block kept stuffed) speaking NNTP."""

    def _recv(self) -> None:
        # Acknowledge at once: a server that writes a status line and then the block in two
        # writes (nnrpd) otherwise waits for our delayed ACK under Nagle (~40 ms per command),
        # which measures the TCP stack, not the server.
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
        super()._recv()

    def cmd(self, text: str, want: bytes = b"2") -> bytes:
        self.sock.sendall(text.encode() + b"\r\n")
        reply = self.line()
        if not reply.startswith(want):
            raise RuntimeError(f"{text}: {reply!r}")
        return reply

    def block(self) -> bytes:
        """The multi-line block after a status line, still stuffed, without its terminator."""
        return self.multiline()

    def enter(self, group: str) -> tuple[int, int, int]:
        """MODE READER and GROUP: (count, low, high)."""
        self.cmd("MODE READER", b"20")
        _, count, low, high, _ = self.cmd(f"GROUP {group}", b"211").split(b" ", 4)
        return int(count), int(low), int(high)

    def over(self, low: int, high: int, chunk: int) -> int:
        """OVER the range in chunks; the number of overview lines."""
        lines = 0
        for lo in range(low, high + 1, chunk):
            self.cmd(f"OVER {lo}-{min(high, lo + chunk - 1)}", b"224")
            lines += self.block().count(b"\r\n")
        return lines

    def articles(self, numbers: list[int]) -> int:
        for n in numbers:
            self.cmd(f"ARTICLE {n}", b"220")
            if not self.block():
                raise RuntimeError(f"ARTICLE {n}: empty")
        return len(numbers)

    def quit(self) -> None:
        try:
            self.sock.sendall(b"QUIT\r\n")
            self.line()
        except OSError:
            pass
        self.sock.close()


def _client_proc(port: int, op: str, k: int, clients: int, chunk: int, cpu: int | None,
                 ready: mp.Queue, start: mp.synchronize.Event, out: mp.Queue) -> None:  # type: ignore[type-arg]
    try:
        if cpu is not None:
            os.sched_setaffinity(0, {cpu})
        r = Reader(port)
        _, low, high = r.enter(GROUP)  # not timed: connecting is not what this measures
    except Exception as exc:  # noqa: BLE001 - reported, so the parent does not hang
        ready.put(exc)
        return
    ready.put(None)
    start.wait()
    try:
        if op == "OVER":
            n = r.over(low, high, chunk)
        elif op == "WARM":  # every article, whatever the other readers read
            n = r.articles(list(range(low, high + 1)))
        else:
            n = r.articles(list(range(low + k, high + 1, clients)))
        r.quit()
        out.put(n)
    except Exception as exc:  # noqa: BLE001 - reported to the parent
        out.put(exc)


def run_clients(port: int, op: str, clients: int, chunk: int, pids: Callable[[], list[int]] = list,
                workers: Callable[[], list[int]] | None = None, split: list[str] | None = None,
                cpu: int | None = None) -> tuple[int, float, float]:
    """(items, seconds, server CPU seconds) for ``clients`` readers doing ``op`` at once; each is
    connected and in the group before the clock and the CPU count of ``pids()`` start. With
    ``workers`` (the server's worker processes), how the readers' connections sat over them once
    all were connected is appended to ``split`` (see :func:`worker_split`). With ``cpu``, the
    readers run on that CPU only."""
    counted = pids
    if workers is not None and split is not None:
        first = True

        def counted() -> list[int]:  # run_procs asks first once every reader is connected
            nonlocal first
            if first:
                first = False
                split.append(worker_split(port, workers()))
            return pids()

    return run_procs(_client_proc, [(port, op, k, clients, chunk, cpu) for k in range(clients)], counted,
                     "reader", 3600)


def worker_split(port: int, workers: list[int]) -> str:
    """The server's established connections on ``port`` per worker process, most first ("3+1").
    The kernel hashes each connection to one worker's socket (SO_REUSEPORT) and a busier
    worker hands it on (net/balance.py); a 3+1 or 4+0 run would measure one busy core while the
    other idles, which says nothing about the cost per article, so the report shows it."""
    counts = connections_per_process(port, workers, keep_empty=True)
    return "+".join(str(c) for c in counts) or "-"


def pin(pids: list[int], cpu: int) -> None:
    """Every thread of ``pids`` on ``cpu`` only (children forked later, such as INN's nnrpd per
    reader, inherit it)."""
    for pid in pids:
        try:
            tasks = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
        except FileNotFoundError:
            continue
        for tid in tasks:
            with contextlib.suppress(ProcessLookupError, PermissionError):  # a thread that has just ended
                os.sched_setaffinity(tid, {cpu})


def wait_port(port: int, proc: subprocess.Popen[bytes] | None = None, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                if s.recv(100).startswith((b"200", b"201")):
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing answers on port {port}")


# -- Postroom -------------------------------------------------------------------------
class Postroom(BenchPostroom):
    """``postroom serve`` with one plaintext NNTP listener; the group filled through News.post."""

    def __init__(self, root: Path, workers: int) -> None:
        super().__init__(root, "nntp", workers)

    def load(self, articles: list[bytes], batch: int = 64) -> float:
        """Write the config, create the group (readable by anyone) and post ``articles``;
        the seconds it took."""
        write_config(self.root, f"""[nntp]
path_host = "postroom.bench"
max_article_size = "1M"
[listeners.nntp]
address = "127.0.0.1:{self.port}"
""", head=f'log_level = "warning"\nworkers = {self.workers}\n')
        from postroom.config import load

        t0 = time.perf_counter()
        asyncio.run(_fill_postroom(load(self.root / "postroom.toml"), articles, batch))
        return time.perf_counter() - t0

    def start(self) -> None:
        super().start()
        wait_port(self.port, self.proc)

    def pids(self) -> list[int]:
        return process_tree(self.proc.pid) if self.proc is not None else []

    def worker_pids(self) -> list[int]:
        """The processes that serve connections: the supervisor's children, or the one process."""
        tree = self.pids()
        kids = [p for p in tree if self.proc is not None and p != self.proc.pid]
        return kids or tree


async def _fill_postroom(cfg: object, articles: list[bytes], batch: int) -> None:
    from postroom.auth import Authenticator
    from postroom.context import ServerContext
    from postroom.news.service import News
    from postroom.storage import open_store

    store = open_store(cfg)  # type: ignore[arg-type]
    await store.open()
    try:
        ctx = ServerContext(cfg, store, None, Authenticator(store))  # type: ignore[arg-type]
        news = await News.open(ctx)
        try:
            await news.add_group(GROUP, posting="y", description="bench group", read="anyone", post="anyone")
            for i in range(0, len(articles), batch):  # concurrent posts: the store commits them in groups
                await asyncio.gather(*(news.post(a, user=None, peer="bench") for a in articles[i:i + batch]))
        finally:
            await news.close()
    finally:
        await store.close()


# -- INN ------------------------------------------------------------------------------
class Inn:
    """INN 2 from tests/innpeer.py, with the bench group, fed over its streaming port."""

    name = "inn"

    def __init__(self, root: Path) -> None:
        from innpeer import InnPeer

        # The Postroom feed INN would send to is pointed at a closed port and matches no group.
        self.peer = InnPeer(root, postroom_port=1, groups=(GROUP,), feed_groups="!*")
        self.root = root

    @property
    def port(self) -> int:
        return self.peer.port

    def start(self) -> None:
        self.peer.start()

    def load(self, articles: list[bytes], window: int = 200) -> float:
        """MODE STREAM and pipelined TAKETHIS (RFC 4644 §2.5), ``window`` in flight; seconds taken."""
        t0 = time.perf_counter()
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=120)
        f = sock.makefile("rb")
        try:
            if not f.readline().startswith(b"200"):
                raise RuntimeError("INN did not greet its feed port with 200")
            sock.sendall(b"MODE STREAM\r\n")
            if not (reply := f.readline()).startswith(b"203"):
                raise RuntimeError(f"INN MODE STREAM: {reply!r}")
            for i in range(0, len(articles), window):
                part = articles[i:i + window]
                sock.sendall(b"".join(b"TAKETHIS " + _message_id(a) + b"\r\n" + stuffed(a) for a in part))
                for a in part:
                    if not (reply := f.readline()).startswith(b"239"):
                        raise RuntimeError(f"INN TAKETHIS {_message_id(a)!r}: {reply!r}")
            sock.sendall(b"QUIT\r\n")
        finally:
            f.close()
            sock.close()
        return time.perf_counter() - t0

    def pids(self) -> list[int]:
        proc = self.peer.proc
        return process_tree(proc.pid) if proc is not None else []

    def stop(self) -> None:
        self.peer.stop()


def _message_id(raw: bytes) -> bytes:
    i = raw.index(b"\r\nMessage-ID: ") + 14
    return raw[i:raw.index(b"\r\n", i)]


def inn_unavailable() -> str | None:
    from innpeer import available

    if not available():
        return "inn2 is not installed (scripts/install-test-deps.sh)"
    return None


# -- the runs -------------------------------------------------------------------------
Server = Postroom | Inn


Splits = dict[tuple[str, int], list[str]]


def bench(servers: list[Server], ops: list[str], counts: list[int], args: argparse.Namespace,
          ) -> tuple[dict[tuple[str, int], dict[str, Case]], dict[str, Case], Splits]:
    """The timed runs, each server's first OVER pass (cold caches, one client), and per operation
    and client count how each Postroom run's connections sat over its workers."""
    results: dict[tuple[str, int], dict[str, Case]] = {}
    cold: dict[str, Case] = {}
    splits: Splits = {}
    readers_cpu = 0 if args.pin else None
    for srv in servers:
        if args.pin:
            pin(srv.pids(), 0 if args.pin == "same" else 1)
        if "OVER" in ops:
            n, secs, cpu = run_clients(srv.port, "OVER", 1, args.chunk, srv.pids)
            cold[srv.name] = Case([n / secs], cpu, n)
            # Warm-up of every worker process (each keeps its own overview cache; the kernel spreads
            # connections over them): several clients at once, so that each worker is likely to get one.
            run_clients(srv.port, "OVER", 4 * args.workers, args.chunk)
        if "ARTICLE" in ops:
            # The page cache, INN's mmaps, and every worker's own state (its open segment files,
            # what it learnt of each article's header): one reader per worker at once, each
            # reading the whole group (the workers spread concurrent connections evenly), so no
            # timed run pays a worker's first reads.
            run_clients(srv.port, "WARM", args.workers, args.chunk)
    for op in ops:
        for c in counts:
            cases = results[(op, c)] = {srv.name: Case() for srv in servers}
            split = splits[(op, c)] = []
            for run in range(args.runs):
                for srv in servers if run % 2 == 0 else servers[::-1]:
                    workers = srv.worker_pids if isinstance(srv, Postroom) and args.workers > 1 else None
                    n, secs, cpu = run_clients(srv.port, op, c, args.chunk, srv.pids, workers, split,
                                               readers_cpu)
                    want = args.articles * (c if op == "OVER" else 1)
                    if n != want:
                        raise RuntimeError(f"{srv.name} {op} with {c} clients: {n} items, expected {want}")
                    case = cases[srv.name]
                    case.rates.append(n / secs)
                    case.cpu += cpu
                    case.messages += n
    return results, cold, splits


def report(results: dict[tuple[str, int], dict[str, Case]], cold: dict[str, Case], loads: dict[str, float],
           args: argparse.Namespace, why_not: str | None, splits: Splits | None = None) -> None:
    print(f"NNTP reading: {args.articles} articles of ~{args.size} octets in one group; OVER in ranges of "
          f"{args.chunk}, ARTICLE one at a time; median of {args.runs} alternated runs; "
          f"Postroom workers={args.workers} ({os.cpu_count()} CPU cores)"
          + (f"; pinned: {'servers and readers on CPU 0' if args.pin == 'same' else 'servers on CPU 1, readers on CPU 0'}"
             if args.pin else ""))
    for name, secs in loads.items():
        print(f"loaded {name}: {args.articles / secs:.0f} articles/s ({secs:.1f} s)")
    if why_not is not None:
        print(f"(INN not run: {why_not})")
    for name, case in cold.items():
        print(f"first OVER pass (cold caches), 1 client, {name}: {case.rate():.0f} msgs/s, "
              f"{case.cpu_us():.1f} us cpu/msg")
    print(f"{'op':>8} {'clients':>8} {'postroom msgs/s':>16} {'inn msgs/s':>11} {'ratio':>7}"
          f" {'postroom us cpu/msg':>20} {'inn us cpu/msg':>15} {'cpu ratio':>10}")
    for (op, c), cases in results.items():
        p, i = cases["postroom"], cases.get("inn")
        if i is None:
            print(f"{op:>8} {c:>8} {p.rate():16.0f} {'-':>11} {'-':>7} {p.cpu_us():20.1f} {'-':>15} {'-':>10}")
            continue
        ratio = statistics.median(a / b for a, b in zip(p.rates, i.rates))
        # CPU is counted in clock ticks (10 ms): a tiny run (--quick) may count none.
        cpu_ratio = f"{i.cpu_us() / p.cpu_us():10.2f}" if p.cpu_us() else f"{'-':>10}"
        print(f"{op:>8} {c:>8} {p.rate():16.0f} {i.rate():11.0f} {ratio:7.2f} {p.cpu_us():20.1f}"
              f" {i.cpu_us():15.1f} {cpu_ratio}")
    for (op, c), cases in results.items():
        if "inn" in cases:
            runs = " ".join(f"{a / b:.2f}" for a, b in zip(cases["postroom"].rates, cases["inn"].rates))
            print(f"  ratio per run, {op}, {c} client(s): {runs}")
    for (op, c), split in (splits or {}).items():
        if split and c > 1:  # an uneven run measures one busy worker
            print(f"  postroom connections per worker, {op}, {c} client(s): {' '.join(split)}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--articles", type=int, default=100_000)
    ap.add_argument("--size", type=int, default=2048, help="octets per article (about)")
    ap.add_argument("--clients", default="1,4", help="comma-separated client counts")
    ap.add_argument("--chunk", type=int, default=1000, help="articles per OVER command")
    ap.add_argument("--ops", default=",".join(OPS), help=f"comma-separated, of {', '.join(OPS)}")
    ap.add_argument("--runs", type=int, default=3, help="timed runs per server, operation and client count")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                    help="Postroom worker processes (default: one per CPU core, as an admin would set)")
    ap.add_argument("--quick", action="store_true", help="300 articles, 1 and 2 clients, 1 run")
    ap.add_argument("--no-inn", action="store_true")
    ap.add_argument("--pin", choices=("same", "apart"),
                    help="servers and readers on CPU 0 (same), or servers on 1 and readers on 0 (apart)")
    args = ap.parse_args()
    if args.quick:
        args.articles, args.clients, args.runs, args.chunk = 300, "1,2", 1, 100
    ops = [o.strip().upper() for o in args.ops.split(",") if o.strip()]
    if args.pin == "apart" and len(os.sched_getaffinity(0)) < 2:
        ap.error("--pin apart needs two CPUs")
    if unknown := set(ops) - set(OPS):
        ap.error(f"unknown operations: {', '.join(sorted(unknown))}")
    counts = [int(c) for c in args.clients.split(",")]
    articles = [article(n, args.size) for n in range(args.articles)]

    why_not = "--no-inn" if args.no_inn else inn_unavailable()
    tmp = Path(tempfile.mkdtemp(prefix="nntp-bench-"))
    os.chmod(tmp, 0o755)
    postroom = Postroom(tmp / "postroom", args.workers)
    servers: list[Server] = [postroom]
    loads: dict[str, float] = {}
    try:
        postroom.root.mkdir()
        loads["postroom"] = postroom.load(articles)
        postroom.start()
        if why_not is None:
            inn = Inn(tmp / "inn")
            servers.append(inn)
            inn.start()
            loads["inn"] = inn.load(articles)
        results, cold, splits = bench(servers, ops, counts, args)
    finally:
        for srv in servers:
            srv.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    report(results, cold, loads, args, why_not, splits)
    return 0


if __name__ == "__main__":
    sys.exit(main())
