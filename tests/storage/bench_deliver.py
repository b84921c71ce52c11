"""A deliver loop on each backend: messages per second and this process's CPU per delivery.

    python tests/storage/bench_deliver.py [--pg URL] [-n 2000] [-c 16] [--accounts 20]

Without --pg only the SQLite store is measured. Each delivery is a ~10 KB message to one
of ``--accounts`` INBOXes, ``-c`` deliveries in flight at once (what concurrent SMTP
sessions do). Wall-clock figures are only meaningful on a quiet machine; the CPU per
delivery (user + system of this process, not the database server's) is steadier.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from deliver_loop import body

from postroom.config import PgSettings
from postroom.storage.models import DeliveryTarget


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


async def run(store: Any, n: int, concurrency: int, accounts: int) -> tuple[float, float]:
    async with store:
        await store.add_domain("example.test")
        ids = [(await store.create_account(f"u{i}@example.test", "{PLAIN}x")).id for i in range(accounts)]
        counter = iter(range(n))

        async def worker() -> None:
            for i in counter:
                await store.deliver(body("b", i), [DeliveryTarget(ids[i % accounts])], crlf=True)

        c0, t0 = _cpu(), time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall, cpu = time.perf_counter() - t0, _cpu() - c0
    return n / wall, cpu / n * 1e6


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pg", help="URL of an empty PostgreSQL database")
    ap.add_argument("-n", type=int, default=2000)
    ap.add_argument("-c", type=int, default=16)
    ap.add_argument("--accounts", type=int, default=20)
    args = ap.parse_args()
    from postroom.storage.sqlite.store import SqliteStore

    with tempfile.TemporaryDirectory() as d:
        rate, cpu = asyncio.run(run(SqliteStore(Path(d) / "data"), args.n, args.c, args.accounts))
    print(f"sqlite:     {rate:8.0f} deliveries/s  {cpu:6.0f} µs CPU each (this process)")
    if args.pg:
        from postroom.storage.postgresql.store import PostgresStore

        store = PostgresStore(PgSettings(url=args.pg, pool_size=max(2, args.c)))
        rate_pg, cpu_pg = asyncio.run(run(store, args.n, args.c, args.accounts))
        print(f"postgresql: {rate_pg:8.0f} deliveries/s  {cpu_pg:6.0f} µs CPU each (this process)  "
              f"{rate_pg / rate:.2f}× SQLite")
    return 0


if __name__ == "__main__":
    sys.exit(main())
