"""Outbound throughput: messages per second from the queue to Postfix's smtp-sink.

    .venv/bin/python bench/outbound.py [--messages 2000] [--size 10240] [--quick]

Two runs: every message to 1 destination domain, then spread over 20 domains. The
DNS fixture (tests/dnsfixture.py) maps domain i to 127.0.0.(10+i), where one
smtp-sink per address listens on a common port (given to the runner as
``[outbound] port``). Messages are enqueued first (that rate is printed too), then
the runner is started and timed until the queue is empty. Every delivery is a real
SMTP transaction with the queue's fsynced bookkeeping; connections are reused.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "src"))

from dnsfixture import DnsFixture  # noqa: E402
from postroom.outbound.api import Envelope, Recipient  # noqa: E402
from postroom.outbound.delivery import Runner  # noqa: E402
from postroom.outbound.dns import DestinationResolver  # noqa: E402
from postroom.outbound.queue import SqliteQueue  # noqa: E402
from postroom.outbound.settings import OutboundSettings  # noqa: E402


def common_port(ips: list[str]) -> int:
    for _ in range(50):
        s = socket.socket()
        s.bind((ips[0], 0))
        port = s.getsockname()[1]
        s.close()
        try:
            for ip in ips[1:]:
                t = socket.socket()
                t.bind((ip, port))
                t.close()
            return port
        except OSError:
            continue
    raise RuntimeError("no common free port")


def start_sinks(ips: list[str], port: int) -> list[subprocess.Popen[bytes]]:
    procs = []
    for ip in ips:
        args = ["smtp-sink", f"{ip}:{port}", "256"]
        if os.geteuid() == 0:
            args[1:1] = ["-u", "nobody"]
        procs.append(subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    deadline = time.time() + 5
    for ip in ips:
        while True:
            try:
                socket.create_connection((ip, port), 0.5).close()
                break
            except OSError:
                if time.time() > deadline:
                    raise RuntimeError(f"smtp-sink on {ip}:{port} did not start")
                time.sleep(0.05)
    return procs


def message(i: int, size: int) -> bytes:
    head = f"From: bench@here.test\r\nTo: rcpt@dest.test\r\nSubject: bench {i}\r\n\r\n".encode()
    line = b"x" * 76 + b"\r\n"
    return head + line * max(1, (size - len(head)) // len(line))


async def one_run(domains: int, count: int, size: int, concurrency: int, per_domain: int) -> tuple[float, float]:
    ips = [f"127.0.0.{10 + i}" for i in range(domains)]
    port = common_port(ips)
    sinks = start_sinks(ips, port)
    tmp = Path(tempfile.mkdtemp(prefix="postroom-bench-outbound-"))
    try:
        with DnsFixture() as dns_srv:
            for i, ip in enumerate(ips):
                dns_srv.mx(f"d{i}.bench.test", [(10, f"mx.d{i}.bench.test")])
                dns_srv.a(f"mx.d{i}.bench.test", ip)
            settings = OutboundSettings(resolver=(dns_srv.host, dns_srv.port), port=port,
                                        concurrency=concurrency, per_domain_concurrency=per_domain,
                                        helo_name="bench.here.test", poll_interval=0.05,
                                        messages_per_connection=1000)
            queue = await SqliteQueue(tmp / "queue").open()
            t0 = time.perf_counter()
            # enqueue as SMTP would: concurrently (50 sessions), each durable before it returns
            sem = asyncio.Semaphore(50)

            async def put(i: int) -> None:
                async with sem:
                    rcpt = f"user{i}@d{i % domains}.bench.test"
                    await queue.enqueue(Envelope("bench@here.test", (Recipient(rcpt),)), message(i, size))
            await asyncio.gather(*(put(i) for i in range(count)))
            enq = time.perf_counter() - t0
            ctx = SimpleNamespace(config=SimpleNamespace(hostname="bench.here.test"))
            runner = Runner(ctx, queue, settings, resolver=DestinationResolver(settings.resolver, timeout=2))
            t1 = time.perf_counter()
            task = asyncio.get_running_loop().create_task(runner.run())
            while await queue.next_due() is not None or runner.tasks:
                await asyncio.sleep(0.02)
            out = time.perf_counter() - t1
            task.cancel()
            await runner.close()
            left = await queue.messages()
            await queue.close()
            if left:
                raise RuntimeError(f"{len(left)} messages not delivered: {left[0].recipients[0].last_error}")
            return count / enq, count / out
    finally:
        for p in sinks:
            p.terminate()
            p.wait()
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=2000)
    ap.add_argument("--size", type=int, default=10240, help="message size in bytes")
    ap.add_argument("--concurrency", type=int, default=20)
    ap.add_argument("--per-domain", type=int, default=10)
    ap.add_argument("--quick", action="store_true", help="a smoke run: 100 messages")
    args = ap.parse_args()
    if not shutil.which("smtp-sink"):
        print("smtp-sink not found (Debian package postfix; bash scripts/install-test-deps.sh)", file=sys.stderr)
        return 1
    count = 100 if args.quick else args.messages
    print(f"outbound bench: {count} messages of {args.size} bytes, concurrency {args.concurrency}, "
          f"per domain {args.per_domain}, sinks: smtp-sink")
    for domains in (1, 20):
        enq, out = asyncio.run(one_run(domains, count, args.size, args.concurrency, args.per_domain))
        print(f"  {domains:>2} domain(s): enqueue {enq:8.0f} msg/s   queue → smtp-sink {out:8.0f} msg/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
