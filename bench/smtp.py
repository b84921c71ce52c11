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

    def __init__(self, base: Path, workers: int) -> None:
        self.dir = base / "postroom"
        self.workers = workers
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
                       '[mailauth]\ncheck_listeners = []\n')
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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small smoke run")
    ap.add_argument("--messages", type=int, help="messages per run with 20 clients (default 5000)")
    ap.add_argument("--workers", type=int, default=2, help="Postroom worker processes (default 2)")
    ap.add_argument("--only", action="append", choices=("postroom", "postfix", "aiosmtpd"))
    args = ap.parse_args(argv)
    if not shutil.which("smtp-source"):
        print("smtp-source (Debian package postfix) is needed: bash scripts/install-test-deps.sh")
        return 2
    m20 = args.messages or (300 if args.quick else 5000)
    m1 = max(20, m20 // 5)
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
