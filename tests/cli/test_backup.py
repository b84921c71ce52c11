"""``postroom backup`` of a running server that is receiving mail: the copy holds every
message acknowledged before the backup began, reads back whole, and a server restored
from it serves them."""

from __future__ import annotations

import imaplib
import re
import shutil
import smtplib
import sys
import threading
from pathlib import Path
from typing import Any

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


# -- newsgroups: their articles are messages of store.db's reserved account, their state tables of store.db --

def _nntp(port: int) -> Any:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from nntpclient import NNTPClient

    c = NNTPClient.connect("127.0.0.1", port)
    assert c.starttls()[0] == 382
    assert c.authinfo(USER, PASSWORD)[0] == 281
    return c


def _article(groups: str, n: int) -> bytes:
    refs = f"References: <bk{n - 1}@example.test>\r\n" if n else ""
    return (f"From: u <{USER}>\r\nNewsgroups: {groups}\r\nSubject: backed up {n}\r\n"
            f"Message-ID: <bk{n}@example.test>\r\n{refs}\r\nbody {n}\r\n").encode()


def _read_groups(port: int) -> dict[str, Any]:
    """What a reader sees: each group's counts, its overview lines and its articles."""
    c = _nntp(port)
    try:
        out: dict[str, Any] = {}
        for g in ("local.backup", "local.other"):
            code, text = c.cmd(f"GROUP {g}")
            assert code == 211, text
            code, _, over = c.cmd_multi("OVER 1-")
            assert code == 224
            arts = []
            for line in over:
                number = int(line.split(b"\t")[0])
                code, _, lines = c.cmd_multi(f"ARTICLE {number}")
                assert code == 220
                arts.append(lines)
            out[g] = (text, over, arts)
        return out
    finally:
        c.quit()


@pytest.mark.skipif("nntp" not in protocols.available(), reason="needs NNTP")
def test_backup_carries_newsgroups(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Groups, history and crossposted articles in a backup of a running server; a server
    restored from it serves the same groups, remembers the Message-IDs it had, and
    ``postroom verify`` counts the articles without taking the reserved account for a user."""
    cfgp = make_server_dir(tmp_path / "live")
    assert main(["-c", str(cfgp), "user", "add", USER, "--password", PASSWORD]) == 0
    assert main(["-c", str(cfgp), "group", "add", "local.backup", "--description", "kept"]) == 0
    assert main(["-c", str(cfgp), "group", "add", "local.other"]) == 0
    dest = tmp_path / "backup"
    srv = Serving(cfgp)
    try:
        port = srv.wait_listening()["nntp"]
        c = _nntp(port)
        for n in range(6):
            groups = "local.backup,local.other" if n % 2 else "local.backup"
            assert c.post(_article(groups, n))[0] == 240
        c.quit()
        before = _read_groups(port)
        assert main(["-c", str(cfgp), "backup", str(dest)]) == 0
        c = _nntp(port)
        assert c.post(_article("local.backup", 6))[0] == 240  # after the backup: not in it
        c.quit()
    finally:
        srv.stop()
    assert before["local.backup"][0].startswith("6 1 6 ") and before["local.other"][0].startswith("3 1 3 ")
    assert b"local.backup:2 local.other:1" in before["local.other"][1][0]  # Xref of the crosspost

    restored = make_server_dir(tmp_path / "restored")
    shutil.rmtree(load(restored).data_dir)
    shutil.copytree(dest, load(restored).data_dir)
    capsys.readouterr()
    assert main(["-c", str(restored), "verify"]) == 0
    # 6 + 3 articles; one account (the reserved one is not counted as one).
    assert capsys.readouterr().out == "verified 9 messages (9 in newsgroups) of 1 accounts: none damaged\n"
    assert main(["-c", str(restored), "user", "list"]) == 0
    assert capsys.readouterr().out == f"{USER}\n"
    srv = Serving(restored)
    try:
        port = srv.wait_listening()["nntp"]
        assert _read_groups(port) == before
        c = _nntp(port)
        code, text = c.post(_article("local.backup", 3))
        assert code == 441 and "Duplicate" in text, text  # the history came back with the articles
        assert c.post(_article("local.backup", 6))[0] == 240  # never in the backup: new here
        assert c.cmd("GROUP local.backup")[1].startswith("7 1 7 ")
        c.quit()
    finally:
        srv.stop()
