"""CPU per IMAP FETCH's store calls on the PostgreSQL store, with and without the cache that
trusts LISTEN/NOTIFY (docs/storage.md "PostgreSQL backend").

    python tests/storage/bench_pg_fetch.py postgresql://USER@HOST:PORT/DBNAME [--messages N] [--fetches N]

What a ``UID FETCH n (FLAGS BODY.PEEK[])`` costs the store, as handlers/fetch.py and
imap/selected.py make the calls: the poll before the command (``changes_since`` at the
session's MODSEQ), ``message_index``, and the bodies (``read_messages``), with
``--clients`` sessions at a time on one mailbox. Prints this process's CPU per FETCH
(user + system, from getrusage: the machine may be busy, so wall time says little) and
the round trips, once with the cache and once with it off (every call asks the database,
as before the cache).
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

from postroom.config import PgSettings
from postroom.storage.models import DeliveryTarget
from postroom.storage.postgresql.store import PostgresStore


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


async def run(url: str, messages: int, fetches: int, clients: int) -> None:
    async with PostgresStore(PgSettings(url=url, pool_size=10)) as s:
        acct = await s.get_account("bench@example.test")
        if acct is None:
            await s.add_domain("example.test")
            acct = await s.create_account("bench@example.test", "{PLAIN}x")
        inbox = await s.get_mailbox(acct.id, "INBOX")
        assert inbox is not None
        have = len(await s.message_index(inbox.id))
        for i in range(have, messages):
            await s.deliver(b"Subject: m%d\r\n\r\n" % i + b"x" * 2000 + b"\r\n", [DeliveryTarget(acct.id)])
        rounds = 0
        real_read = s.read

        async def counting_read(fn, *args):  # type: ignore[no-untyped-def]
            nonlocal rounds
            rounds += 1
            return await real_read(fn, *args)
        s.read = counting_read  # type: ignore[method-assign]
        for label, cached in (("cache on ", True), ("cache off", False)):
            if not cached:
                s._listening = lambda: False  # type: ignore[method-assign]
            idx = await s.message_index(inbox.id)
            uids = list(idx.uids)
            modseq = idx.mailbox.highestmodseq

            async def session(k: int, uids: list[int] = uids, modseq: int = modseq) -> None:
                for i in range(k, fetches, clients):
                    await s.changes_since(inbox.id, modseq)
                    ix = await s.message_index(inbox.id)
                    msgs = ix.messages([uids[i % len(uids)]])
                    await s.read_messages(msgs)
            rounds = 0
            c0, t0 = cpu(), time.monotonic()
            await asyncio.gather(*(session(k) for k in range(clients)))
            c1, t1 = cpu(), time.monotonic()
            print(f"{label}: {fetches / (t1 - t0):7.0f} FETCH/s, {(c1 - c0) / fetches * 1000:.3f} ms CPU per FETCH, "
                  f"{rounds / fetches:.2f} store reads per FETCH")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("url")
    ap.add_argument("--messages", type=int, default=2000)
    ap.add_argument("--fetches", type=int, default=4000)
    ap.add_argument("--clients", type=int, default=8)
    a = ap.parse_args()
    asyncio.run(run(a.url, a.messages, a.fetches, a.clients))


if __name__ == "__main__":
    main()
