"""SIGTERM: idle sessions are told goodbye at once, a transaction in flight finishes, exit 0."""

from __future__ import annotations

import asyncio
import imaplib
import signal
import socket
import time
from pathlib import Path

import pytest

from postroom import protocols
from postroom.cli import main
from postroom.config import load
from postroom.storage.sqlite.store import SqliteStore

from .serving import Serving, make_server_dir


def _recv_line(s: socket.socket) -> bytes:
    buf = b""
    while not buf.endswith(b"\n"):
        chunk = s.recv(1)
        if not chunk:
            break
        buf += chunk
    return buf


@pytest.mark.skipif(not {"smtp", "imap"} <= protocols.available(), reason="needs the SMTP and IMAP listeners")
def test_sigterm_finishes_transaction_and_says_goodbye(tmp_path: Path) -> None:
    cfgp = make_server_dir(tmp_path / "s")
    assert main(["-c", str(cfgp), "user", "add", "u@example.test", "--password", "pw"]) == 0
    cfg = load(cfgp)
    srv = Serving(cfgp)
    try:
        ports = srv.wait_listening()
        idle = imaplib.IMAP4("127.0.0.1", ports["imap"])  # sits idle in the not-authenticated state
        s = socket.create_connection(("127.0.0.1", ports["smtp"]), timeout=10)
        assert _recv_line(s).startswith(b"220")
        for cmd, code in ((b"EHLO client.test", b"250 "), (b"MAIL FROM:<a@remote.test>", b"250"),
                          (b"RCPT TO:<u@example.test>", b"250"), (b"DATA", b"354")):
            s.sendall(cmd + b"\r\n")
            line = _recv_line(s)
            while line[3:4] == b"-":
                line = _recv_line(s)
            assert line.startswith(code), (cmd, line)
        s.sendall(b"Subject: in flight\r\n\r\nfirst half\r\n")
        time.sleep(0.2)
        srv.proc.send_signal(signal.SIGTERM)
        time.sleep(0.2)
        s.sendall(b"second half\r\n.\r\n")  # the transaction in flight completes...
        assert _recv_line(s).startswith(b"250")
        s.sendall(b"NOOP\r\n")  # ...and then the session ends politely
        assert _recv_line(s).startswith(b"421")
        t0 = time.monotonic()
        bye = idle.readline()
        assert bye.startswith(b"* BYE"), bye
        assert srv.proc.wait(timeout=20) == 0
        assert time.monotonic() - t0 < 15
    finally:
        srv.stop()

    async def check() -> None:
        async with SqliteStore(cfg.data_dir) as st:
            acct = await st.get_account("u@example.test")
            inbox = await st.get_mailbox(acct.id, "INBOX")
            [m] = await st.list_messages(inbox.id)
            assert (await st.read_message(m)).endswith(b"Subject: in flight\r\n\r\nfirst half\r\nsecond half\r\n")
    asyncio.run(check())
