#!/usr/bin/env python3
"""Durable deliveries per second: the store's group commit vs one fsync per message.

For 1, 8 and 64 concurrent deliverers of 10 KB messages, runs

* ``store``    — ``SqliteStore.deliver`` (segment append + one fsync + one WAL commit per batch);
* ``baseline`` — the plain way: each message written to its own file and fsynced, from
  the same number of concurrent asyncio tasks using threads for the blocking calls (so
  the file system may batch their journal commits; a Maildir would also fsync the
  directory, which the baseline leaves out to be the harder peer),

on the same disk, and prints both rates and their ratio. Target: at 64 deliverers the
store does at least 5x the baseline.

    python bench/store.py            # full run (about a minute)
    python bench/store.py --quick    # smoke run for CI
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from postroom.storage.models import DeliveryTarget  # noqa: E402
from postroom.storage.sqlite.store import SqliteStore  # noqa: E402

SIZE = 10 * 1024


def message(n: int) -> bytes:
    head = b"From: bench@x.test\r\nTo: u@example.test\r\nSubject: bench %d\r\nMessage-ID: <%d@bench>\r\n\r\n" % (n, n)
    line = b"The quick brown fox jumps over the lazy dog, again and again and again.\r\n"
    return head + line * ((SIZE - len(head)) // len(line))


async def bench_store(root: Path, concurrency: int, seconds: float) -> tuple[float, int]:
    store = SqliteStore(root / f"store-{concurrency}")
    await store.open()
    try:
        await store.add_domain("example.test")
        acct = await store.create_account("u@example.test", "{PLAIN}x")
        target = [DeliveryTarget(acct.id)]
        msgs = [message(i) for i in range(256)]
        count = 0
        deadline = time.perf_counter() + seconds

        async def worker(k: int) -> None:
            nonlocal count
            i = k
            while time.perf_counter() < deadline:
                await store.deliver(msgs[i % len(msgs)], target)
                count += 1
                i += concurrency

        start = time.perf_counter()
        batches0 = store.engine.batches
        await asyncio.gather(*(worker(k) for k in range(concurrency)))
        elapsed = time.perf_counter() - start
        inbox = await store.get_mailbox(acct.id, "INBOX")
        status = await store.mailbox_status(inbox.id)
        assert status.messages == count, (status.messages, count)
        return count / elapsed, store.engine.batches - batches0
    finally:
        await store.close()


def _write_fsync(directory: Path, name: str, data: bytes) -> None:
    fd = os.open(directory / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


async def bench_baseline(root: Path, concurrency: int, seconds: float) -> float:
    d = root / f"baseline-{concurrency}"
    d.mkdir(parents=True)
    msgs = [message(i) for i in range(256)]
    count = 0
    deadline = time.perf_counter() + seconds
    loop = asyncio.get_running_loop()
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(concurrency)

    async def worker(k: int) -> None:
        nonlocal count
        i = k
        while time.perf_counter() < deadline:
            await loop.run_in_executor(pool, _write_fsync, d, f"{k}-{i}", msgs[i % len(msgs)])
            count += 1
            i += concurrency

    start = time.perf_counter()
    await asyncio.gather(*(worker(k) for k in range(concurrency)))
    elapsed = time.perf_counter() - start
    pool.shutdown()
    assert len(os.listdir(d)) == count
    return count / elapsed


async def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="short smoke run")
    ap.add_argument("--seconds", type=float, default=None, help="duration of each measurement")
    ap.add_argument("--dir", default=None, help="where to write (default: a temp dir on the project's disk)")
    args = ap.parse_args()
    seconds = args.seconds or (0.5 if args.quick else 5.0)
    base = Path(args.dir) if args.dir else Path(__file__).resolve().parent / "out"
    base.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="store-bench-", dir=base))
    print(f"durable deliveries of {SIZE // 1024} KB messages, {seconds:.1f}s per point, in {root}")
    print(f"{'deliverers':>10} {'store msg/s':>12} {'commits':>8} {'baseline msg/s':>15} {'ratio':>7}")
    ratios = {}
    try:
        for c in (1, 8, 64):
            rate, batches = await bench_store(root, c, seconds)
            base_rate = await bench_baseline(root, c, seconds)
            ratios[c] = rate / base_rate
            print(f"{c:>10} {rate:>12.0f} {batches:>8} {base_rate:>15.0f} {ratios[c]:>6.1f}x", flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    target = 5.0
    verdict = "meets" if ratios[64] >= target else "MISSES"
    print(f"at 64 deliverers the store is {ratios[64]:.1f}x the baseline ({verdict} the {target:.0f}x target)")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
