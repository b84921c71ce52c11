"""Connections spread by load over ``workers = 2`` (server.py, net/balance.py).

SO_REUSEPORT alone hashes each connection to a worker: ten POP3 sessions land 6/4, 7/3,
sometimes 10/0. A worker busier than another hands its new connection over before a byte
is exchanged. One ``postroom serve`` runs for the module; which worker serves a session
is read from /proc (the process holding the connection's socket), and whether a session
was handed over from the debug log line the accepting worker writes.
"""

from __future__ import annotations

import os
import poplib
import re
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from postroom.cli import main

from .serving import Serving, make_server_dir
from .test_crash import _children

USER = "alice@example.test"
PASSWORD = "balance-pw-1"
PER_IP = 5  # connections_per_ip: 10 sessions fill both workers exactly


@pytest.fixture(scope="module")
def serving(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Serving, dict[str, int]]]:
    cfgp = make_server_dir(tmp_path_factory.mktemp("balance") / "s", workers=2)
    text = cfgp.read_text().replace('log_level = "info"', 'log_level = "debug"')
    text = text.replace("connections_per_ip = 20", f"connections_per_ip = {PER_IP}")
    cfgp.write_text(text)
    assert main(["-c", str(cfgp), "user", "add", USER, "--password", PASSWORD]) == 0
    srv = Serving(cfgp, workers=2)
    try:
        yield srv, srv.wait_listening()
    finally:
        srv.stop()


def _established(port: int) -> set[str]:
    """Socket inodes of the server's side of established connections to ``port``."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        f = line.split()
        if f[3] == "01" and int(f[1].rsplit(":", 1)[1], 16) == port:
            inodes.add(f"socket:[{f[9]}]")
    return inodes


def per_worker(srv: Serving, port: int) -> list[int]:
    """Connections to ``port`` each worker holds, in worker pid order."""
    inodes = _established(port)
    counts = []
    for pid in sorted(_children(srv.proc.pid)):
        n = 0
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                n += os.readlink(f"/proc/{pid}/fd/{fd}") in inodes
            except OSError:  # the descriptor was closed between listdir and readlink: not a session
                continue
        counts.append(n)
    return counts


def wait_idle(srv: Serving, port: int) -> None:
    """Until the workers have seen the previous test's clients go (closing is asynchronous)."""
    deadline = time.monotonic() + 30
    while any(per_worker(srv, port)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(per_worker(srv, port)), per_worker(srv, port)


def greeted(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    assert s.recv(512).startswith(b"+OK")
    return s


def test_ten_sessions_spread_evenly_and_per_ip_limit_holds(serving: tuple[Serving, dict[str, int]]) -> None:
    srv, ports = serving
    port = ports["pop3"]
    wait_idle(srv, port)
    socks = [greeted(port) for _ in range(10)]
    try:
        counts = per_worker(srv, port)
        assert sorted(counts) == [5, 5], counts
        # Both workers are at connections_per_ip: the eleventh is refused, not handed over.
        with socket.create_connection(("127.0.0.1", port), timeout=30) as extra:
            assert extra.recv(512).startswith(b"-ERR [SYS/TEMP] Too many connections")
    finally:
        for s in socks:
            s.close()


def _handed_over(srv: Serving, listener: str, client_port: int) -> bool:
    return re.search(rf"{listener} 127\.0\.0\.1:{client_port} handed over to worker \d", srv.log()) is not None


def _session_on_other_worker(srv: Serving, port: int, listener: str, open_client):  # type: ignore[no-untyped-def]
    """A client session that the accepting worker handed over. With one session open
    (counts 1/0), a new connection the kernel hashes to the busy worker is handed over;
    one hashed to the idle worker stays. Try until the kernel picks the busy one."""
    for _ in range(40):
        client = open_client()
        local_port = client.sock.getsockname()[1]
        if _handed_over(srv, listener, local_port):
            return client
        client.close()
        deadline = time.monotonic() + 30
        while sum(per_worker(srv, port)) > 1 and time.monotonic() < deadline:
            time.sleep(0.05)
    raise AssertionError("no connection was handed over in 40 tries")


def _tls() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _whole_session(client: poplib.POP3) -> None:
    client.user(USER)
    assert client.pass_(PASSWORD).startswith(b"+OK")
    assert client.stat() == (0, 0)
    assert client.quit().startswith(b"+OK")


def test_handed_over_session_with_starttls(serving: tuple[Serving, dict[str, int]]) -> None:
    srv, ports = serving
    port = ports["pop3"]
    wait_idle(srv, port)
    with greeted(port):
        def open_client() -> poplib.POP3:
            c = poplib.POP3("127.0.0.1", port, timeout=30)
            return c
        client = _session_on_other_worker(srv, port, "pop3", open_client)
        assert sorted(per_worker(srv, port)) == [1, 1]
        assert client.stls(_tls()).startswith(b"+OK")
        _whole_session(client)


def test_handed_over_session_with_implicit_tls(serving: tuple[Serving, dict[str, int]]) -> None:
    srv, ports = serving
    port = ports["pop3s"]
    wait_idle(srv, port)
    first = poplib.POP3_SSL("127.0.0.1", port, timeout=30, context=_tls())
    try:
        client = _session_on_other_worker(
            srv, port, "pop3s", lambda: poplib.POP3_SSL("127.0.0.1", port, timeout=30, context=_tls()))
        assert sorted(per_worker(srv, port)) == [1, 1]
        assert client.sock.version() is not None  # TLS from the first byte
        _whole_session(client)
    finally:
        first.close()
