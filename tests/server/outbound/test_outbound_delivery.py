"""The runner against scripted SMTP peers on 127.0.0.x, with the DNS fixture for MX records."""

import asyncio
import email

import pytest

from dnsfixture import DnsFixture
from outbound_helpers import ScriptedSmtp, deliver_all, free_port, make_runner, rcpt_report, run_until
from postroom.outbound.api import Envelope, Recipient
from postroom.outbound.queue import RcptState

RAW = b"From: a@here.test\r\nTo: b@there.test\r\nSubject: hi\r\n\r\n.leading dot\r\nbody\r\n"


@pytest.fixture
def dns_srv():
    with DnsFixture() as srv:
        srv.mx("there.test", [(10, "mx1.there.test"), (20, "mx2.there.test")])
        srv.a("mx1.there.test", "127.0.0.2")
        srv.a("mx2.there.test", "127.0.0.3")
        yield srv


@pytest.fixture
def port():
    return free_port()


def outbound(dns_srv, port, **kw):
    return {"resolver": dns_srv.address, "port": port, "retry_schedule": ["0.2s"], "connect_timeout": "2s",
            "command_timeout": "5s", **kw}


def env(*rcpts, sender="a@here.test", **kw):
    return Envelope(sender=sender, recipients=tuple(r if isinstance(r, Recipient) else Recipient(r) for r in rcpts),
                    **kw)


async def empty(queue):
    return not await queue.messages()


def test_delivers_with_pipelining_dsn_and_params(tmp_path, dns_srv, port):
    async def main():
        runner, queue, ctx = make_runner(tmp_path, outbound(dns_srv, port))
        await queue.open()
        with ScriptedSmtp("127.0.0.2", port) as mx:
            await queue.enqueue(env(Recipient("b@there.test", ("SUCCESS", "FAILURE"), "rfc822;B@there.test"),
                                    "c@there.test", ret="HDRS", envid="ID+1", body_8bit=True), RAW)
            await run_until(runner, lambda: empty(queue))
            await runner.close()
        assert mx.messages == [RAW]
        lines = mx.lines
        assert lines[0] == "EHLO mx.here.test"
        assert lines[1] == f"MAIL FROM:<a@here.test> SIZE={len(RAW)} BODY=8BITMIME RET=HDRS ENVID=ID+2B1"
        assert lines[2] == "RCPT TO:<b@there.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;B@there.test"
        assert lines[3] == "RCPT TO:<c@there.test>"
        assert lines[4] == "DATA"
        # the peer offered DSN, so it reports SUCCESS itself: no "relayed" notice from us
        assert ctx.store.delivered == []
        await queue.close()
    asyncio.run(main())


def test_helo_fallback_without_extensions(tmp_path, dns_srv, port):
    async def main():
        runner, queue, ctx = make_runner(tmp_path, outbound(dns_srv, port))
        await queue.open()
        with ScriptedSmtp("127.0.0.2", port, ehlo_ok=False) as mx:
            await queue.enqueue(env(Recipient("b@there.test", ("SUCCESS",)), ret="FULL"), RAW)
            await run_until(runner, lambda: empty(queue))
            await runner.close()
        assert mx.lines[:3] == ["EHLO mx.here.test", "HELO mx.here.test", "MAIL FROM:<a@here.test>"]
        assert mx.lines[3] == "RCPT TO:<b@there.test>"  # no DSN parameters to a peer without DSN
        assert mx.messages == [RAW]
        # NOTIFY=SUCCESS and the next hop has no DSN: RFC 3461 §5.2.2 "relayed" notice
        [(raw, ids)] = ctx.store.delivered
        assert ids == [1]
        assert rcpt_report(raw)["Action"] == "relayed"
        await queue.close()
    asyncio.run(main())


def test_falls_back_to_second_mx_on_connection_failure(tmp_path, dns_srv, port):
    async def main():
        runner, queue, _ = make_runner(tmp_path, outbound(dns_srv, port))
        await queue.open()
        with ScriptedSmtp("127.0.0.3", port) as mx2:  # nothing listens on mx1 (127.0.0.2)
            await queue.enqueue(env("b@there.test"), RAW)
            await run_until(runner, lambda: empty(queue))
            await runner.close()
        assert mx2.messages == [RAW]
        await queue.close()
    asyncio.run(main())


def test_falls_back_to_second_mx_on_4xx(tmp_path, dns_srv, port):
    async def main():
        runner, queue, _ = make_runner(tmp_path, outbound(dns_srv, port))
        await queue.open()
        busy = lambda line: "451 4.3.2 busy" if line.startswith("RCPT") else None  # noqa: E731
        with ScriptedSmtp("127.0.0.2", port, reply=busy) as mx1, ScriptedSmtp("127.0.0.3", port) as mx2:
            await queue.enqueue(env("b@there.test"), RAW)
            await run_until(runner, lambda: empty(queue))
            await runner.close()
        assert mx1.messages == [] and mx2.messages == [RAW]
        await queue.close()
    asyncio.run(main())


def test_retry_after_temporary_failure(tmp_path, dns_srv, port):
    dns_srv.mx("there.test", [(10, "mx1.there.test")])
    calls = []

    def once_busy(line):
        if line.startswith("RCPT"):
            calls.append(line)
            return "450 4.2.0 mailbox busy" if len(calls) == 1 else None
        return None

    async def main():
        runner, queue, ctx = make_runner(tmp_path, outbound(dns_srv, port, delay_warning="1h"))
        await queue.open()
        with ScriptedSmtp("127.0.0.2", port, reply=once_busy) as mx:
            qid = await queue.enqueue(env("b@there.test"), RAW)
            await runner.schedule_once()
            await runner.drain()
            [r] = (await queue.get(qid)).recipients
            assert r.state is RcptState.DEFERRED and "450 4.2.0 mailbox busy" in r.last_error
            assert r.last_status == "4.2.0"
            await run_until(runner, lambda: empty(queue))
            await runner.close()
        assert mx.messages == [RAW] and len(calls) == 2
        assert ctx.store.delivered == []  # no delay notice before delay_warning
        await queue.close()
    asyncio.run(main())


def test_permanent_failure_bounces_at_once_with_dsn(tmp_path, dns_srv, port):
    def reject(line):
        return "550 5.1.1 <b@there.test>: no such user" if line.startswith("RCPT TO:<b@") else None

    async def main():
        runner, queue, ctx = make_runner(tmp_path, outbound(dns_srv, port))
        await queue.open()
        with ScriptedSmtp("127.0.0.2", port, reply=reject) as mx:
            await queue.enqueue(env(Recipient("b@there.test", orcpt="rfc822;b@there.test"), "c@there.test",
                                    envid="E-7"), RAW)
            await run_until(runner, lambda: empty(queue))
            await runner.close()
        assert mx.messages == [RAW]  # c was delivered
        [(raw, ids)] = ctx.store.delivered
        msg = email.message_from_bytes(raw)
        assert msg["To"] == "<a@here.test>" and msg.get_content_type() == "multipart/report"
        text, status, returned = msg.get_payload()
        per_msg, rcpt = status.get_payload()
        assert per_msg["Original-Envelope-Id"] == "E-7"
        assert rcpt["Final-Recipient"] == "rfc822; b@there.test"
        assert rcpt["Action"] == "failed" and rcpt["Status"] == "5.1.1"
        assert rcpt["Remote-MTA"] == "dns; mx1.there.test"
        assert "no such user" in rcpt["Diagnostic-Code"]
        assert returned.get_content_type() == "message/rfc822"  # no RET: the full message for failures
        assert "c@there.test" not in text.get_payload()
        await queue.close()
    asyncio.run(main())


def test_null_mx_bounces_at_once(tmp_path, dns_srv, port):
    dns_srv.null_mx("nomail.test")

    ctx = asyncio.run(deliver_all(tmp_path, outbound(dns_srv, port), [(env("b@nomail.test"), RAW)]))
    [(raw, _)] = ctx.store.delivered
    rcpt = rcpt_report(raw)
    assert rcpt["Status"] == "5.1.10" and "null MX" in rcpt["Diagnostic-Code"]


def test_no_bounce_to_null_sender_and_notify_never(tmp_path, dns_srv, port):
    dns_srv.null_mx("nomail.test")

    ctx = asyncio.run(deliver_all(tmp_path, outbound(dns_srv, port), [
        (env("b@nomail.test", sender=""), RAW), (env(Recipient("c@nomail.test", ("NEVER",))), RAW)]))
    assert ctx.store.delivered == []


def test_delay_notice_then_bounce_after_max_lifetime(tmp_path, dns_srv, port):
    async def main():
        runner, queue, ctx = make_runner(
            tmp_path, outbound(dns_srv, port, delay_warning="0.3s", max_lifetime="1.5s", retry_schedule=["0.2s"]))
        await queue.open()
        # nobody listens on either MX
        await queue.enqueue(env(Recipient("b@there.test", orcpt="rfc822;b@there.test")), RAW)
        await run_until(runner, lambda: empty(queue), timeout=15)
        actions = []
        for raw, _ in ctx.store.delivered:
            rcpt = rcpt_report(raw)
            actions.append((rcpt["Action"], rcpt["Status"]))
        assert actions[0] == ("delayed", "4.4.1")  # exactly one delay notice …
        assert actions[1:] == [("failed", "5.4.7")]  # … then the bounce
        raw = ctx.store.delivered[-1][0]
        assert b"delivery time expired" in raw and b"cannot connect" in raw
        await queue.close()
    asyncio.run(main())


def test_one_connection_for_several_messages(tmp_path, dns_srv, port):
    dns_srv.mx("there.test", [(10, "mx1.there.test")])

    async def main():
        runner, queue, _ = make_runner(tmp_path, outbound(dns_srv, port, per_domain_concurrency=1))
        await queue.open()
        with ScriptedSmtp("127.0.0.2", port) as mx:
            for i in range(5):
                await queue.enqueue(env("b@there.test"), RAW + b"%d\r\n" % i)
            await run_until(runner, lambda: empty(queue))
            await runner.close()
        assert len(mx.messages) == 5
        assert len(mx.sessions) == 1
        assert sum(1 for x in mx.lines if x.startswith("MAIL")) == 5
        await queue.close()
    asyncio.run(main())


def test_size_limit_bounces(tmp_path, dns_srv, port):
    dns_srv.mx("there.test", [(10, "mx1.there.test")])

    with ScriptedSmtp("127.0.0.2", port, ehlo=("SIZE 10",)) as mx:
        ctx = asyncio.run(deliver_all(tmp_path, outbound(dns_srv, port), [(env("b@there.test"), RAW)]))
    assert mx.messages == []
    assert rcpt_report(ctx.store.delivered[0][0])["Status"] == "5.3.4"


def test_remote_sender_notice_is_queued_with_null_sender(tmp_path, dns_srv, port):
    dns_srv.null_mx("nomail.test")

    async def main():
        runner, queue, ctx = make_runner(tmp_path, outbound(dns_srv, port))
        await queue.open()
        await queue.enqueue(env("b@nomail.test", sender="someone@there.test"), RAW)
        await runner.schedule_once()
        await runner.drain()
        [notice] = await queue.messages()
        assert notice.sender == "" and [r.address for r in notice.recipients] == ["someone@there.test"]
        assert notice.recipients[0].notify == ("NEVER",)
        await queue.close()
    asyncio.run(main())


def test_lost_message_file_bounces_instead_of_looping(tmp_path, dns_srv, port):
    async def main():
        runner, queue, ctx = make_runner(tmp_path, outbound(dns_srv, port))
        await queue.open()
        qid = await queue.enqueue(env("b@there.test"), RAW)
        (tmp_path / "queue" / "msgs" / qid).unlink()
        await run_until(runner, lambda: empty(queue))
        await queue.close()
        return ctx
    [(raw, _)] = asyncio.run(main()).store.delivered
    assert b"Status: 5.3.0" in raw and b"file was lost" in raw


def test_mx_list_is_cut_at_our_own_name(tmp_path, dns_srv, port):
    # RFC 5321 §5.1: we (mx.here.test) are MX 20 of there.test → only MX 10 may be tried
    dns_srv.mx("there.test", [(10, "mx1.there.test"), (20, "mx.here.test"), (30, "mx2.there.test")])
    dns_srv.a("mx.here.test", "127.0.0.5")
    dns_srv.mx("loop.test", [(10, "mx.here.test"), (20, "mx2.there.test")])

    async def main():
        runner, queue, ctx = make_runner(tmp_path, outbound(dns_srv, port))
        await queue.open()
        with ScriptedSmtp("127.0.0.3", port) as mx2:  # mx1 is down, mx2 must not be used
            qid = await queue.enqueue(env("b@there.test"), RAW)
            await queue.enqueue(env("c@loop.test"), RAW)
            await runner.schedule_once()
            await runner.drain()
            await runner.close()
        assert mx2.messages == []
        [r] = (await queue.get(qid)).recipients
        assert r.state is RcptState.DEFERRED and "127.0.0.2" in r.last_error
        [(raw, _)] = ctx.store.delivered  # loop.test bounced: we are its best MX
        assert b"Status: 5.4.6" in raw and b"loops back to myself" in raw
        await queue.close()
    asyncio.run(main())


def test_unreachable_host_is_remembered_between_jobs(tmp_path, dns_srv, port):
    dns_srv.mx("there.test", [(10, "mx1.there.test")])

    async def main():
        runner, queue, _ = make_runner(tmp_path, outbound(dns_srv, port, retry_schedule=["30s"], per_domain_concurrency=1))
        await queue.open()
        connects = []
        real_get = runner.pool.get

        async def counting_get(*a, **kw):
            connects.append(a[1])
            return await real_get(*a, **kw)
        runner.pool.get = counting_get
        ids = [await queue.enqueue(env("b@there.test"), RAW) for _ in range(5)]
        await runner.schedule_once()
        await runner.drain()
        assert len(connects) == 1  # later jobs skipped the host that just refused
        for qid in ids:
            [r] = (await queue.get(qid)).recipients
            assert r.state is RcptState.DEFERRED and "cannot connect" in r.last_error
        await runner.close()
        await queue.close()
    asyncio.run(main())
