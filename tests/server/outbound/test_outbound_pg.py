"""The outbound queue on PostgreSQL, shared by several nodes (issue #17).

Runner level: real runners on PgQueue against scripted SMTP peers on loopback (delivery,
bounce notices, a lease renewed through a slow attempt, claims handed back on shutdown,
a database outage logged once). CLI level: ``postroom queue …`` on the shared queue.
Server level: ``postroom serve`` nodes with ``[storage] backend = "postgresql"`` delivering
to another Postroom as the remote MX, two nodes draining one queue exactly once, and a
node killed in the middle of an attempt whose message another node takes over when the
lease runs out.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import signal
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
from dnsfixture import DnsFixture
from outbound_helpers import (
    FakeCtx,
    FakeStore,
    ScriptedSmtp,
    free_port,
    rcpt_report,
    run_until,
)
from test_outbound_two_hosts import B_IP, Host, submit, wait_for

from postroom.config import from_dict
from postroom.errors import StoreUnavailable
from postroom.outbound import cli as queue_cli
from postroom.outbound.api import Envelope, Recipient
from postroom.outbound.backends import make_queue
from postroom.outbound.delivery import Runner
from postroom.outbound.dns import DestinationResolver
from postroom.outbound.pgqueue import PgQueue
from postroom.outbound.settings import parse

RAW = b"From: a@here.test\r\nSubject: pg\r\n\r\nbody\r\n"
MX_IP = "127.0.0.2"


@pytest.fixture(scope="module")
def dns_srv():  # type: ignore[no-untyped-def]
    with DnsFixture() as srv:
        srv.mx("there.test", [(10, "mx.there.test")])
        srv.a("mx.there.test", MX_IP)
        yield srv


@pytest.fixture
def port() -> int:
    return free_port()


def pg_config(tmp: Path, url: str, outbound: dict[str, Any]):  # type: ignore[no-untyped-def]
    return from_dict({"hostname": "mx.here.test", "domains": ["here.test"], "outbound": outbound,
                      "storage": {"backend": "postgresql", "url": url, "path": "data"}}, tmp / "postroom.toml")


def pg_runner(tmp: Path, url: str, dns_srv: DnsFixture, port: int, **outbound: Any) -> tuple[Runner, PgQueue, FakeCtx]:
    out = {"resolver": dns_srv.address, "port": port, "retry_schedule": ["0.2s"], "connect_timeout": "2s",
           "command_timeout": "10s", "poll_interval": "0.1s", **outbound}
    cfg = pg_config(tmp, url, out)
    problems: list[str] = []
    settings = parse(cfg, problems)
    assert not problems, problems
    queue = make_queue(cfg, settings)
    assert isinstance(queue, PgQueue) and queue.lease == settings.lease
    ctx = FakeCtx(cfg, FakeStore({"a@here.test": 1}))
    return Runner(ctx, queue, settings, resolver=DestinationResolver(settings.resolver, timeout=2)), queue, ctx


def env(*rcpts: str, sender: str = "a@here.test") -> Envelope:
    return Envelope(sender=sender, recipients=tuple(Recipient(r) for r in rcpts))


async def empty(queue: PgQueue) -> bool:
    return not await queue.messages()


# -- runner level --------------------------------------------------------------------------------------

def test_runner_delivers_and_bounces_from_the_shared_queue(tmp_path, pg_database, dns_srv, port) -> None:  # type: ignore[no-untyped-def]
    async def main() -> None:
        runner, queue, ctx = pg_runner(tmp_path, pg_database, dns_srv, port)
        await queue.open()
        refuse = (lambda line: "550 5.1.1 no such user" if line.startswith("RCPT TO:<nobody@") else None)
        with ScriptedSmtp(MX_IP, port, reply=refuse) as mx:
            ok = await queue.enqueue(env("b@there.test"), RAW)
            await queue.enqueue(Envelope("a@here.test", (Recipient("nobody@there.test", ("FAILURE",)),),
                                         envid="E7"), RAW)
            await run_until(runner, lambda: empty(queue))
            await runner.close()
        assert mx.messages == [RAW]
        # the bounce went to the local sender (RFC 3464), and nothing is left in the queue
        [(notice, [account])] = ctx.store.delivered
        assert account == 1 and rcpt_report(notice)["Action"] == "failed"
        assert b"E7" in notice and ok.encode() not in notice
        await queue.close()
    asyncio.run(main())


def test_lease_is_renewed_while_a_slow_attempt_runs(tmp_path, pg_database, dns_srv, port) -> None:  # type: ignore[no-untyped-def]
    """Lease 2 s, the peer takes 3.5 s to accept the data: the runner renews its claim, so a
    second node polling all along never gets the recipient, and the mail is sent once."""
    async def main() -> None:
        runner, queue, _ = pg_runner(tmp_path, pg_database, dns_srv, port, lease="2s")
        other = await PgQueue(runner.ctx.config.pg, lease=2).open()
        await queue.open()
        slow = (lambda line: time.sleep(3.5) if line == "<END>" else None)
        with ScriptedSmtp(MX_IP, port, reply=slow) as mx:
            await queue.enqueue(env("b@there.test"), RAW)
            task = asyncio.get_running_loop().create_task(runner.run())
            while not runner.inflight:  # the runner's claim first, then the other node polls
                await asyncio.sleep(0.01)
            stolen = []
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and not await empty(queue):
                stolen += await other.due(time.time(), 10)
                await asyncio.sleep(0.2)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await runner.close()
        assert stolen == [] and await empty(queue)
        assert mx.messages == [RAW]
        await other.close()
        await queue.close()
    asyncio.run(main())


def test_claims_are_handed_back_when_the_runner_stops(tmp_path, pg_database, dns_srv, port) -> None:  # type: ignore[no-untyped-def]
    async def main() -> None:
        runner, queue, _ = pg_runner(tmp_path, pg_database, dns_srv, port)  # lease: the default 5 minutes
        other = await PgQueue(runner.ctx.config.pg).open()
        await queue.open()
        slow = (lambda line: time.sleep(2) if line == "<END>" else None)
        with ScriptedSmtp(MX_IP, port, reply=slow):
            qid = await queue.enqueue(env("b@there.test"), RAW)
            await runner.schedule_once()
            assert runner.inflight and await other.due(time.time(), 10) == []
            await asyncio.sleep(0.3)  # in the middle of the attempt
            await runner.close()  # shutdown: the job is cancelled and gives its claim back
            [taken] = await other.due(time.time(), 10)  # at once, not after five minutes
            assert taken.id == qid
        await other.close()
        await queue.close()
    asyncio.run(main())


@pytest.fixture(scope="module")
def own_cluster(pg_cluster):  # type: ignore[no-untyped-def]
    """A cluster this module may stop and start without disturbing the session's."""
    from pgcluster import PgCluster

    # Not under tmp_path_factory (see pg_cluster in tests/conftest.py: another pytest session
    # resets /tmp/pytest-of-USER to 0700 and the server's user loses its data directory).
    cluster = PgCluster(Path(tempfile.mkdtemp(prefix="postroom-pg-outbound-outage-"))).start()
    try:
        yield cluster
    finally:
        cluster.destroy()


def test_runner_rides_out_a_database_outage(tmp_path, own_cluster, dns_srv, port, postroom_log) -> None:  # type: ignore[no-untyped-def]
    url = own_cluster.create_database("runner_outage")

    async def main() -> None:
        runner, queue, _ = pg_runner(tmp_path, url, dns_srv, port)
        await queue.open()
        with ScriptedSmtp(MX_IP, port) as mx:
            task = asyncio.get_running_loop().create_task(runner.run())
            own_cluster.stop()
            await asyncio.sleep(1.0)  # ten polls with the database gone
            assert not task.done()  # the runner is alive
            own_cluster.start()
            for _ in range(100):
                try:
                    await queue.enqueue(env("b@there.test"), RAW)
                    break
                except StoreUnavailable:
                    await asyncio.sleep(0.1)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and not mx.messages:
                await asyncio.sleep(0.1)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await runner.close()
        assert mx.messages == [RAW]
        await queue.close()
    asyncio.run(main())
    down = [line for line in postroom_log if "retrying every" in line]
    assert len(down) == 1, postroom_log  # one line for the whole outage, no traceback per poll
    assert "the queue database is unavailable" in down[0]
    assert any("queue database is back" in line for line in postroom_log)
    assert "queue scan failed" not in postroom_log


# -- postroom queue … ---------------------------------------------------------------------------------

def test_queue_commands_on_the_shared_queue(tmp_path, pg_database, capsys) -> None:  # type: ignore[no-untyped-def]
    cfg = pg_config(tmp_path, pg_database, {})

    def queue(*argv: str) -> str:
        args = argparse.Namespace(queue_cmd=argv[0], id=argv[1] if len(argv) > 1 else None, body="--body" in argv)
        assert queue_cli.run(cfg, args) == 0
        return str(capsys.readouterr().out)

    async def add() -> tuple[str, str]:
        q = await PgQueue(cfg.pg).open()  # type: ignore[arg-type]
        try:
            return (await q.enqueue(Envelope("a@here.test", (Recipient("b@there.test", ("FAILURE",)),),
                                             envid="E1"), RAW),
                    await q.enqueue(env("c@else.test"), RAW))
        finally:
            await q.close()

    async def state(qid: str) -> Any:
        q = await PgQueue(cfg.pg).open()  # type: ignore[arg-type]
        try:
            return await q.get(qid)
        finally:
            await q.close()

    assert "Mail queue is empty" in queue("list")
    a, b = asyncio.run(add())
    listing = queue("list")
    assert f"{a}  " in listing and "<b@there.test> pending" in listing and "2 request(s)" in listing
    shown = queue("show", a, "--body")
    assert "ENVID=E1" in shown and "NOTIFY=FAILURE" in shown and "Subject: pg" in shown
    assert f"{a} held" in queue("hold", a)
    assert f"{a}!" in queue("list") and asyncio.run(state(a)).held
    assert f"{a} released" in queue("release", a)
    assert not asyncio.run(state(a)).held
    assert "1 recipient(s) of" in queue("retry", b)
    assert "2 recipient(s) scheduled" in queue("flush")
    assert f"{b} deleted" in queue("delete", b)
    assert asyncio.run(state(b)) is None
    from postroom.errors import NotFound
    with pytest.raises(NotFound):
        queue("show", b)
    # postroom sendmail puts remote mail in the shared queue too
    import io

    from postroom.smtp import sendmail
    err = io.StringIO()
    assert sendmail.run(cfg, ["-f", "a@here.test", "far@remote.test"], io.BytesIO(b"Subject: sm\n\nhi\n"),
                        err) == 0, err.getvalue()
    assert "<far@remote.test> pending" in queue("list")


# -- postroom serve nodes on PostgreSQL ---------------------------------------------------------------

A1_IP, A2_IP = "127.0.0.2", "127.0.0.5"
SLOW_IP = "127.0.0.4"


@pytest.fixture
def nodes(tmp_path, pg_database):  # type: ignore[no-untyped-def]
    """make(name, ip, **outbound): a node of a.test on the shared database; make_b(): b.test on SQLite."""
    port = free_port((A1_IP, B_IP, SLOW_IP, A2_IP))
    with DnsFixture() as dns_srv:
        dns_srv.mx("b.test", [(10, "mx.b.test")])
        dns_srv.a("mx.b.test", B_IP)
        dns_srv.mx("slow.test", [(10, "mx.slow.test")])
        dns_srv.a("mx.slow.test", SLOW_IP)
        hosts: list[Host] = []
        storage = ('backend = "postgresql"', f'url = "{pg_database}"')

        def make(name: str, ip: str, **outbound: str) -> Host:
            h = Host(tmp_path, name, ip, port, dns_srv.address, outbound, storage=storage, domain="a.test")
            hosts.append(h)
            return h

        def make_b() -> Host:
            h = Host(tmp_path, "b", B_IP, port, dns_srv.address, {})
            hosts.append(h)
            return h
        try:
            yield make, make_b, port
        finally:
            for h in hosts:
                h.stop()


def at_least(msgs: list[bytes], n: int) -> list[bytes] | None:
    return msgs if len(msgs) >= n else None


def _subjects(msgs: list[bytes]) -> list[str]:
    return sorted(m.split(b"Subject: ")[1].split(b"\r\n")[0].decode() for m in msgs)


def test_nodes_share_the_queue_and_deliver_each_message_once(nodes) -> None:  # type: ignore[no-untyped-def]
    make, make_b, _ = nodes
    a1, a2 = make("a1", A1_IP).start(), make("a2", A2_IP).start()
    b = make_b()  # down at first: the mail waits in the shared queue
    for i in range(10):
        submit(a1 if i % 2 else a2, "user@b.test", f"m{i}")
    wait_for(lambda: a1.queue_text().count("<user@b.test>") == 10, what="ten queued messages")
    assert a2.queue_text().count("<user@b.test>") == 10  # every node sees the one queue
    b.start()
    got = wait_for(lambda: at_least(b.inbox(), 10), timeout=30, what="ten deliveries")
    time.sleep(1.5)  # a duplicate would arrive now
    assert _subjects(b.inbox()) == sorted(f"m{i}" for i in range(10)) and len(got) == 10
    wait_for(lambda: "empty" in a1.queue_text(), what="the shared queue to empty")
    for node in (a1, a2):
        assert "outbound queue runner started (pid=" in node.log.read_text()
        assert "shared queue, lease 300s" in node.log.read_text()
    delivered = [re.findall(r"\S+: delivered to user@b\.test", n.log.read_text()) for n in (a1, a2)]
    assert len(delivered[0]) + len(delivered[1]) == 10


def test_killed_node_leaves_its_message_to_another_after_the_lease(nodes) -> None:  # type: ignore[no-untyped-def]
    """Node a1 is in the middle of an attempt (the MX has not acknowledged the data) when it
    is SIGKILLed; a2 takes the message over once the 3 s lease has run out."""
    make, _, port = nodes
    sessions: list[int] = []

    def slow_first(line: str) -> str | None:
        if line == "<END>" and len(sessions) == 0:
            sessions.append(1)
            # No answer while a1 lives: it is killed meanwhile. (This blocks the scripted
            # server, so a2's attempt waits for its greeting until the sleep ends.)
            time.sleep(8)
        return None
    with ScriptedSmtp(SLOW_IP, port, reply=slow_first) as mx:
        a1 = make("a1", A1_IP, lease="3s", command_timeout="60s", data_timeout="60s").start()
        submit(a1, "user@slow.test", "held-up")
        wait_for(lambda: sessions, what="a1's attempt to reach the end of DATA")
        a1.stop(signal.SIGKILL)
        a2 = make("a2", A2_IP, lease="3s").start()
        wait_for(lambda: "empty" in a2.queue_text(), timeout=40, what="a2 to deliver a1's message")
        assert "delivered to user@slow.test" in a2.log.read_text()
        # the data a1 sent was never acknowledged, so a2 sent it again: at least once, never lost
        assert len(mx.messages) == 2 and all(b"Subject: held-up" in m for m in mx.messages)


def test_node_answers_4xx_while_the_database_is_down_then_carries_on(tmp_path, own_cluster) -> None:  # type: ignore[no-untyped-def]
    """PostgreSQL stopped under a running node: SMTP gets a temporary error (the enqueue
    raises StoreUnavailable), the node stays up, and once the database is back the mail
    goes through (and what was queued before is delivered)."""
    import smtplib

    url = own_cluster.create_database("node_outage")
    port = free_port((A1_IP, B_IP, SLOW_IP, A2_IP))
    with DnsFixture() as dns_srv:
        dns_srv.mx("b.test", [(10, "mx.b.test")])
        dns_srv.a("mx.b.test", B_IP)
        a = Host(tmp_path, "a", A1_IP, port, dns_srv.address, {}, storage=('backend = "postgresql"', f'url = "{url}"'))
        b = Host(tmp_path, "b", B_IP, port, dns_srv.address, {})
        try:
            a.start()
            submit(a, "user@b.test", "before")  # queued: b is not running yet
            own_cluster.stop()
            with pytest.raises((smtplib.SMTPDataError, smtplib.SMTPRecipientsRefused,
                                smtplib.SMTPSenderRefused)) as refused:
                submit(a, "user@b.test", "during")
            exc = refused.value
            codes = ([c for c, _ in exc.recipients.values()] if isinstance(exc, smtplib.SMTPRecipientsRefused)
                     else [exc.smtp_code])
            assert all(400 <= c < 500 for c in codes), codes
            own_cluster.start()
            assert a.proc is not None and a.proc.poll() is None  # the node did not crash
            deadline = time.time() + 20
            while True:
                try:
                    submit(a, "user@b.test", "after")
                    break
                except smtplib.SMTPException:
                    assert time.time() < deadline, "the node did not recover"
                    time.sleep(0.3)
            b.start()
            got = wait_for(lambda: at_least(b.inbox(), 2), timeout=30,
                           what="the mail from before and after the outage")
            assert _subjects(got) == ["after", "before"]
        except BaseException as exc:
            raise AssertionError(f"{exc}; a's log:\n{a.log.read_text()[-5000:]}") from exc
        finally:
            a.stop()
            b.stop()
