"""The PostgreSQL queue (PgQueue) on a real throwaway cluster: states, claims, leases, NOTIFY, outages.

Two PgQueue instances on one database stand for two nodes. Times passed to ``due`` are
chosen by the tests, so lease expiry is checked without waiting for it.
"""

from __future__ import annotations

import asyncio
import random
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from postroom.config import PgSettings
from postroom.errors import StoreUnavailable
from postroom.outbound.api import Envelope, Recipient
from postroom.outbound.pgqueue import MIGRATIONS, PgQueue
from postroom.outbound.queue import Outcome, QueueBackend, RcptState, SqliteQueue
from postroom.storage.postgresql import schema

RAW = b"Subject: t\r\n\r\nhello\r\n"


def env(*rcpts: str, sender: str = "a@here.test") -> Envelope:
    return Envelope(sender=sender, recipients=tuple(Recipient(r) for r in rcpts))


async def _node(url: str, lease: float = 300.0) -> PgQueue:
    return await PgQueue(PgSettings(url=url), lease=lease).open()


def test_both_queues_implement_the_backend_protocol(tmp_path: Path) -> None:
    # outbound/backends.py returns either as a QueueBackend, so mypy (tests/test_typing.py) checks
    # both against the Protocol; here, at run time, that every member is there.
    sqlite = SqliteQueue(tmp_path)
    queues: list[QueueBackend] = [sqlite, PgQueue(PgSettings(url="postgresql://u@h/d"))]
    members = [name for name in dir(QueueBackend) if not name.startswith("_")] + ["lease"]
    for q in queues:
        assert all(callable(getattr(q, name)) for name in members if name != "lease")
    assert [q.lease for q in queues] == [0.0, 300.0]
    sqlite.close_sync()


def test_enqueue_states_and_body(pg_database: str) -> None:
    async def main() -> None:
        q = await _node(pg_database)
        try:
            big = b"x" * 3_000_000 + b"\r\n"  # bytea, TOASTed: a large message is one row
            qid = await q.enqueue(Envelope("a@here.test", (Recipient("b@x.test", ("SUCCESS",), "rfc822;B@x.test"),
                                                           Recipient("c@y.test")), ret="HDRS", envid="E1",
                                           smtputf8=True, extra={"k": "v"}), big)
            assert await q.read_body(qid) == big
            m = await q.get(qid)
            assert m is not None and m.size == len(big)
            assert m.envelope.ret == "HDRS" and m.envelope.envid == "E1" and m.envelope.smtputf8
            assert m.envelope.extra == {"k": "v"}
            assert [(r.address, r.domain, r.state) for r in m.recipients] == [
                ("b@x.test", "x.test", RcptState.PENDING), ("c@y.test", "y.test", RcptState.PENDING)]
            assert m.recipients[0].notify == ("SUCCESS",) and m.recipients[0].orcpt == "rfc822;B@x.test"
            due = await q.due(time.time() + 1, 10)
            assert [d.id for d in due] == [qid] and len(due[0].recipients) == 2
            b, c = m.recipients
            assert not await q.record([Outcome(b.id, RcptState.DELIVERED, "2.0.0", "250 ok"),
                                       Outcome(c.id, RcptState.DEFERRED, "4.4.1", "refused",
                                               next_attempt=time.time() + 100)], time.time(), finish=qid)
            assert await q.due(time.time() + 1, 10) == []
            assert (await q.next_due() or 0) > time.time() + 50
            m = await q.get(qid)
            assert m is not None
            assert m.recipients[1].state is RcptState.DEFERRED and m.recipients[1].last_error == "refused"
            assert m.recipients[1].attempts == 1 and m.recipients[0].state is RcptState.DELIVERED
            stats = await q.stats()
            assert (stats.messages, stats.held, stats.recipients) == (1, 0, 1)
            assert not await q.finish_if_done(qid)
            # flush / ETRN make it due again (the recorded outcome released the claim)
            assert await q.reschedule(time.time(), domain="y.test") == 1
            [again] = await q.due(time.time() + 1, 10)
            assert [r.address for r in again.recipients] == ["c@y.test"]
            await q.mark_delay_notified([c.id])
            assert await q.record([Outcome(c.id, RcptState.BOUNCED, "5.1.1", "550")], time.time(), finish=qid)
            assert await q.get(qid) is None and await q.messages() == []
            with pytest.raises(FileNotFoundError):
                await q.read_body(qid)
            assert (await q.stats()).oldest is None
            with pytest.raises(ValueError):
                await q.enqueue(env(), RAW)
        finally:
            await q.close()
    asyncio.run(main())


def test_hold_release_delete_and_subdomains(pg_database: str) -> None:
    async def main() -> None:
        q = await _node(pg_database)
        try:
            a = await q.enqueue(env("b@mail.x.test"), RAW)
            b = await q.enqueue(env("c@x.test", "d@x_test.org"), RAW)
            assert await q.set_held(a, True)
            assert not await q.set_held("nope", True)
            later = time.time() + 1
            assert [m.id for m in await q.due(later, 10)] == [b]
            held = await q.get(a)
            assert held is not None and held.held
            assert (await q.stats()).held == 1
            assert await q.set_held(a, False)
            await q.release([r.id for m in await q.messages() for r in m.recipients])
            assert len(await q.due(later, 10)) == 2
            # RFC 1985 "@x.test": the domain and its subdomains; "_" is no wildcard
            assert await q.reschedule(time.time(), domain="x.test", subdomains=True) == 2
            assert await q.reschedule(time.time(), domain="x.test") == 1
            assert await q.reschedule(time.time(), domain="test", subdomains=True) == 2
            assert await q.reschedule(time.time(), msg_id=b) == 2
            assert await q.delete(a) and not await q.delete(a)
            assert [m.id for m in await q.messages()] == [b]
        finally:
            await q.close()
    asyncio.run(main())


def test_two_nodes_claim_1000_messages_each_exactly_once(pg_database: str) -> None:
    """Two runners claiming concurrently from 1,000 due messages: every recipient is claimed
    once, by one node (FOR NO KEY UPDATE SKIP LOCKED plus the lease)."""
    async def main() -> None:
        one, two = await _node(pg_database), await _node(pg_database)
        try:
            sem = asyncio.Semaphore(10)

            async def add(i: int) -> str:
                rcpts = (f"r{i}@d{i % 7}.test",) if i % 3 else (f"r{i}@d{i % 7}.test", f"s{i}@e.test")
                async with sem:
                    return await (one if i % 2 else two).enqueue(env(*rcpts), RAW)
            ids = await asyncio.gather(*(add(i) for i in range(1000)))
            expected = {r.id for m in await one.messages() for r in m.recipients}
            assert len(ids) == 1000 and len(expected) == 1334
            claims: dict[str, list[int]] = {"one": [], "two": []}

            async def runner(name: str, q: PgQueue) -> None:
                """Like delivery.Runner: jobs run as tasks, the ids in flight are excluded."""
                inflight: set[int] = set()
                jobs: set[asyncio.Task[None]] = set()

                async def job(m: Any) -> None:
                    await asyncio.sleep(random.random() / 50)  # the attempt
                    await q.record([Outcome(r.id, RcptState.DELIVERED, "2.0.0", "250") for r in m.recipients],
                                   time.time(), finish=m.id)
                    inflight.difference_update(r.id for r in m.recipients)
                idle = 0
                while idle < 3 or jobs:
                    got = await q.due(time.time(), 40, tuple(inflight))
                    idle = 0 if got else idle + 1
                    for m in got:
                        claims[name] += [r.id for r in m.recipients]
                        inflight.update(r.id for r in m.recipients)
                        task = asyncio.get_running_loop().create_task(job(m))
                        jobs.add(task)
                        task.add_done_callback(jobs.discard)
                    await asyncio.sleep(0.01)
            await asyncio.gather(runner("one", one), runner("two", two))
            everything = claims["one"] + claims["two"]
            assert len(everything) == len(set(everything)), "a recipient was claimed twice"
            assert set(everything) == expected
            assert claims["one"] and claims["two"]  # both nodes took part
            assert await one.messages() == []
        finally:
            await one.close()
            await two.close()
    asyncio.run(main())


def test_lease_expiry_hands_over_and_renewal_keeps(pg_database: str) -> None:
    async def main() -> None:
        a, b = await _node(pg_database, lease=60), await _node(pg_database, lease=60)
        try:
            qid = await a.enqueue(env("x@far.test", "y@far.test"), RAW)
            t = time.time() + 1
            [claimed] = await a.due(t, 10)
            ids = [r.id for r in claimed.recipients]
            assert await b.due(t + 30, 10) == []  # leased by a
            # a's runner passes what it has in flight, so it does not take them twice either;
            # an own claim it no longer has in flight (a failed job whose release failed) is free
            assert await a.due(t + 30, 10, exclude=ids) == []
            [again] = await a.due(t + 30, 10)
            assert [r.id for r in again.recipients] == ids
            await a.renew(ids, t + 50)  # an attempt running long: leased until t + 110
            await b.renew(ids, t + 500)  # not b's claim: no effect
            assert await b.due(t + 100, 10) == []
            # a is killed: nobody records; after the lease b takes the message over
            [taken] = await b.due(t + 111, 10)
            assert taken.id == qid and [r.id for r in taken.recipients] == ids
            await a.release(ids)  # a late release from the old holder does not free b's claim
            assert await a.due(t + 112, 10) == []
            await b.release(ids)  # b's own release does
            [back] = await a.due(t + 112, 10)
            assert back.id == qid and await b.due(t + 112, 10) == []
            removed = await a.record([Outcome(i, RcptState.DELIVERED, "2.0.0", "250") for i in ids], t + 113,
                                     finish=qid)
            assert removed and await b.messages() == []
        finally:
            await a.close()
            await b.close()
    asyncio.run(main())


def test_finishing_from_two_nodes_removes_the_message(pg_database: str) -> None:
    """Recipients of one message delivered by two nodes at once: the last outcome removes it."""
    async def main() -> None:
        a, b = await _node(pg_database), await _node(pg_database)
        try:
            for _ in range(20):
                qid = await a.enqueue(env("x@one.test", "y@two.test"), RAW)
                m = await a.get(qid)
                assert m is not None
                x, y = m.recipients
                await asyncio.gather(
                    a.record([Outcome(x.id, RcptState.DELIVERED, "2.0.0", "250")], time.time(), finish=qid),
                    b.record([Outcome(y.id, RcptState.BOUNCED, "5.0.0", "550")], time.time(), finish=qid))
                assert await a.get(qid) is None
        finally:
            await a.close()
            await b.close()
    asyncio.run(main())


def test_enqueue_notifies_every_listener(pg_database: str) -> None:
    async def main() -> None:
        a, b = await _node(pg_database), await _node(pg_database)
        woken = asyncio.Event()
        listener = asyncio.get_running_loop().create_task(b.listen(woken.set))
        try:
            async with asyncio.timeout(10):
                await woken.wait()  # woken once on connecting (mail may have come meanwhile)
            woken.clear()
            await a.enqueue(env("x@far.test"), RAW)
            async with asyncio.timeout(5):
                await woken.wait()
            woken.clear()
            assert await a.reschedule(time.time()) == 1  # flush/ETRN/release on another node
            async with asyncio.timeout(5):
                await woken.wait()
        finally:
            listener.cancel()
            await asyncio.gather(listener, return_exceptions=True)
            await a.close()
            await b.close()
    asyncio.run(main())


def test_schema_is_versioned_and_too_new_refused(pg_database: str) -> None:
    async def main() -> None:
        q = await _node(pg_database)
        await q.close()
        await (await _node(pg_database)).close()  # a second start migrates nothing
        import asyncpg
        conn = await asyncpg.connect(pg_database)
        try:
            assert await schema.version(conn, "queue") == len(MIGRATIONS)
            await conn.execute("UPDATE schema_versions SET version = version + 1 WHERE component = 'queue'")
        finally:
            await conn.close()
        with pytest.raises(schema.SchemaTooNew):
            await _node(pg_database)
    asyncio.run(main())


@pytest.fixture(scope="module")
def own_cluster(pg_cluster):  # type: ignore[no-untyped-def]
    """A cluster of this module's own, stopped and started by the outage test without
    disturbing the session's."""
    from pgcluster import PgCluster

    # Not under tmp_path_factory (see pg_cluster in tests/conftest.py: another pytest session
    # resets /tmp/pytest-of-USER to 0700 and the server's user loses its data directory).
    cluster = PgCluster(Path(tempfile.mkdtemp(prefix="postroom-pg-outage-"))).start()
    try:
        yield cluster
    finally:
        cluster.destroy()


def test_database_outage_gives_store_unavailable_then_recovers(own_cluster) -> None:  # type: ignore[no-untyped-def]
    url = own_cluster.create_database("outage")

    async def main() -> None:
        q = await _node(url)
        try:
            await q.enqueue(env("x@far.test"), RAW)
            own_cluster.stop()
            with pytest.raises(StoreUnavailable):
                await q.enqueue(env("y@far.test"), RAW)  # SMTP answers 451 to this
            with pytest.raises(StoreUnavailable):
                await q.due(time.time(), 10)
            own_cluster.start()
            # The pool replaces its broken connections: work goes on, nothing committed was lost.
            for _ in range(50):
                try:
                    await q.enqueue(env("z@far.test"), RAW)
                    break
                except StoreUnavailable:
                    await asyncio.sleep(0.1)
            assert sorted(r.address for m in await q.messages() for r in m.recipients) == [
                "x@far.test", "z@far.test"]
        finally:
            await q.close()
        own_cluster.stop()
        with pytest.raises(StoreUnavailable):
            await _node(url)  # a node cannot start on a database that is not there
        own_cluster.start()
    asyncio.run(main())
