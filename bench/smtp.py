#!/usr/bin/env python3
"""SMTP throughput: Postroom vs Postfix vs aiosmtpd, side by side in one run.

Each server accepts 10 KB messages from Postfix's ``smtp-source`` for one local
user and must have them *durably delivered*:

- Postroom: ``postroom serve`` with the SQLite store (250 only after fsync+commit);
- Postfix: Debian's postfix, virtual delivery to a Maildir (see /work/shared/PEERS.md);
  its 250 means "queued", so the clock runs until every file is in Maildir/new;
- aiosmtpd: a minimal server writing each message to a Maildir with fsync.

For 1 and 20 concurrent clients it prints messages per second and Postroom's ratio
to the others, and verifies that every message was delivered (exit 1 otherwise).

    python bench/smtp.py                # 20 clients × 5000 msgs, 1 client × 1000
    python bench/smtp.py --quick        # a smoke run (CI): a few hundred messages
    python bench/smtp.py --workers 2    # Postroom with 2 worker processes
    python bench/smtp.py --scanners     # Postroom with clamd (and rspamd) on next to off

``--scanners`` runs Postroom alone, once per scanner set: none, ClamAV (a clamd from
tests/clamdpeer.py), rspamd (tests/rspamdpeer.py, when rspamd is installed) and both. It
prints throughput for each, and where the time goes per message: CPU in Postroom's
processes (its own overhead; the increase over "none" is what scanning costs us), CPU
in the scanner, and the added latency a single client sees (mostly waiting on the scanner).

Postfix needs root; its main.cf/master.cf are saved and restored. Without root or
without postfix installed, the Postfix column is skipped.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
DOMAIN = "example.test"
RCPT = f"user1@{DOMAIN}"
SIZE = 10240

AIOSMTPD_SERVER = textwrap.dedent("""
    import asyncio, itertools, os, sys, time
    from aiosmtpd.smtp import SMTP
    md, port = sys.argv[1], int(sys.argv[2])
    for d in ("tmp", "new", "cur"):
        os.makedirs(os.path.join(md, d), exist_ok=True)
    counter = itertools.count()
    class Handler:
        async def handle_DATA(self, server, session, envelope):
            name = f"{time.time_ns()}.{os.getpid()}_{next(counter)}.bench"
            tmp = os.path.join(md, "tmp", name)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.write(fd, envelope.original_content or envelope.content)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.rename(tmp, os.path.join(md, "new", name))
            return "250 2.0.0 Ok"
    async def main():
        loop = asyncio.get_running_loop()
        srv = await loop.create_server(lambda: SMTP(Handler(), hostname="aiosmtpd.bench"),
                                       "127.0.0.1", port, backlog=512)
        async with srv:
            await srv.serve_forever()
    asyncio.run(main())
""")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.recv(100)  # the greeting: the server really serves
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing answers on port {port}")


def smtp_source(port: int, sessions: int, messages: int) -> float:
    """Run smtp-source; return the elapsed seconds."""
    t = time.perf_counter()
    subprocess.run(["smtp-source", "-s", str(sessions), "-m", str(messages), "-l", str(SIZE),
                    "-f", "sender@outside.test", "-t", RCPT, f"127.0.0.1:{port}"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=3600)
    return time.perf_counter() - t


def dot_apart(port: int, messages: int) -> float:
    """One client that writes each message's final ".\r\n" in a send of its own (many MTAs
    and libraries do), Nagle's algorithm on; return the elapsed seconds. A server that lets
    its ACKs be delayed after the 354 makes such a client wait 40 ms per message."""
    body = b"Subject: dot apart\r\n\r\n" + (b"x" * 78 + b"\r\n") * (SIZE // 80)
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        f = s.makefile("rb")

        def reply() -> bytes:
            while True:
                line = f.readline()
                if line[3:4] != b"-":
                    return line

        reply()
        s.sendall(b"EHLO bench.test\r\n")
        reply()
        t0 = time.perf_counter()
        for _ in range(messages):
            for cmd in (b"MAIL FROM:<bench@remote.test>\r\n", b"RCPT TO:<%s>\r\n" % RCPT.encode(), b"DATA\r\n"):
                s.sendall(cmd)
                reply()
            s.sendall(body)
            s.sendall(b".\r\n")
            answer = reply()
            if not answer.startswith(b"250"):
                raise RuntimeError(f"message refused: {answer!r}")
        elapsed = time.perf_counter() - t0
        s.sendall(b"QUIT\r\n")
    return elapsed


def count_files(d: Path) -> int:
    try:
        return sum(1 for _ in os.scandir(d))
    except FileNotFoundError:
        return 0


# -- Postroom -------------------------------------------------------------------------
class Postroom:
    name = "postroom"

    def __init__(self, base: Path, workers: int, label: str = "postroom", extra_config: str = "") -> None:
        self.dir = base / label
        self.workers = workers
        self.extra_config = extra_config  # more TOML sections (--scanners: [clamav], [rspamd])
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def cli(self, *args: str) -> None:
        subprocess.run([PY, "-m", "postroom.cli", "-c", str(self.dir / "postroom.toml"), *args],
                       check=True, stdout=subprocess.DEVNULL, cwd=ROOT)

    def setup(self) -> None:
        subprocess.run([PY, "-m", "postroom.cli", "init", str(self.dir), "--domain", DOMAIN],
                       check=True, stdout=subprocess.DEVNULL, cwd=ROOT)
        cfg = self.dir / "postroom.toml"
        text = cfg.read_text()
        # Only an MX listener on a free port; no log line per message on the hot path.
        head, _, _ = text.partition("[listeners.")
        head = head.replace("workers = 1", f"workers = {self.workers}").replace(
            'log_level = "info"', 'log_level = "warning"').replace("connections_per_ip = 20",
                                                                   "connections_per_ip = 200")
        # The SMTP path alone: mail authentication's checks (SPF, DKIM, DMARC) are measured by
        # bench/mailauth.py, with their DNS from a fixture rather than whatever this machine has.
        cfg.write_text(head + f'[listeners.smtp]\naddress = "127.0.0.1:{self.port}"\ntls = "starttls"\n'
                       '[mailauth]\ncheck_listeners = []\n' + self.extra_config)
        self.cli("user", "add", RCPT, "--password", "bench-password")

    def start(self) -> None:
        self.proc = subprocess.Popen([PY, "-m", "postroom.cli", "-c", str(self.dir / "postroom.toml"), "serve"],
                                     cwd=ROOT, stdout=subprocess.DEVNULL)
        wait_port(self.port)

    def delivered(self) -> int:
        import asyncio

        sys.path.insert(0, str(ROOT / "src"))
        from postroom.config import load
        from postroom.storage import open_store

        async def count() -> int:
            cfg = load(self.dir / "postroom.toml")
            store = open_store(cfg)
            await store.open()
            try:
                acct = await store.get_account(RCPT)
                assert acct is not None
                mbox = await store.get_mailbox(acct.id, "INBOX")
                assert mbox is not None
                return (await store.mailbox_status(mbox.id)).messages
            finally:
                await store.close()
        return asyncio.run(count())

    def run(self, sessions: int, messages: int) -> float:
        before = self.delivered() if self.proc is None else None
        assert before is None or before >= 0
        return smtp_source(self.port, sessions, messages)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.proc = None


# -- aiosmtpd ---------------------------------------------------------------------------
class Aiosmtpd:
    name = "aiosmtpd"

    def __init__(self, base: Path) -> None:
        self.dir = base / "aiosmtpd-maildir"
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def setup(self) -> None:
        """Nothing to prepare: the server script creates its Maildir when it starts."""

    def start(self) -> None:
        self.proc = subprocess.Popen([PY, "-c", AIOSMTPD_SERVER, str(self.dir), str(self.port)])
        wait_port(self.port)

    def delivered(self) -> int:
        return count_files(self.dir / "new")

    def run(self, sessions: int, messages: int) -> float:
        return smtp_source(self.port, sessions, messages)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)
        self.proc = None


# -- Postfix ------------------------------------------------------------------------------
class Postfix:
    name = "postfix"
    MAIN = Path("/etc/postfix/main.cf")
    MASTER = Path("/etc/postfix/master.cf")

    def __init__(self, base: Path) -> None:
        self.dir = base / "postfix"
        self.port = free_port()
        self.saved: dict[Path, bytes] = {}

    @staticmethod
    def available() -> str | None:
        if os.geteuid() != 0:
            return "needs root"
        if not shutil.which("postfix") or not shutil.which("postconf"):
            return "postfix is not installed"
        return None

    @property
    def maildir_new(self) -> Path:
        return self.dir / "mail" / "user1" / "new"

    def setup(self) -> None:
        for p in (self.MAIN, self.MASTER):
            self.saved[p] = p.read_bytes()
        subprocess.run(["postfix", "stop"], capture_output=True)  # a leftover instance
        self.dir.mkdir(parents=True)
        os.chmod(self.dir.parent, 0o755)
        os.chmod(self.dir, 0o755)
        (self.dir / "mail").mkdir()
        subprocess.run(["chown", "-R", "5000:5000", str(self.dir / "mail")], check=True)
        (self.dir / "vmailbox").write_text(f"{RCPT} user1/\n")
        subprocess.run(["postmap", f"hash:{self.dir / 'vmailbox'}"], check=True)
        settings = {
            "inet_interfaces": "loopback-only", "inet_protocols": "ipv4", "mydestination": "localhost",
            "default_transport": "error", "relay_transport": "error",
            "virtual_mailbox_domains": DOMAIN, "virtual_mailbox_base": str(self.dir / "mail"),
            "virtual_mailbox_maps": f"hash:{self.dir / 'vmailbox'}",
            "virtual_uid_maps": "static:5000", "virtual_gid_maps": "static:5000",
            "virtual_minimum_uid": "5000", "maillog_file": str(self.dir / "maillog"),
            "maillog_file_prefixes": f"/var, /dev/stdout, {self.dir}",
            "smtpd_client_connection_count_limit": "0", "smtpd_client_connection_rate_limit": "0",
        }
        subprocess.run(["postconf", "-e", *(f"{k}={v}" for k, v in settings.items())], check=True)
        subprocess.run(["postconf", "-M#", "smtp/inet"], check=True)
        subprocess.run(["postconf", "-M", f"127.0.0.1:{self.port}/inet = 127.0.0.1:{self.port} inet n - y - - smtpd"],
                       check=True)

    def start(self) -> None:
        subprocess.run(["postfix", "start"], check=True, capture_output=True)
        wait_port(self.port)

    def delivered(self) -> int:
        return count_files(self.maildir_new)

    def run(self, sessions: int, messages: int) -> float:
        start_count = self.delivered()
        t = time.perf_counter()
        smtp_source(self.port, sessions, messages)
        # 250 from Postfix means queued; wait for the Maildir delivery to finish.
        deadline = time.monotonic() + 600
        while self.delivered() < start_count + messages and time.monotonic() < deadline:
            time.sleep(0.01)
        return time.perf_counter() - t

    def stop(self) -> None:
        subprocess.run(["postfix", "stop"], capture_output=True)
        time.sleep(0.5)
        for p, data in self.saved.items():
            p.write_bytes(data)
        self.saved.clear()


# -- --scanners: Postroom with content scanners on and off ---------------------------------
def tree_cpu(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and all its descendants (workers, scanners' children)."""
    parents: dict[int, int] = {}
    cpu: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            fields = Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited meanwhile
        parents[int(entry.name)] = int(fields[1])
        cpu[int(entry.name)] = (int(fields[11]) + int(fields[12])) / tick
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        total += cpu.get(p, 0.0)
        todo.extend(c for c, parent in parents.items() if parent == p)
    return total


def scanners_bench(args: argparse.Namespace, m20: int, m1: int) -> int:
    """Throughput and per-message costs with scanners off, ClamAV, rspamd and both."""
    sys.path.insert(0, str(ROOT / "tests"))
    from clamdpeer import CLAMD, Clamd

    base = Path(tempfile.mkdtemp(prefix="postroom-bench-scan-"))
    scanners: dict[str, Any] = {}
    try:
        if CLAMD is None:
            print("clamav: skipped (clamd is not installed: Debian package clamav-daemon)")
        else:
            scanners["clamav"] = Clamd(base / "clamd", stream_max="25M").start()
        try:
            from rspamdpeer import RspamdMissing, start_rspamd
        except ImportError:
            print("rspamd: skipped (tests/rspamdpeer.py is absent)")
        else:
            try:
                scanners["rspamd"] = start_rspamd(base / "rspamd")
            except RspamdMissing as exc:
                print(f"rspamd: skipped ({exc})")
        config = {"clamav": lambda s: f'[clamav]\nsocket = "{s.unix}"\n',
                  "rspamd": lambda s: f'[rspamd]\nurl = "{s.url}"\n'}
        runs: list[tuple[str, list[str]]] = [("none", [])]
        runs += [(name, [name]) for name in scanners]
        if len(scanners) > 1:
            runs.append(("+".join(scanners), list(scanners)))
        results: dict[str, dict[str, float]] = {}
        ok = True
        for label, used in runs:
            extra = "".join(config[name](scanners[name]) for name in used)
            srv = Postroom(base, args.workers, f"postroom-{label}", extra)
            srv.setup()
            srv.start()
            assert srv.proc is not None
            try:
                srv.run(2, 10)  # warm-up
                res: dict[str, float] = {}
                cpu0 = tree_cpu(srv.proc.pid)
                scan0 = {n: tree_cpu(scanners[n].proc.pid) for n in used}
                t1 = srv.run(1, m1)
                t20 = srv.run(20, m20)
                sent = m1 + m20
                res["rate1"], res["rate20"] = m1 / t1, m20 / t20
                res["latency"] = t1 / m1 * 1000
                res["ours"] = (tree_cpu(srv.proc.pid) - cpu0) / sent * 1000
                for n in used:
                    res[n] = (tree_cpu(scanners[n].proc.pid) - scan0[n]) / sent * 1000
                results[label] = res
            finally:
                srv.stop()
            got, want = srv.delivered(), 10 + m1 + m20
            if got != want:
                print(f"{label}: DELIVERY CHECK FAILED: {got} of {want} messages delivered")
                ok = False
            else:
                print(f"{label}: all {want} messages delivered")
            print(f"scanners {label:14s}: 1 client {res['rate1']:7.1f} msg/s, 20 clients {res['rate20']:7.1f} msg/s",
                  flush=True)
    finally:
        for s in scanners.values():
            s.stop()
        shutil.rmtree(base, ignore_errors=True)
    off = results["none"]
    print()
    print(f"{'scanners':14s} {'1 client':>10s} {'20 clients':>11s} {'latency':>9s} {'postroom CPU':>13s} "
          f"{'over none':>10s}   scanner CPU")
    for label, res in results.items():
        scan = ", ".join(f"{n} {res[n]:.2f} ms" for n in scanners if n in res) or "-"
        print(f"{label:14s} {res['rate1']:7.1f}/s {res['rate20']:8.1f}/s {res['latency']:6.2f} ms "
              f"{res['ours']:7.2f} ms/msg {res['ours'] - off['ours']:+7.2f} ms   {scan}")
    print("(latency: one client, per message; CPU: per message, Postroom's processes vs the scanner's)")
    for label, res in results.items():
        if label != "none":
            waiting = res["latency"] - off["latency"]
            print(f"postroom overhead with {label}: {res['ours'] - off['ours']:.2f} ms CPU/msg in Postroom, "
                  f"{waiting:.2f} ms/msg more latency (waiting on the scanner), "
                  f"throughput {res['rate20'] / off['rate20']:.2f}x of none")
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small smoke run")
    ap.add_argument("--messages", type=int, help="messages per run with 20 clients (default 5000)")
    ap.add_argument("--workers", type=int, default=2, help="Postroom worker processes (default 2)")
    ap.add_argument("--only", action="append", choices=("postroom", "postfix", "aiosmtpd"))
    ap.add_argument("--scanners", action="store_true", help="Postroom with clamd/rspamd on next to off")
    args = ap.parse_args(argv)
    if not shutil.which("smtp-source"):
        print("smtp-source (Debian package postfix) is needed: bash scripts/install-test-deps.sh")
        return 2
    m20 = args.messages or (300 if args.quick else 5000)
    m1 = max(20, m20 // 5)
    if args.scanners:
        return scanners_bench(args, m20, m1)
    plans = [(1, m1), (20, m20)]
    base = Path(tempfile.mkdtemp(prefix="postroom-bench-"))
    servers: list[Postroom | Postfix | Aiosmtpd] = [Postroom(base, args.workers)]
    why = Postfix.available()
    if why:
        print(f"postfix: skipped ({why})")
    else:
        servers.append(Postfix(base))
    servers.append(Aiosmtpd(base))
    if args.only:
        servers = [s for s in servers if s.name in args.only]
    rates: dict[tuple[str, int], float] = {}
    ok = True
    try:
        for srv in servers:
            srv.setup()
            srv.start()
            try:
                # Warm-up: connections, caches, the first file creations.
                srv.run(2, 10)
                total = 10
                for sessions, messages in plans:
                    elapsed = srv.run(sessions, messages)
                    total += messages
                    rates[(srv.name, sessions)] = messages / elapsed
                    print(f"{srv.name:9s} {sessions:2d} client(s): {messages:5d} msgs in {elapsed:6.2f}s "
                          f"= {messages / elapsed:7.1f} msg/s", flush=True)
                apart = max(10, m1 // 4)
                elapsed = dot_apart(srv.port, apart)
                total += apart
                rates[(srv.name, 0)] = apart / elapsed
                print(f"{srv.name:9s}  1 client, final dot apart: {apart:5d} msgs in {elapsed:6.2f}s "
                      f"= {apart / elapsed:7.1f} msg/s", flush=True)
            finally:
                srv.stop()
            got = srv.delivered()
            if got != total:
                print(f"{srv.name}: DELIVERY CHECK FAILED: {got} of {total} messages delivered")
                ok = False
            else:
                print(f"{srv.name}: all {total} messages delivered")
    finally:
        for srv in servers:
            if isinstance(srv, Postfix) and srv.saved:
                srv.stop()
        shutil.rmtree(base, ignore_errors=True)
    print()
    print(f"{'clients':>8} " + " ".join(f"{s.name:>10}" for s in servers) + "   ratios (postroom / other)")
    for sessions in [n for n, _ in plans] + [0]:
        row = " ".join(f"{rates.get((s.name, sessions), 0):10.1f}" for s in servers)
        pr = rates.get(("postroom", sessions))
        ratios = ", ".join(f"{pr / rates[(s.name, sessions)]:.2f}x {s.name}" for s in servers
                           if s.name != "postroom" and pr and rates.get((s.name, sessions)))
        print(f"{sessions if sessions else '1, dot':>8} {row}   {ratios}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
