"""The SQLite queue: per-recipient state, hold/release, reschedule, durability."""

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from postroom.outbound.api import Envelope, Recipient
from postroom.outbound.queue import Outcome, RcptState, SqliteQueue

RAW = b"Subject: t\r\n\r\nhello\r\n"


def env(*rcpts, sender="a@here.test"):
    return Envelope(sender=sender, recipients=tuple(Recipient(r) for r in rcpts))


def run(coro):
    return asyncio.run(coro)


async def _open(path, clock=time.time):
    return await SqliteQueue(path, clock=clock).open()


def test_enqueue_and_states(tmp_path):
    async def main():
        q = await _open(tmp_path)
        qid = await q.enqueue(Envelope("a@here.test", (Recipient("b@x.test", ("SUCCESS",), "rfc822;B@x.test"),
                                                       Recipient("c@y.test")), ret="HDRS", envid="E1"), RAW)
        assert await q.read_body(qid) == RAW
        m = await q.get(qid)
        assert m.envelope.ret == "HDRS" and m.envelope.envid == "E1"
        assert [(r.address, r.domain, r.state) for r in m.recipients] == [
            ("b@x.test", "x.test", RcptState.PENDING), ("c@y.test", "y.test", RcptState.PENDING)]
        assert m.recipients[0].notify == ("SUCCESS",) and m.recipients[0].orcpt == "rfc822;B@x.test"
        due = await q.due(time.time() + 1, 10)
        assert [d.id for d in due] == [qid]
        b, c = m.recipients
        await q.record([Outcome(b.id, RcptState.DELIVERED, "2.0.0", "250 ok"),
                        Outcome(c.id, RcptState.DEFERRED, "4.4.1", "refused", next_attempt=time.time() + 100)],
                       time.time())
        assert await q.due(time.time() + 1, 10) == []
        assert await q.next_due() > time.time() + 50
        m = await q.get(qid)
        assert m.recipients[1].state is RcptState.DEFERRED and m.recipients[1].last_error == "refused"
        assert m.recipients[1].attempts == 1
        assert not await q.finish_if_done(qid)
        # flush / ETRN make it due again
        assert await q.reschedule(time.time(), domain="y.test") == 1
        assert [r.address for r in (await q.due(time.time() + 1, 10))[0].recipients] == ["c@y.test"]
        await q.record([Outcome(c.id, RcptState.BOUNCED, "5.1.1", "550")], time.time())
        assert await q.finish_if_done(qid)
        assert await q.get(qid) is None and not (tmp_path / "msgs" / qid).exists()
        await q.close()
    run(main())


def test_hold_release_delete_and_subdomains(tmp_path):
    async def main():
        q = await _open(tmp_path)
        a = await q.enqueue(env("b@mail.x.test"), RAW)
        b = await q.enqueue(env("c@x.test"), RAW)
        assert await q.set_held(a, True)
        assert [m.id for m in await q.due(time.time() + 1, 10)] == [b]
        assert (await q.get(a)).held
        assert await q.set_held(a, False)
        assert len(await q.due(time.time() + 1, 10)) == 2
        # RFC 1985 "@x.test": the domain and its subdomains
        assert await q.reschedule(time.time(), domain="x.test", subdomains=True) == 2
        assert await q.reschedule(time.time(), domain="x.test") == 1
        assert await q.delete(a) and not await q.delete(a)
        assert [m.id for m in await q.messages()] == [b]
        await q.close()
    run(main())


def test_survives_reopen_and_sweeps_orphans(tmp_path):
    async def main():
        q = await _open(tmp_path)
        qid = await q.enqueue(env("b@x.test"), RAW)
        await q.close()
        (tmp_path / "msgs" / "ORPHAN").write_bytes(b"x")
        os.utime(tmp_path / "msgs" / "ORPHAN", (0, 0))
        q = await _open(tmp_path)
        assert [m.id for m in await q.messages()] == [qid]
        assert await q.sweep_orphans() == 1
        assert await q.read_body(qid) == RAW
        await q.close()
    run(main())


CHILD = textwrap.dedent("""
    import asyncio, sys
    from postroom.outbound.api import Envelope, Recipient
    from postroom.outbound.queue import SqliteQueue

    async def main():
        q = await SqliteQueue(sys.argv[1]).open()
        i = 0
        while True:
            qid = await q.enqueue(Envelope("a@here.test", (Recipient(f"r{i}@x.test"),)), b"msg %d\\r\\n" % i)
            print(qid, i, flush=True)  # printed only after enqueue returned: durable
            i += 1
    asyncio.run(main())
""")


def test_sigkill_while_enqueueing_loses_nothing_acknowledged(tmp_path):
    """Every id the child reported (i.e. enqueue returned) is intact after SIGKILL."""
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    acked = []
    deadline = time.time() + 30
    while len(acked) < 60 and time.time() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        acked.append(line.split())
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    acked += [line.split() for line in proc.stdout.read().splitlines() if line.strip()]
    assert len(acked) >= 20, "child enqueued too little"

    async def check():
        q = await _open(tmp_path)
        msgs = {m.id: m for m in await q.messages()}
        for qid, i in acked:
            assert qid in msgs, f"acknowledged {qid} lost"
            assert msgs[qid].recipients[0].address == f"r{i}@x.test"
            assert await q.read_body(qid) == b"msg %d\r\n" % int(i)
        # every committed row has its file (the file is fsynced before the commit)
        for m in msgs.values():
            assert (tmp_path / "msgs" / m.id).exists()
        await q.close()
    run(check())
