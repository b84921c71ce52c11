"""Runtime hooks: start/stop, the scheduler lock shared by workers, ETRN, and the CLI."""

import pytest
import asyncio
import subprocess
import sys
from pathlib import Path

from dnsfixture import DnsFixture
from outbound_helpers import FakeCtx, FakeStore, ScriptedSmtp, free_port
from postroom.config import from_dict
from postroom.outbound import service
from postroom.outbound.api import Envelope, Recipient

RAW = b"Subject: x\r\n\r\nbody\r\n"


def ctx_for(tmp_path, outbound):
    cfg = from_dict({"hostname": "mx.here.test", "domains": ["here.test"], "storage": {"path": "data"},
                     "outbound": outbound}, tmp_path / "postroom.toml")
    return FakeCtx(cfg, FakeStore({"a@here.test": 1}))


@pytest.mark.sqlite_only("one runner per data directory (the flock on data/); on PostgreSQL every node runs one")
def test_one_scheduler_many_enqueuers_and_etrn(tmp_path):
    port = free_port()
    with DnsFixture() as dns_srv, ScriptedSmtp("127.0.0.2", port) as mx:
        dns_srv.a("there.test", "127.0.0.2")
        # Nothing listens there: should the runner try the held message before it is
        # held, it is deferred (not bounced for a missing name), so ETRN still counts it.
        dns_srv.a("sub.there.test", "127.0.0.3")
        out = {"resolver": dns_srv.address, "port": port, "poll_interval": "0.1s"}

        async def main():
            w1, w2 = ctx_for(tmp_path, out), ctx_for(tmp_path, out)
            await service.start_services(w1)
            await asyncio.sleep(0.3)
            await service.start_services(w2)  # a second worker on the same data dir
            await asyncio.sleep(0.3)
            assert w1.outbound.runner is not None and w2.outbound.runner is None
            # the worker without the runner enqueues; the runner picks it up by polling
            qid = await w2.outbound.enqueue(Envelope("a@here.test", (Recipient("b@there.test"),)), RAW)
            for _ in range(50):
                if mx.messages:
                    break
                await asyncio.sleep(0.1)
            assert mx.messages == [RAW] and qid
            # RFC 1985: nothing queued for the domain → False (251), otherwise True (250)
            assert await service.etrn(w2, "there.test") is False
            await w1.outbound.queue.set_held((await w1.outbound.enqueue(
                Envelope("a@here.test", (Recipient("c@sub.there.test"),)), RAW)), True)
            assert await service.etrn(w2, "@there.test") is True
            assert await service.etrn(w2, "there.test") is False
            await service.stop_services(w1)
            assert w1.outbound is None
            # the lock is free again: the other worker takes over the runner
            for _ in range(80):
                if w2.outbound.runner is not None:
                    break
                await asyncio.sleep(0.1)
            assert w2.outbound.runner is not None
            await service.stop_services(w2)
        asyncio.run(main())


def test_check_settings_reports_outbound_problems(tmp_path):
    cfg = from_dict({"outbound": {"port": "x", "relay_host": "nohost"}}, tmp_path / "p.toml")
    problems = []
    service.check_settings(cfg, problems)
    assert any(p.startswith("outbound.port") for p in problems)
    assert any(p.startswith("outbound.relay_host") for p in problems)


def test_queue_cli(tmp_path):
    (tmp_path / "postroom.toml").write_text('hostname = "mx.here.test"\ndomains = ["here.test"]\n')
    from postroom.config import load
    from postroom.outbound.queue import SqliteQueue

    cfg = load(tmp_path / "postroom.toml")
    q = SqliteQueue(service.queue_dir(cfg)).open_sync()
    qid = q.enqueue_sync(Envelope("a@here.test", (Recipient("b@there.test", ("FAILURE",)),), envid="E9"), RAW)
    q.close_sync()

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "postroom.cli", "-c", str(tmp_path / "postroom.toml"),
                               "queue", *args], capture_output=True, text=True, timeout=60)

    out = cli("list")
    assert out.returncode == 0, out.stderr
    assert qid in out.stdout and "<a@here.test>" in out.stdout and "<b@there.test> pending" in out.stdout
    out = cli("show", qid, "--body")
    assert "ENVID=E9" in out.stdout and "NOTIFY=FAILURE" in out.stdout and "body" in out.stdout
    assert cli("hold", qid).returncode == 0
    assert f"{qid}!" in cli("list").stdout  # held, like mailq's "!"
    assert cli("release", qid).returncode == 0
    assert "1 recipient" in cli("retry", qid).stdout
    assert "1 recipient" in cli("flush").stdout
    assert cli("delete", qid).returncode == 0
    assert "Mail queue is empty" in cli("list").stdout
    bad = cli("show", qid)
    assert bad.returncode == 1 and "no queued message" in bad.stderr
