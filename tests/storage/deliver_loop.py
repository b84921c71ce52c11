"""Child process for the durability tests: deliver forever, report each acknowledged one.

Prints ``ACK <n> <uid>`` after ``deliver`` returned for message n, flushing at once, so
the parent knows exactly which deliveries were acknowledged before it kills us.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from postroom.storage.models import DeliveryTarget
from postroom.storage.sqlite.store import SqliteStore


def body(tag: str, n: int) -> bytes:
    # ~10 KB, content derived from n so a partial or mixed-up message is detectable
    line = (b"%s-%d " % (tag.encode(), n)) * 8 + b"\r\n"
    return (b"From: loop@x.test\r\nSubject: %s %d\r\n\r\n" % (tag.encode(), n)) + line * (10240 // len(line))


async def main(data: str, tag: str, concurrency: int) -> None:
    # ``data``: the SQLite store's directory, or the URL of a PostgreSQL store's database.
    store: Any = SqliteStore(data)
    if data.startswith("postgresql://"):
        from postroom.config import PgSettings
        from postroom.storage.postgresql.store import PostgresStore

        store = PostgresStore(PgSettings(url=data))
    await store.open()
    acct = await store.get_account("u@example.test")
    assert acct is not None
    counter = iter(range(10**9))
    sys.stdout.write("READY\n")
    sys.stdout.flush()

    async def worker() -> None:
        while True:
            n = next(counter)
            res = await store.deliver(body(tag, n), [DeliveryTarget(acct.id)])
            sys.stdout.write(f"ACK {n} {res[0].uid}\n")
            sys.stdout.flush()

    await asyncio.gather(*(worker() for _ in range(concurrency)))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
