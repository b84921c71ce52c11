"""A real ``postroom serve`` killed with SIGKILL under load loses nothing it acknowledged.

The store's own durability test (tests/storage/test_durability.py) kills a process that
calls ``deliver`` in a loop. This one kills the whole server, supervisor and workers at
the same moment as a power cut would, while SMTP clients send and IMAP clients APPEND
over real sockets: every message that got its ``250`` or its ``OK`` must be there after a
restart, whole, once, and the restarted server must serve. It also checks that workers
do not outlive a supervisor killed on its own.
"""

from __future__ import annotations

import asyncio
import imaplib
import os
import random
import re
import smtplib
import ssl
import threading
import time
from pathlib import Path

import pytest

from postroom import protocols
from postroom.cli import main
from postroom.config import load
from postroom.storage.sqlite.store import SqliteStore

from .serving import Serving, make_server_dir

USER, PASSWORD = "u@example.test", "crash test password"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not {"smtp", "imap"} <= protocols.available(), reason="needs the SMTP and IMAP listeners"),
]


def body(kind: str, worker: int, n: int) -> bytes:
    """The message a sender sends; its size varies (up to 300 KB) so that kills land in
    the middle of writes of every size."""
    head = (f"From: sender{worker}@remote.test\r\nTo: {USER}\r\n"
            f"Subject: {kind} {worker} {n}\r\nMessage-ID: <{kind}.{worker}.{n}@crash.test>\r\n\r\n").encode()
    line = b"%d lorem ipsum dolor sit amet, consectetur adipiscing elit.\r\n" % n
    return head + line * (1 + (n * 7919 + worker * 104729) % 5000)


def _children(pid: int) -> list[int]:
    """Process ids whose parent is ``pid`` (from /proc: no ps or pgrep needed)."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry))
    return out


def _tls() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    return ctx


def _smtp_sender(port: int, worker: int, first: int, acked: list[int], stop: threading.Event) -> None:
    n = first
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=20) as c:
            while not stop.is_set():
                c.sendmail(f"sender{worker}@remote.test", [USER], body("smtp", worker, n))
                acked.append(n)  # the 250 after the final dot arrived
                n += 1
    except (OSError, smtplib.SMTPException):
        pass  # the server was killed


def _imap_appender(port: int, worker: int, first: int, acked: list[int], stop: threading.Event) -> None:
    n = first
    try:
        c = imaplib.IMAP4_SSL("127.0.0.1", port, ssl_context=_tls(), timeout=20)
        c.login(USER, PASSWORD)
        while not stop.is_set():
            typ, _ = c.append("INBOX", None, None, body("imap", worker, n))
            if typ == "OK":
                acked.append(n)
            n += 1
    except (OSError, imaplib.IMAP4.error, imaplib.IMAP4.abort):
        pass


async def _stored(data_dir: Path) -> dict[tuple[str, int, int], bytes]:
    """(kind, worker, n) → the message as stored, for every message in the INBOX."""
    out: dict[tuple[str, int, int], bytes] = {}
    async with SqliteStore(data_dir) as st:
        acct = await st.get_account(USER)
        assert acct is not None
        inbox = await st.get_mailbox(acct.id, "INBOX")
        assert inbox is not None
        for m in await st.list_messages(inbox.id):
            raw = await st.read_message(m)
            found = re.search(rb"\r\nSubject: (smtp|imap) (\d+) (\d+)\r\n", raw)
            assert found, raw[:300]
            key = (found.group(1).decode(), int(found.group(2)), int(found.group(3)))
            assert key not in out, f"{key} stored twice"
            out[key] = raw
    return out


def test_sigkill_under_load_loses_nothing_acknowledged(tmp_path: Path) -> None:
    cfgp = make_server_dir(tmp_path / "s", workers=2)
    assert main(["-c", str(cfgp), "user", "add", USER, "--password", PASSWORD]) == 0
    data_dir = load(cfgp).data_dir
    rng = random.Random(20261123)
    acked: dict[tuple[str, int], list[int]] = {}
    next_n: dict[tuple[str, int], int] = {}
    for round_ in range(3):
        srv = Serving(cfgp, workers=2)
        try:
            ports = srv.wait_listening()
            stop = threading.Event()
            threads = []
            for kind, port, target, count in (("smtp", ports["smtp"], _smtp_sender, 4),
                                              ("imap", ports["imaps"], _imap_appender, 2)):
                for worker in range(count):
                    got = acked.setdefault((kind, worker), [])
                    first = next_n.get((kind, worker), 0) + 1000 * round_
                    threads.append(threading.Thread(target=target, args=(port, worker, first, got, stop)))
            for t in threads:
                t.start()
            time.sleep(0.8 + rng.random())
            srv.kill_all()  # mid-flight: some writes half done, some commits half done
            stop.set()
            for t in threads:
                t.join(30)
                assert not t.is_alive()
        finally:
            srv.stop()
        for key, ns in acked.items():
            if ns:
                next_n[key] = max(ns) - 1000 * round_ + 1

        stored = asyncio.run(_stored(data_dir))
        for (kind, worker, n), raw in stored.items():
            # Whole: SMTP prepends its trace headers, IMAP keeps the bytes as sent.
            sent = body(kind, worker, n)
            assert raw.endswith(sent) if kind == "smtp" else raw == sent, f"{kind} {worker} {n} is not whole"
        print(f"round {round_}: {sum(map(len, acked.values()))} acknowledged, {len(stored)} stored")
        lost = [(kind, worker, n) for (kind, worker), ns in acked.items() for n in ns
                if (kind, worker, n) not in stored]
        assert not lost, f"acknowledged but lost after the kill of round {round_}: {lost[:10]}"
    assert sum(len(ns) for (kind, _), ns in acked.items() if kind == "smtp") > 0
    assert sum(len(ns) for (kind, _), ns in acked.items() if kind == "imap") > 0

    # The store the kills left behind serves: a new server delivers into it and reads it.
    srv = Serving(cfgp, workers=2)
    try:
        ports = srv.wait_listening()
        with smtplib.SMTP("127.0.0.1", ports["smtp"], timeout=20) as c:
            c.sendmail("after@remote.test", [USER], body("smtp", 99, 1))
        c2 = imaplib.IMAP4_SSL("127.0.0.1", ports["imaps"], ssl_context=_tls(), timeout=20)
        c2.login(USER, PASSWORD)
        typ, data = c2.select("INBOX")
        assert typ == "OK" and int(data[0]) == len(asyncio.run(_stored(data_dir)))
        c2.logout()
    finally:
        srv.stop()


def test_workers_stop_when_their_supervisor_is_killed(tmp_path: Path) -> None:
    """A supervisor killed with SIGKILL cannot stop its workers: they notice and stop."""
    cfgp = make_server_dir(tmp_path / "s", workers=2)
    srv = Serving(cfgp, workers=2)
    try:
        srv.wait_listening()
        workers = _children(srv.proc.pid)
        assert len(workers) == 2
        srv.proc.kill()
        srv.proc.wait()
        deadline = time.monotonic() + 15
        while any(os.path.exists(f"/proc/{pid}") for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(os.path.exists(f"/proc/{pid}") for pid in workers), "workers outlived their supervisor"
        assert srv.log().count(f"supervisor pid={srv.proc.pid} is gone; stopping") == 2
    finally:
        srv.stop()
