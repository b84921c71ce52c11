"""``postroom sendmail``: local submission without the network."""

import io
import subprocess
import sys

import pytest
from conftest import DOMAIN

from postroom.smtp import sendmail


def run(srv, argv, data):
    err = io.StringIO()
    code = sendmail.run(srv.cfg, argv, stdin=io.BytesIO(data), stderr=err)
    return code, err.getvalue()


def test_recipients_on_the_command_line(smtp_server):
    before = len(smtp_server.inbox("joe"))
    code, err = run(smtp_server, ["-f", "cron@example.test", "joe"], b"Subject: cron\n\noutput\n.\nnot sent\n")
    assert (code, err) == (0, "")
    msg = smtp_server.inbox("joe")
    assert len(msg) == before + 1
    m = msg[-1]
    assert m.startswith(b"Return-Path: <cron@example.test>\r\nReceived: by mx.example.test (Postroom, from local")
    assert b"\r\nFrom: <cron@example.test>\r\n" in m and b"\r\nMessage-ID: <" in m and b"\r\nDate: " in m
    assert m.endswith(b"Subject: cron\r\n\r\noutput\r\n")  # "." alone ended the input
    assert m.count(b"\n") == m.count(b"\r\n")  # delivered with crlf=True: no bare LF may remain


def test_t_reads_headers_and_drops_bcc(smtp_server):
    before = {u: len(smtp_server.inbox(u)) for u in ("ann", "bob", "carl")}
    data = (b"From: app@example.test\nTo: ann@example.test\nCc: Bob <bob@example.test>\n"
            b"Bcc: carl@example.test,\n  friend@remote.example\nSubject: t\n\nbody\n.\nstill body\n")
    code, err = run(smtp_server, ["-t", "-i"], data)
    assert (code, err) == (0, "")
    for u in before:
        assert len(smtp_server.inbox(u)) == before[u] + 1, u
    m = smtp_server.inbox("carl")[-1]
    assert b"Bcc" not in m and b"friend@remote" not in m
    assert m.endswith(b"\r\n\r\nbody\r\n.\r\nstill body\r\n")
    assert m.count(b"\n") == m.count(b"\r\n")


def test_errors(smtp_server):
    assert run(smtp_server, ["nobody"], b"x\n")[0] == sendmail.EX_NOUSER
    assert run(smtp_server, [], b"x\n")[0] == sendmail.EX_USAGE
    assert run(smtp_server, ["-Z"], b"x\n")[0] == sendmail.EX_USAGE
    assert run(smtp_server, ["bad@@x"], b"x\n")[0] == sendmail.EX_DATAERR


@pytest.mark.sqlite_only("the sendmail subprocess stores on SQLite")
def test_cli_subprocess(smtp_server):
    before = len(smtp_server.inbox("dora"))
    p = subprocess.run([sys.executable, "-m", "postroom.cli", "-c", str(smtp_server.cfg.path), "sendmail",
                        f"dora@{DOMAIN}", "-oi"], input=b"Subject: via cli\n\nhi\n.\n", capture_output=True,
                       timeout=60)
    assert p.returncode == 0, p.stderr
    assert len(smtp_server.inbox("dora")) == before + 1


@pytest.mark.sqlite_only("the sendmail subprocess stores on SQLite")
def test_cli_options_before_recipients(smtp_server):
    """Cron and scripts put sendmail's options first (regression: argparse rejected them)."""
    before = len(smtp_server.inbox("dora"))
    p = subprocess.run([sys.executable, "-m", "postroom.cli", "-c", str(smtp_server.cfg.path), "sendmail",
                        "-t", "-i", "-f", f"dora@{DOMAIN}"],
                       input=f"To: dora@{DOMAIN}\nSubject: opts\n\nhi\n.\nmore\n".encode(), capture_output=True,
                       timeout=60)
    assert p.returncode == 0, p.stderr
    assert len(smtp_server.inbox("dora")) == before + 1
    assert smtp_server.inbox("dora")[-1].endswith(b"hi\r\n.\r\nmore\r\n")
