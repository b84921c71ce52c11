#!/usr/bin/env python3
"""Scale-out throughput: 1, 2 and 3 Postroom nodes on one PostgreSQL, next to the SQLite store.

Every configuration runs real ``postroom serve`` processes (``workers = 1`` each) on this
machine: the SQLite store (one node, the default backend), then one database of a throwaway
PostgreSQL cluster (tests/pgcluster.py: initdb in a temporary directory, loopback, fsync and
synchronous_commit on) with 1, 2 and 3 nodes on it.

Each node gets a CPU budget of its own (``--node-cpu``, 0.4 core by default) from a cgroup:
the cpu controller's quota (cgroup v2 ``cpu.max``, or v1 ``cpu.cfs_quota_us``) caps it, and a
weight 8 times the default lets it have that budget on a busy machine too. So each node stands
for a machine of its own, the nodes' CPU is the limit, and PostgreSQL and the load generators
have the rest of the cores (in an uncapped group of their own with the same weight, so that
other work on the machine does not starve them either). The SQLite node gets the same cap, so that the SMTP ratio compares
like with like. ``--node-cpu 0`` runs uncapped; where no cgroup can be written (not root, a
read-only or foreign hierarchy) the bench says why and runs uncapped.

Two measurements per configuration, with the same load per node:

- SMTP accept+deliver: one Postfix ``smtp-source`` per node (as bench/smtp.py), ``--sessions``
  sessions sending ``--smtp`` messages of 10 KB each to a local user of its own (deliveries into
  one mailbox take its UID counter in turn, whichever node they come from); a 250 means stored
  durably. msg/s over the whole run; the delivered count is checked through the store.
- IMAP FETCH: one client process per node holding ``--clients`` connections, each fetching 50
  consecutive messages' FLAGS and BODY.PEEK[HEADER.FIELDS (FROM TO SUBJECT DATE)] from a
  prepared ``--messages`` mailbox for ``--seconds``, one command at a time; FETCH commands per
  second. The client reads responses without parsing them (it checks the tagged OK and counts
  the 50 FETCH lines), so that it costs a fraction of what the node does.

The nodes run a copy of src/ taken at the start, so all configurations of one run measure the
same code while the working tree changes.

Printed per configuration: the rates; CPU milliseconds per operation of the nodes, of
PostgreSQL and of the clients (from /proc and getrusage: steadier than rates on a shared
machine); the cores each node used and, when capped, the share of scheduler periods in which
the cap held a node back (near 100 %: the node's CPU was the limit). Then the ratios issue #17
asks for: one PostgreSQL node against the SQLite store on SMTP (target >= 0.7x) and 3 nodes
against 1 node on IMAP FETCH (target >= 2x).

    python bench/scaleout.py                  # capped at 0.4 core per node (needs root for the cgroups)
    python bench/scaleout.py --node-cpu 0     # uncapped: the nodes share the machine with everything else
    python bench/scaleout.py --quick          # smoke run (tests/bench/test_scaleout_bench.py)
    python bench/scaleout.py --nodes 1,3      # only some PostgreSQL configurations
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import random
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from multiprocessing.process import BaseProcess
from pathlib import Path
from queue import Empty
from typing import Self, TypeVar

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.append(str(ROOT / "tests"))

from dovecot_peer import PASSWORD, free_port
from imap import _tree, cpu_seconds, message
from pgcluster import PgCluster, available
from smtp import wait_port

T = TypeVar("T")
PY = sys.executable
DOMAIN = "example.test"
FETCH_USER = f"fetch@{DOMAIN}"

FETCH_SPAN = 50  # messages per FETCH command
CG_PREFIX = "postroom-scaleout-"
PERIOD_US = 100_000  # the scheduler period the quota is given in (the kernel's default)
#: --quick: SMTP messages and sessions per node, FETCH mailbox size, IMAP connections, FETCH seconds.
QUICK = (50, 4, 300, 2, 0.5)
REST = "rest"  # the group of PostgreSQL and the load generators
WEIGHT_FACTOR = 8  # a node's cgroup weight, in multiples of the default (v1 cpu.shares 1024, v2 cpu.weight 100)


def rcpt(k: int) -> str:
    """Node ``k``'s SMTP recipient: one mailbox per node, as when a balancer spreads many users'
    mail over the nodes (deliveries into one mailbox take its UID counter in turn, across nodes too)."""
    return f"user{k + 1}@{DOMAIN}"


# -- CPU budgets ---------------------------------------------------------------------------
class CpuCaps:
    """One cgroup per node under the cpu controller, with a quota of ``cores`` CPUs, and one
    without a quota (``REST``) for PostgreSQL and the load generators; all with a weight
    ``WEIGHT_FACTOR`` times the default, so that on a busy machine the quota is what a node
    gets, not only its ceiling, and the clients and the database are not starved either.

    cgroup v2 (``cpu.max``) when the unified hierarchy offers the cpu controller, otherwise
    v1 (``cpu.cfs_quota_us``). ``reason`` says why no cap applies when ``root`` is None.
    The groups are flat, under the hierarchy's root: no parent with processes in it to trip
    v2's rule that only leaves hold processes.
    """

    def __init__(self, cores: float) -> None:
        self.cores = cores
        self.root: Path | None = None
        self.version = 0
        self.groups: dict[str, Path] = {}
        self.reason = ""
        if cores <= 0:
            self.reason = "--node-cpu 0"
            return
        v2 = next((p for p in (Path("/sys/fs/cgroup"), Path("/sys/fs/cgroup/unified"))
                   if "cpu" in _read(p / "cgroup.controllers").split()), None)
        if v2 is not None:
            self.root, self.version = v2, 2
        elif (Path("/sys/fs/cgroup/cpu") / "cpu.cfs_quota_us").exists():
            self.root, self.version = Path("/sys/fs/cgroup/cpu"), 1
        else:
            self.reason = "no cgroup cpu controller (neither cgroup v2 cpu.max nor v1 cpu.cfs_quota_us)"
            return
        self._remove_stale()
        try:
            if self.version == 2 and "cpu" not in _read(self.root / "cgroup.subtree_control").split():
                (self.root / "cgroup.subtree_control").write_text("+cpu")
            self.group("probe")  # fails here, before any node runs, if we may not
            self.remove("probe")
        except OSError as exc:
            self.reason = f"cannot write cgroups under {self.root}: {exc.strerror or exc}"
            self.close()
            self.root, self.version = None, 0

    @property
    def active(self) -> bool:
        return self.root is not None

    def describe(self) -> str:
        if not self.active:
            return f"uncapped ({self.reason})"
        quota = round(self.cores * PERIOD_US)
        if self.version == 1:
            how = (f"cgroup v1 cpu controller: cpu.cfs_quota_us {quota} per cpu.cfs_period_us {PERIOD_US}, "
                   f"cpu.shares {1024 * WEIGHT_FACTOR}")
        else:
            how = f"cgroup v2: cpu.max \"{quota} {PERIOD_US}\", cpu.weight {100 * WEIGHT_FACTOR}"
        return (f"capped at {self.cores:g} core per node ({how}); PostgreSQL and the load generators "
                f"in a group of their own with the same weight and no cap")

    def group(self, name: str, capped: bool = True) -> Path:
        """The cgroup ``name`` (a node's, or ``REST``), made with its weight and, if ``capped``,
        the quota."""
        assert self.root is not None
        path = self.root / f"{CG_PREFIX}{os.getpid()}-{name}"
        path.mkdir(exist_ok=True)
        self.groups[name] = path
        quota = max(1000, round(self.cores * PERIOD_US))  # the kernel's minimum quota is 1 ms
        if self.version == 1:
            (path / "cpu.cfs_period_us").write_text(str(PERIOD_US))
            (path / "cpu.cfs_quota_us").write_text(str(quota) if capped else "-1")
            (path / "cpu.shares").write_text(str(1024 * WEIGHT_FACTOR))
        else:
            (path / "cpu.max").write_text(f"{quota if capped else 'max'} {PERIOD_US}")
            (path / "cpu.weight").write_text(str(100 * WEIGHT_FACTOR))
        return path

    def procs(self, name: str) -> str | None:
        """The ``cgroup.procs`` file of group ``name``, made uncapped if new; None when not capping."""
        if not self.active:
            return None
        return str((self.groups.get(name) or self.group(name, capped=False)) / "cgroup.procs")

    def adopt(self, name: str, pids: list[int]) -> None:
        """Move ``pids`` into group ``name`` (a no-op for those already there)."""
        path = self.groups[name]
        inside = set(_read(path / "cgroup.procs").split())
        for pid in pids:
            if str(pid) not in inside:
                try:
                    (path / "cgroup.procs").write_text(str(pid))
                except ProcessLookupError:
                    pass

    def throttling(self) -> tuple[int, int]:
        """(scheduler periods, periods in which the quota stopped the group), over the nodes' groups."""
        periods = throttled = 0
        for name, path in self.groups.items():
            if name == REST:
                continue
            stat = dict(line.split() for line in _read(path / "cpu.stat").splitlines() if " " in line)
            periods += int(stat.get("nr_periods", 0))
            throttled += int(stat.get("nr_throttled", 0))
        return periods, throttled

    def remove(self, name: str) -> None:
        """Remove group ``name``; a process still in it goes back to the root group first."""
        path = self.groups.pop(name, None)
        if path is None or self.root is None:
            return
        for pid in _read(path / "cgroup.procs").split():
            try:
                (self.root / "cgroup.procs").write_text(pid)
            except OSError:
                pass
        try:
            path.rmdir()
        except FileNotFoundError:
            pass
        except OSError as exc:
            print(f"could not remove cgroup {path}: {exc}", file=sys.stderr)

    def close(self) -> None:
        for name in list(self.groups):
            self.remove(name)

    def _remove_stale(self) -> None:
        """Groups left by a bench that was killed with SIGKILL: empty, and their pid is gone."""
        assert self.root is not None
        for path in self.root.glob(f"{CG_PREFIX}*"):
            pid = path.name[len(CG_PREFIX):].split("-", 1)[0]
            if pid.isdigit() and not Path(f"/proc/{pid}").exists():
                try:
                    path.rmdir()
                except OSError:
                    pass


def in_group(procs: str | None, cmd: list[str]) -> list[str]:
    """``cmd`` run by a shell that first joins the cgroup whose ``cgroup.procs`` is ``procs``
    (then execs it: same pid), so that every process it forks is in the group too."""
    return cmd if procs is None else ["/bin/sh", "-c", 'echo $$ > "$0" && exec "$@"', procs, *cmd]


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


# -- nodes -----------------------------------------------------------------------------------
class Node:
    """One ``postroom serve`` on 127.0.0.1 with an SMTP and an IMAP listener of its own."""

    def __init__(self, root: Path, name: str, storage: str, tls: tuple[Path, Path]) -> None:
        self.name = name
        self.dir = root / name
        self.dir.mkdir(parents=True)
        shutil.copy(tls[0], self.dir / "cert.pem")
        shutil.copy(tls[1], self.dir / "key.pem")
        self.smtp, self.imap = free_port(), free_port()
        self.cfg = self.dir / "postroom.toml"
        self.proc: subprocess.Popen[bytes] | None = None
        # No log line per message and no mail checks on the hot path (bench/smtp.py does the same).
        self.cfg.write_text(f"""\
hostname = "{name}.{DOMAIN}"
domains = ["{DOMAIN}"]
workers = 1
log_level = "warning"
[storage]
{storage}
[tls]
cert = "cert.pem"
key = "key.pem"
[limits]
connections_per_ip = 500
[mailauth]
check_listeners = []
[imap]
allow_plaintext_auth = true
[listeners.smtp]
address = "127.0.0.1:{self.smtp}"
[listeners.imap]
address = "127.0.0.1:{self.imap}"
""")

    def start(self, caps: CpuCaps) -> None:
        """Start ``postroom serve``, inside its cgroup from its first instruction when capped: a
        shell joins the group and execs the node (same pid), so every process it forks is in it."""
        cmd = [PY, "-m", "postroom.cli", "-c", str(self.cfg), "serve"]
        if caps.active:
            cmd = in_group(str(caps.group(self.name) / "cgroup.procs"), cmd)
        with open(self.dir / "serve.log", "ab") as log:  # the child keeps its own descriptor
            self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log)

    def pids(self) -> list[int]:
        return [] if self.proc is None else _tree(self.proc.pid)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


def fill(node: Node, messages: int, recipients: int, batch: int = 256) -> None:
    """Accounts ``rcpt(k)`` (the SMTP targets, empty) and ``FETCH_USER`` with ``messages`` messages,
    written through the store API (concurrent deliveries: group commit), before any node runs."""
    from postroom.auth import hash_password
    from postroom.config import load
    from postroom.storage import open_store
    from postroom.storage.models import DeliveryTarget

    async def run() -> None:
        store = open_store(load(node.cfg))
        await store.open()
        try:
            if not await store.has_domain(DOMAIN):
                await store.add_domain(DOMAIN)
            pw = hash_password(PASSWORD)
            for k in range(recipients):
                await store.create_account(rcpt(k), pw)
            target = [DeliveryTarget((await store.create_account(FETCH_USER, pw)).id)]
            msgs = [message(i) for i in range(messages)]
            for i in range(0, len(msgs), batch):
                await asyncio.gather(*(store.deliver(m, target) for m in msgs[i:i + batch]))
        finally:
            await store.close()

    asyncio.run(run())


def delivered(node: Node, recipients: int) -> int:
    """Messages in the INBOXes of the first ``recipients`` SMTP targets, read through the store API."""
    from postroom.config import load
    from postroom.storage import open_store

    async def run() -> int:
        store = open_store(load(node.cfg))
        await store.open()
        try:
            total = 0
            for k in range(recipients):
                acct = await store.get_account(rcpt(k))
                assert acct is not None
                box = await store.get_mailbox(acct.id, "INBOX")
                assert box is not None
                total += (await store.mailbox_status(box.id)).messages
            return total
        finally:
            await store.close()

    return asyncio.run(run())


# -- load ------------------------------------------------------------------------------------
def smtp_run(nodes: list[Node], sessions: int, messages: int, procs_file: str | None) -> None:
    """One smtp-source per node, all at once, each with ``sessions`` sessions and ``messages`` messages
    for the node's own recipient."""
    procs = [subprocess.Popen(in_group(procs_file, ["smtp-source", "-s", str(sessions), "-m", str(messages),
                                                    "-l", "10240", "-f", "sender@outside.test", "-t", rcpt(k),
                                                    f"127.0.0.1:{n.smtp}"]),
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for k, n in enumerate(nodes)]
    for p in procs:
        _, err = p.communicate(timeout=3600)
        if p.returncode != 0:
            raise RuntimeError(f"smtp-source failed: {err.decode(errors='replace')[-500:]}")


class ImapError(Exception):
    pass


async def _command(r: asyncio.StreamReader, w: asyncio.StreamWriter, tag: bytes, line: bytes) -> bytes:
    """Send one command and return everything up to and including its tagged OK.

    The end is the first read that ends in a CRLF whose last line starts with the tag: the
    untagged lines start with ``*`` and the header lines inside literals with a field name,
    never with a tag like ``x17``."""
    w.write(tag + b" " + line + b"\r\n")
    buf = bytearray()
    while True:
        chunk = await r.read(1 << 18)
        if not chunk:
            raise ImapError(f"connection closed during {line[:20]!r}")
        buf += chunk
        if buf.endswith(b"\r\n"):
            start = buf.rfind(b"\r\n", 0, len(buf) - 2)
            last = buf[start + 2:] if start >= 0 else buf
            if last.startswith(tag + b" "):
                if not last.startswith(tag + b" OK"):
                    raise ImapError(f"{line[:20]!r}: {bytes(last).strip()!r}")
                return bytes(buf)


def _fetch_client(port: int, conns: int, seconds: float, ready: mp.Queue[int], go: mp.synchronize.Event,
                  out: mp.Queue[tuple[int, float]], procs_file: str | None) -> None:
    """``conns`` IMAP connections in one process, each looping over FETCH for ``seconds``;
    puts (FETCH commands done, this process's CPU seconds during them)."""
    if procs_file is not None:
        Path(procs_file).write_text(str(os.getpid()))
    async def session() -> tuple[asyncio.StreamReader, asyncio.StreamWriter, int]:
        r, w = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
        await r.readline()
        await _command(r, w, b"l", f"LOGIN {FETCH_USER} {PASSWORD}".encode())
        m = re.search(rb"\* (\d+) EXISTS", await _command(r, w, b"s", b"SELECT INBOX"))
        if m is None:
            raise ImapError("SELECT without EXISTS")
        return r, w, int(m.group(1))

    async def loop(r: asyncio.StreamReader, w: asyncio.StreamWriter, n: int, end: float) -> int:
        rnd, count = random.Random(), 0
        while time.monotonic() < end:
            a = rnd.randint(1, max(1, n - FETCH_SPAN + 1))
            b = min(n, a + FETCH_SPAN - 1)
            resp = await _command(r, w, b"x%d" % count,
                                  b"FETCH %d:%d (FLAGS BODY.PEEK[HEADER.FIELDS (FROM TO SUBJECT DATE)])" % (a, b))
            if resp.count(b" FETCH (") != b - a + 1:
                raise ImapError(f"FETCH {a}:{b} gave {resp.count(b' FETCH (')} messages")
            count += 1
        return count

    async def main() -> None:
        conns_ = await asyncio.gather(*(session() for _ in range(conns)))
        ready.put(1)
        go.wait()  # blocks the loop, which has nothing to do until then
        c0 = time.process_time()
        end = time.monotonic() + seconds
        counts = await asyncio.gather(*(loop(r, w, n, end) for r, w, n in conns_))
        out.put((sum(counts), time.process_time() - c0))
        for r, w, _ in conns_:
            await _command(r, w, b"z", b"LOGOUT")
            w.close()

    asyncio.run(main())


def fetch_run(nodes: list[Node], clients: int, seconds: float, procs_file: str | None,
              measure: Measure | None = None) -> tuple[int, float]:
    """One client process per node with ``clients`` connections; (FETCH commands, client CPU
    seconds). ``measure`` covers the FETCH loops only: from the go, once every connection is
    logged in, to the last count, before the LOGOUTs."""
    ctx = mp.get_context("fork")
    ready: mp.Queue[int] = ctx.Queue()
    out: mp.Queue[tuple[int, float]] = ctx.Queue()
    go = ctx.Event()
    procs = [ctx.Process(target=_fetch_client, args=(n.imap, clients, seconds, ready, go, out, procs_file),
                         daemon=True)
             for n in nodes]
    for p in procs:
        p.start()
    for _ in procs:
        _get(ready, procs, 300)
    if measure is not None:
        measure.start()
    go.set()
    results = [_get(out, procs, seconds + 300) for _ in procs]
    if measure is not None:
        measure.stop()
    for p in procs:
        p.join(30)
    if any(p.exitcode != 0 for p in procs):
        raise RuntimeError("an IMAP client process failed (its traceback is above)")
    return sum(c for c, _ in results), sum(cpu for _, cpu in results)


def _get(queue: mp.Queue[T], procs: Sequence[BaseProcess], timeout: float) -> T:
    """The next item of ``queue``; an error at once when a client process died without one."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return queue.get(timeout=0.2)
        except Empty:
            if any(p.exitcode not in (None, 0) for p in procs):
                raise RuntimeError("an IMAP client process failed (its traceback is above)") from None
            if time.monotonic() > deadline:
                raise RuntimeError(f"no answer from the IMAP clients in {timeout:g}s") from None


# -- measuring -------------------------------------------------------------------------------
class Measure:
    """Wall time, CPU seconds of the nodes and of PostgreSQL, and cgroup throttling over a block."""

    def __init__(self, nodes: list[Node], pg: PgCluster | None, caps: CpuCaps) -> None:
        self.nodes, self.pg, self.caps = nodes, pg, caps

    def _pg_pids(self) -> list[int]:
        if self.pg is None:
            return []
        pidfile = self.pg.data / "postmaster.pid"
        return _tree(int(pidfile.read_text().split()[0])) if pidfile.exists() else []

    def start(self) -> None:
        self.c_nodes = cpu_seconds([p for n in self.nodes for p in n.pids()])
        self.c_pg = cpu_seconds(self._pg_pids())
        self.c_children = _children_cpu()
        self.throttle = self.caps.throttling()
        self.t = time.perf_counter()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self.elapsed = time.perf_counter() - self.t
        self.nodes_cpu = cpu_seconds([p for n in self.nodes for p in n.pids()]) - self.c_nodes
        self.pg_cpu = cpu_seconds(self._pg_pids()) - self.c_pg
        # smtp-source and the IMAP client processes are this process's children, reaped in the block
        self.clients_cpu = _children_cpu() - self.c_children
        periods, throttled = (a - b for a, b in zip(self.caps.throttling(), self.throttle, strict=True))
        self.throttled = throttled / periods if periods else float("nan")

    def row(self, ops: int, client_cpu: float | None = None) -> dict[str, float]:
        return {"rate": ops / self.elapsed, "node": self.nodes_cpu / max(ops, 1), "pg": self.pg_cpu / max(ops, 1),
                "client": (self.clients_cpu if client_cpu is None else client_cpu) / max(ops, 1),
                "cores": self.nodes_cpu / self.elapsed / len(self.nodes), "throttled": self.throttled}


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def run_config(label: str, nodes: list[Node], pg: PgCluster | None, caps: CpuCaps, args: argparse.Namespace,
               results: dict[str, dict[str, dict[str, float]]]) -> bool:
    for n in nodes:
        n.start(caps)
    try:
        for n in nodes:
            wait_port(n.smtp, 60)
            wait_port(n.imap, 60)
            if caps.active:  # the group was joined before exec; this checks nothing escaped it
                caps.adopt(n.name, n.pids())
        before = delivered(nodes[0], len(nodes))
        smtp_run(nodes, 2, 10, caps.procs(REST))  # warm-up: connections, pools, caches
        with Measure(nodes, pg, caps) as m:
            smtp_run(nodes, args.sessions, args.smtp, caps.procs(REST))
        r = results.setdefault(label, {})
        r["smtp"] = m.row(args.smtp * len(nodes))
        fetch_run(nodes, 1, min(0.5, args.seconds), caps.procs(REST))  # warm-up: each node's message index
        m = Measure(nodes, pg, caps)
        fetches, client_cpu = fetch_run(nodes, args.clients, args.seconds, caps.procs(REST), m)
        r["fetch"] = m.row(fetches, client_cpu)
        got = delivered(nodes[0], len(nodes)) - before
        want = (args.smtp + 10) * len(nodes)
        print(f"{label:>20}: SMTP {r['smtp']['rate']:7.1f} msg/s, IMAP FETCH {r['fetch']['rate']:7.1f}/s; "
              f"{got} of {want} messages delivered", flush=True)
        return got == want
    finally:
        for n in nodes:
            n.stop()
        for n in nodes:
            caps.remove(n.name)


# -- report ----------------------------------------------------------------------------------
def report(results: dict[str, dict[str, dict[str, float]]], caps: CpuCaps, args: argparse.Namespace) -> None:
    load = os.getloadavg()
    print(f"\nnode CPU: {caps.describe()}")
    print(f"machine: {os.cpu_count()} CPU cores for the nodes, PostgreSQL and the clients; "
          f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} at the end; workers = 1 per node")
    smtp = (f"SMTP accept+deliver: {args.smtp} messages of 10 KB per node, "
            f"{args.sessions} smtp-source sessions per node")
    fetch = (f"IMAP FETCH of {FETCH_SPAN} messages' flags and 4 header fields: {args.clients} connections "
             f"per node for {args.seconds:g}s, {args.messages}-message mailbox")
    for kind, unit, what in (("smtp", "msg", smtp), ("fetch", "FETCH", fetch)):
        print(f"\n{what}")
        head = f"{unit}/s"
        print(f"{'configuration':>20} {head:>9} {'node ms/' + unit:>15} {'pg ms/' + unit:>13}"
              f" {'client ms/' + unit:>17} {'cores/node':>10} {'throttled':>9}")
        for label, rr in results.items():
            r = rr[kind]
            thr = "-" if r["throttled"] != r["throttled"] else f"{r['throttled'] * 100:.0f}%"
            print(f"{label:>20} {r['rate']:>9.1f} {r['node'] * 1000:>15.3f} {r['pg'] * 1000:>13.3f}"
                  f" {r['client'] * 1000:>17.2f} {r['cores']:>10.2f} {thr:>9}")
    mode = f"capped at {caps.cores:g} core per node" if caps.active else "uncapped"
    one = results.get("postgresql, 1 node")
    sq = results.get("sqlite, 1 node")
    print()
    if one and sq:
        ratio = one["smtp"]["rate"] / sq["smtp"]["rate"]
        print(f"SMTP, 1 PostgreSQL node / SQLite: {ratio:.2f}x "
              f"(target >= 0.7x: {'met' if ratio >= 0.7 else 'NOT met'}; {mode})")
    three = results.get("postgresql, 3 nodes")
    if one and three:
        ratio = three["fetch"]["rate"] / one["fetch"]["rate"]
        print(f"IMAP FETCH, 3 PostgreSQL nodes / 1 node: {ratio:.2f}x "
              f"(target >= 2x: {'met' if ratio >= 2 else 'NOT met'}; {mode})")
    for label, rr in results.items():
        r = rr["fetch"]
        if label.startswith("postgresql") and r["pg"] > 0:
            # How far the database is from being the limit, whatever the rates say.
            print(f"{label}: PostgreSQL spends 1/{r['node'] / r['pg']:.1f} of the nodes' CPU per FETCH "
                  f"(one database core keeps {r['node'] / r['pg']:.1f} node cores busy)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--node-cpu", type=float, default=0.4,
                    help="CPU cores each node may use, through a cgroup; 0 = uncapped (default 0.4)")
    ap.add_argument("--smtp", type=int, default=1000, help="SMTP messages per node (default 1000)")
    ap.add_argument("--sessions", type=int, default=16, help="concurrent SMTP sessions per node (default 16)")
    ap.add_argument("--messages", type=int, default=5000, help="messages in the FETCH mailbox (default 5000)")
    ap.add_argument("--clients", type=int, default=8, help="concurrent IMAP connections per node (default 8)")
    ap.add_argument("--seconds", type=float, default=5.0, help="seconds of FETCH per run (default 5)")
    ap.add_argument("--nodes", default="1,2,3", help="PostgreSQL configurations, in nodes (default 1,2,3)")
    ap.add_argument("--quick", action="store_true", help="small smoke run")
    args = ap.parse_args(argv)
    if args.quick:
        args.smtp, args.sessions, args.messages, args.clients, args.seconds = QUICK
    counts = sorted({int(x) for x in args.nodes.split(",") if x.strip()})
    if not counts or min(counts) < 1:
        ap.error("--nodes: positive node counts, e.g. 1,2,3")
    if not 0 <= args.node_cpu <= (os.cpu_count() or 1):
        ap.error(f"--node-cpu: 0 (uncapped) up to {os.cpu_count()} cores")
    if min(args.smtp, args.sessions, args.messages, args.clients) < 1 or args.seconds <= 0:
        ap.error("--smtp, --sessions, --messages, --clients and --seconds must be positive")
    if not shutil.which("smtp-source"):
        print("smtp-source (Debian package postfix) is needed: bash scripts/install-test-deps.sh")
        return 2
    if not available():
        print("PostgreSQL server binaries are needed (Debian package postgresql): bash scripts/install-test-deps.sh")
        return 2
    # SIGTERM ends the run like Ctrl-C: through the finally blocks that stop the nodes and
    # PostgreSQL and remove the cgroups.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    caps = CpuCaps(args.node_cpu)
    print(f"node CPU: {caps.describe()}", flush=True)
    results: dict[str, dict[str, dict[str, float]]] = {}
    ok = True
    base = Path(tempfile.mkdtemp(prefix="postroom-bench-scaleout-"))
    pg = PgCluster(base / "pg")
    try:
        # The nodes (and this process) run a copy of src/ taken now, so that every configuration
        # measures the same code even when the working tree is edited during the run.
        snapshot = base / "src"
        shutil.copytree(ROOT / "src", snapshot, ignore=shutil.ignore_patterns("__pycache__"))
        sys.path.insert(0, str(snapshot))
        os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, (str(snapshot), os.environ.get("PYTHONPATH"))))
        from postroom.net.tls import write_self_signed

        tls = (base / "cert.pem", base / "key.pem")
        write_self_signed(tls[0], tls[1], f"mail.{DOMAIN}")
        t0 = time.monotonic()
        sqlite = Node(base, "sqlite", 'backend = "sqlite"\npath = "data"', tls)
        fill(sqlite, args.messages, 1)
        print(f"sqlite: loaded {args.messages} messages in {time.monotonic() - t0:.1f}s", flush=True)
        ok &= run_config("sqlite, 1 node", [sqlite], None, caps, args, results)

        pg.start()
        if caps.active:  # its backends fork from the postmaster later: they start in the group
            caps.procs(REST)
            caps.adopt(REST, _tree(int((pg.data / "postmaster.pid").read_text().split()[0])))
        url = pg.create_database("bench")
        storage = f'backend = "postgresql"\npath = "data"\nurl = "{url}"\npool_size = 10'
        nodes = [Node(base, f"pg{k + 1}", storage, tls) for k in range(max(counts))]
        t0 = time.monotonic()
        fill(nodes[0], args.messages, max(counts))
        print(f"postgresql: loaded {args.messages} messages in {time.monotonic() - t0:.1f}s", flush=True)
        for k in counts:
            ok &= run_config(f"postgresql, {k} node{'s' if k > 1 else ''}", nodes[:k], pg, caps, args, results)
    finally:
        caps.close()
        pg.destroy()
        shutil.rmtree(base, ignore_errors=True)

    report(results, caps, args)
    if not ok:
        print("DELIVERY CHECK FAILED: see the lines above")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
