"""``[limits] login_timeout``: an IMAP or POP3 client that has not logged in that long after
connecting is disconnected, however busy it keeps the line (Dovecot's 3 minutes), so that
commands trickled before login cannot hold connections for ever. Logging in ends the clock."""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Iterator

import pytest

from postroom import protocols
from postroom.cli import main

from .serving import Serving, make_server_dir

USER, PASSWORD = "u@example.test", "login timeout password"
LIMIT = 2.0
pytestmark = pytest.mark.skipif(not {"imap", "pop3"} <= protocols.available(), reason="needs IMAP and POP3")


@pytest.fixture(scope="module")
def ports(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, int]]:
    cfgp = make_server_dir(tmp_path_factory.mktemp("login") / "s")
    text = cfgp.read_text()
    assert 'login_timeout = "3m"' in text  # what init writes
    cfgp.write_text(text.replace('login_timeout = "3m"', f'login_timeout = "{LIMIT:g}s"')
                    + '\n[imap]\nallow_plaintext_auth = true\n[pop3]\nallow_plaintext_auth = true\n')
    assert main(["-c", str(cfgp), "user", "add", USER, "--password", PASSWORD]) == 0
    srv = Serving(cfgp)
    try:
        yield srv.wait_listening()
    finally:
        srv.stop()


def _busy_until_closed(port: int, command: bytes, login: bytes | None, seconds: float) -> tuple[float, bytes]:
    """Send ``command`` every 0.3 s (after ``login``, if given) for up to ``seconds``;
    return when the server closed the connection (or ``seconds``) and its last line."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    t0 = time.monotonic()
    buf = s.recv(4096)
    if login is not None:
        s.sendall(login)
        time.sleep(0.3)
        buf += s.recv(4096)
    try:
        while time.monotonic() - t0 < seconds:
            s.sendall(command)
            time.sleep(0.3)
            chunk = s.recv(4096)
            if not chunk:
                break
            buf += chunk
    except OSError:
        pass
    finally:
        s.close()
    return time.monotonic() - t0, buf.rstrip(b"\r\n").rsplit(b"\r\n", 1)[-1]


def test_imap_before_login_is_disconnected_at_the_limit(ports: dict[str, int]) -> None:
    took, last = _busy_until_closed(ports["imap"], b"a NOOP\r\n", None, 10)
    assert LIMIT <= took < LIMIT + 2 and last.startswith(b"* BYE ")


def test_pop3_before_login_is_disconnected_at_the_limit(ports: dict[str, int]) -> None:
    took, last = _busy_until_closed(ports["pop3"], b"CAPA\r\n", None, 10)
    assert LIMIT <= took < LIMIT + 2 and last == b"-ERR Disconnected for inactivity"


def test_logged_in_sessions_are_not_limited(ports: dict[str, int]) -> None:
    login = b'l LOGIN "%s" "%s"\r\n' % (USER.encode(), PASSWORD.encode())
    took, last = _busy_until_closed(ports["imap"], b"a NOOP\r\n", login, LIMIT + 1.5)
    assert took >= LIMIT + 1.5 and last.startswith(b"a OK")
    took, last = _busy_until_closed(ports["pop3"], b"NOOP\r\n", b"USER %s\r\nPASS %s\r\n" % (
        USER.encode(), PASSWORD.encode()), LIMIT + 1.5)
    assert took >= LIMIT + 1.5 and last.startswith(b"+OK")
