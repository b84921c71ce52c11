"""``postroom backup`` of a running server that is receiving mail: the copy holds every
message acknowledged before the backup began, reads back whole, and a server restored
from it serves them."""

from __future__ import annotations

import imaplib
import re
import shutil
import smtplib
import threading
from pathlib import Path

import pytest

from postroom import protocols
from postroom.cli import main
from postroom.config import load

from .serving import Serving, make_server_dir

USER, PASSWORD = "u@example.test", "backup test password"
pytestmark = pytest.mark.skipif(not {"smtp", "imap"} <= protocols.available(), reason="needs SMTP and IMAP")


def body(worker: int, n: int) -> bytes:
    return (b"Subject: w%d n%d\r\n\r\n" % (worker, n)) + b"%d.%d backup test line\r\n" % (worker, n) * 200


def _sender(port: int, worker: int, acked: list[int], stop: threading.Event) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as c:
        n = 0
        while not stop.is_set():
            c.sendmail("a@remote.test", [USER], body(worker, n))
            acked.append(n)
            n += 1


def test_backup_while_mail_arrives_then_restore(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfgp = make_server_dir(tmp_path / "live")
    assert main(["-c", str(cfgp), "user", "add", USER, "--password", PASSWORD]) == 0
    dest = tmp_path / "backup"
    srv = Serving(cfgp)
    try:
        ports = srv.wait_listening()
        stop = threading.Event()
        acked: list[list[int]] = [[] for _ in range(3)]
        threads = [threading.Thread(target=_sender, args=(ports["smtp"], w, acked[w], stop)) for w in range(3)]
        for t in threads:
            t.start()
        while sum(map(len, acked)) < 60:
            stop.wait(0.05)
        before = [list(a) for a in acked]  # acknowledged before the backup began
        capsys.readouterr()
        assert main(["-c", str(cfgp), "backup", str(dest)]) == 0
        stop.set()
        for t in threads:
            t.join(30)
        out = capsys.readouterr().out
        assert out.startswith("backed up ") and f"to {dest}" in out
        assert main(["-c", str(cfgp), "backup", str(tmp_path / "live" / "data" / "b")]) == 2  # inside: refused (usage)
    finally:
        srv.stop()

    # Restore: a new server whose data directory is the backup.
    restored = make_server_dir(tmp_path / "restored")
    shutil.rmtree(load(restored).data_dir)
    shutil.copytree(dest, load(restored).data_dir)
    capsys.readouterr()
    assert main(["-c", str(restored), "verify"]) == 0
    assert capsys.readouterr().out.endswith("none damaged\n")
    srv = Serving(restored)
    try:
        ports = srv.wait_listening()
        c = imaplib.IMAP4("127.0.0.1", ports["imap"])
        c.starttls()
        c.login(USER, PASSWORD)
        typ, data = c.select("INBOX", readonly=True)
        count = int(data[0])
        assert count >= sum(map(len, before))
        typ, data = c.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        subjects = {d[1].strip() for d in data if isinstance(d, tuple)}
        for w, ns in enumerate(before):
            for n in ns:
                assert b"Subject: w%d n%d" % (w, n) in subjects, (w, n)
        typ, data = c.fetch("1:*", "(BODY.PEEK[])")
        for raw in (d[1] for d in data if isinstance(d, tuple)):  # every one whole
            w, n = re.search(rb"\r\nSubject: w(\d+) n(\d+)\r\n", raw).groups()
            assert raw.endswith(body(int(w), int(n)))
        c.logout()
    finally:
        srv.stop()
