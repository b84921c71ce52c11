"""Durability and multi-process safety of the SQLite store.

A child delivering in a loop is killed with SIGKILL at random moments; every
delivery it reported as returned must be readable afterwards, whole, and nothing
partial may be visible. Several processes delivering at once must not lose or mix
up anything, and UIDs stay unique and increasing.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from postroom.storage.sqlite.store import SqliteStore

sys.path.insert(0, str(Path(__file__).parent))
from deliver_loop import body  # noqa: E402

HERE = Path(__file__).parent


async def _setup(data: Path) -> None:
    async with SqliteStore(data) as s:
        await s.add_domain("example.test")
        await s.create_account("u@example.test", "{PLAIN}x")


async def _contents(data: Path) -> dict[tuple[str, int], int]:
    """(tag, n) → uid for every message in INBOX, checking each is whole."""
    out = {}
    async with SqliteStore(data) as s:
        acct = await s.get_account("u@example.test")
        inbox = await s.get_mailbox(acct.id, "INBOX")
        for m in await s.list_messages(inbox.id):
            raw = await s.read_message(m)
            mt = re.search(rb"Subject: (\w+) (\d+)\r\n", raw)
            assert mt, raw[:200]
            tag, n = mt.group(1).decode(), int(mt.group(2))
            assert raw == body(tag, n), f"message {tag} {n} is not whole"
            assert (await s.read_structure(m)) is not None
            assert (tag, n) not in out, "delivered twice"
            out[(tag, n)] = m.uid
    return out


def _spawn(data: Path, tag: str, concurrency: int) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, str(HERE / "deliver_loop.py"), str(data), tag, str(concurrency)],
                            stdout=subprocess.PIPE, text=True)


def _acks(out: str) -> dict[int, int]:
    acks = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == "ACK":  # a torn last line is not an ack
            acks[int(parts[1])] = int(parts[2])
    return acks


def test_sigkill_loses_nothing_acknowledged(tmp_path: Path) -> None:
    data = tmp_path / "data"
    asyncio.run(_setup(data))
    rng = random.Random(os.getpid())
    acked: dict[tuple[str, int], int] = {}
    for round_ in range(6):
        tag = f"r{round_}"
        proc = _spawn(data, tag, concurrency=rng.choice([1, 8, 32]))
        assert proc.stdout is not None and proc.stdout.readline() == "READY\n"
        time.sleep(0.3 + rng.random() * 0.8)
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate(timeout=30)
        acks = _acks(out)
        acked.update({(tag, n): uid for n, uid in acks.items()})
    assert len(acked) > 20, "the children acknowledged almost nothing before the kills"
    present = asyncio.run(_contents(data))
    missing = set(acked) - set(present)
    assert not missing, f"{len(missing)} acknowledged deliveries lost"
    for key, uid in acked.items():
        assert present[key] == uid
    uids = sorted(present.values())
    assert len(set(uids)) == len(uids)


def test_concurrent_delivery_from_several_processes(tmp_path: Path) -> None:
    data = tmp_path / "data"
    asyncio.run(_setup(data))
    procs = [_spawn(data, f"p{i}", concurrency=8) for i in range(4)]
    for p in procs:
        assert p.stdout is not None and p.stdout.readline() == "READY\n"
    time.sleep(2.0)
    for p in procs:
        p.send_signal(signal.SIGTERM)
    acked = {}
    for i, p in enumerate(procs):
        out, _ = p.communicate(timeout=30)
        acked.update({(f"p{i}", n): uid for n, uid in _acks(out).items()})
    assert len(acked) > 50
    present = asyncio.run(_contents(data))
    assert set(acked) <= set(present)
    for key, uid in acked.items():
        assert present[key] == uid
    assert len(set(present.values())) == len(present)


def test_watch_sees_other_process(tmp_path: Path) -> None:
    data = tmp_path / "data"
    asyncio.run(_setup(data))

    async def t() -> None:
        async with SqliteStore(data) as s:
            acct = await s.get_account("u@example.test")
            inbox = await s.get_mailbox(acct.id, "INBOX")
            w = s.watch(inbox.id)
            await w.wait(1.0)  # a first sighting may wake once
            proc = _spawn(data, "w", concurrency=1)
            try:
                assert proc.stdout is not None
                assert await asyncio.to_thread(proc.stdout.readline) == "READY\n"
                assert await w.wait(10.0) is True
            finally:
                proc.kill()
                proc.communicate()
            ch = await s.changes_since(inbox.id, 0)
            assert ch.changed
            w.close()

    asyncio.run(t())


def _open_fresh(path: str) -> str:
    from postroom.storage.sqlite.engine import connect

    try:
        conn = connect(Path(path))
        conn.execute("CREATE TABLE IF NOT EXISTS t(x)")
        conn.close()
        return "ok"
    except Exception as exc:  # reported to the parent
        return repr(exc)


def test_workers_opening_a_new_database_at_once(tmp_path: Path) -> None:
    """Regression: the switch to WAL failed with "database is locked" when two workers
    opened a new queue database at the same moment."""
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(4) as pool:
        for i in range(15):
            path = str(tmp_path / f"fresh{i}.db")
            assert pool.map(_open_fresh, [path] * 4) == ["ok"] * 4
