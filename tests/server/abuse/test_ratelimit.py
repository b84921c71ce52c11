"""SMTP rate limits (postroom.abuse.limits) against a real server over loopback.

The server listens on 127.0.0.1; each test's client binds its own source address in
127.0.0.0/8 (127.0.0.2, 127.0.1.x, ...) so that its counters are its own, while the
rest of the suite, connecting from 127.0.0.1, is exempt. Under
POSTROOM_TEST_STORE=postgresql the same tests run the PostgreSQL counters.
"""

from __future__ import annotations

import importlib.util
import smtplib
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from postroom.cli import main
from postroom.config import load

_TESTS = Path(__file__).resolve().parents[2]

RATELIMIT = """
[ratelimit]
ip_connections = "6/10m"
net_connections = "15/10m"
ip_messages = "4/1h"
net_messages = "off"
sender_messages = "5/1h"
ip_errors = "5/10m"
ip_auth_failures = "3/10m"
user_remote_recipients = "3/1h"
tarpit_from = 0.5
tarpit_delay = "300ms"
[screen]
listeners = []  # no DNS checks of the 127.0.x.y clients (tests/server/abuse/test_screen*)
"""
SMTP = 'allow_plaintext_auth = true\ntrusted_networks = ["127.0.0.7/32"]'


def _harness() -> ModuleType:
    """tests/server/smtp's server harness, under a name of its own (its conftest module
    name would clash with other folders')."""
    name = "postroom_tests_ratelimit_smtp_harness"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, _TESTS / "server" / "smtp" / "conftest.py")
        assert spec is not None and spec.loader is not None
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
    return sys.modules[name]


def _start(root: Path, first: bool = True) -> Any:
    h = _harness()
    srv = h.SmtpServer(root, smtp_section=SMTP)
    with open(root / "postroom.toml", "a", encoding="utf-8") as f:
        f.write(RATELIMIT)
    srv.cfg = load(root / "postroom.toml")
    if first:
        return srv.start()
    users, aliases = h.USERS, h.ALIASES
    h.USERS, h.ALIASES = (), {}  # a restart: the accounts are already in the store
    try:
        return srv.start()
    finally:
        h.USERS, h.ALIASES = users, aliases


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("ratelimit")
    holder = {"srv": _start(root), "root": root}
    yield holder
    holder["srv"].stop()


def _port(server: dict[str, Any], name: str = "smtp") -> int:
    return int(server["srv"].ports[name])


def greet(server: dict[str, Any], source: str, name: str = "smtp") -> tuple[str, float, socket.socket]:
    """Connect from ``source``; the first reply line and how long it took to come."""
    sock = socket.create_connection(("127.0.0.1", _port(server, name)), timeout=10, source_address=(source, 0))
    t0 = time.monotonic()
    data = b""
    while b"\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data.decode(), time.monotonic() - t0, sock


def send_one(server: dict[str, Any], source: str, sender: str = "someone@remote.example",
             rcpt: str = "joe@example.test") -> None:
    with smtplib.SMTP("127.0.0.1", _port(server), source_address=(source, 0), timeout=10) as c:
        c.sendmail(sender, [rcpt], b"Subject: hi\r\n\r\nhello\r\n")


def cli(server: dict[str, Any], capsys: pytest.CaptureFixture[str], *args: str) -> str:
    capsys.readouterr()
    assert main(["-c", str(server["root"] / "postroom.toml"), "ratelimit", *args]) == 0
    return capsys.readouterr().out


def test_flood_is_slowed_then_refused_other_ips_unaffected(server: dict[str, Any]) -> None:
    delays = []
    for _ in range(6):
        reply, took, sock = greet(server, "127.0.0.2")
        assert reply.startswith("220 "), reply
        delays.append(took)
        sock.close()
    # Under half the limit (3) the greeting comes at once; from there it is held, longer
    # as the count nears the limit (tarpit_delay 300 ms at the limit).
    assert min(delays[:3]) < 0.28 <= delays[5], delays
    reply, _took, sock = greet(server, "127.0.0.2")
    sock.close()
    assert reply.startswith("421 4.7.0 ") and "Too many connections" in reply, reply
    # Another client of the same /24 still gets its mail through.
    before = len(server["srv"].inbox("joe"))
    send_one(server, "127.0.0.3")
    assert len(server["srv"].wait_inbox("joe", before + 1)) == before + 1


def test_network_aggregation(server: dict[str, Any]) -> None:
    """Five connections each from three addresses of 127.0.1.0/24: every address is under
    its own limit (6), the network reaches its 15."""
    for i in range(5):
        for host in ("127.0.1.1", "127.0.1.2", "127.0.1.3"):
            reply, _took, sock = greet(server, host)
            sock.close()
            assert reply.startswith("220 "), (i, host, reply)
    reply, _took, sock = greet(server, "127.0.1.4")
    sock.close()
    assert reply.startswith("421 4.7.0 "), reply
    reply, _took, sock = greet(server, "127.0.2.9")  # another network
    sock.close()
    assert reply.startswith("220 "), reply


def test_messages_per_ip_refused_at_mail(server: dict[str, Any]) -> None:
    with smtplib.SMTP("127.0.0.1", _port(server), source_address=("127.0.0.8", 0), timeout=10) as c:
        c.ehlo("flood.example")
        for _ in range(4):
            assert c.mail("a@remote.example")[0] == 250
            c.rset()
        code, text = c.mail("a@remote.example")
        assert (code, text[:5]) == (421, b"4.7.0"), (code, text)
        with pytest.raises(smtplib.SMTPServerDisconnected):
            c.noop()


def test_sender_domain_counted_across_addresses(server: dict[str, Any]) -> None:
    for host in ("127.0.3.1", "127.0.4.1", "127.0.5.1"):
        with smtplib.SMTP("127.0.0.1", _port(server), source_address=(host, 0), timeout=10) as c:
            c.ehlo("x.example")
            for _ in range(2):
                code, text = c.mail("spam@forged.example")
                if host == "127.0.5.1" and _ == 1:
                    assert (code, text[:5]) == (421, b"4.7.0"), (code, text)
                else:
                    assert code == 250, (host, code, text)
                    c.rset()


def test_errors_refuse_the_next_connection(server: dict[str, Any]) -> None:
    reply, _took, sock = greet(server, "127.0.0.5")
    for _ in range(5):
        sock.sendall(b"BOGUS\r\n")
        assert sock.recv(4096).startswith(b"500 ")
    sock.close()
    time.sleep(0.1)  # the last error is counted as the reply goes out
    reply, _took, sock = greet(server, "127.0.0.5")
    sock.close()
    assert reply.startswith("421 4.7.0 ") and "errors" in reply, reply


def test_auth_failures_refuse_the_next_connection(server: dict[str, Any]) -> None:
    import base64

    wrong = base64.b64encode(b"\0joe@example.test\0wrong").decode()
    with smtplib.SMTP("127.0.0.1", _port(server, "submission"), source_address=("127.0.0.6", 0),
                      timeout=10) as c:
        c.ehlo("x.example")
        for _ in range(3):
            assert c.docmd("AUTH", f"PLAIN {wrong}")[0] == 535
    time.sleep(0.1)
    reply, _took, sock = greet(server, "127.0.0.6", "submission")
    sock.close()
    assert reply.startswith("421 4.7.0 ") and "authentication failures" in reply, reply


def test_exempt_and_trusted_clients_are_never_limited(server: dict[str, Any]) -> None:
    for source in ("127.0.0.1", "127.0.0.7"):
        for _ in range(15):
            reply, took, sock = greet(server, source)
            sock.close()
            assert reply.startswith("220 "), (source, reply, took)


def test_user_outbound_limit_list_and_clear(server: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    srv = server["srv"]
    queued = len(srv.queue.items)

    hosts = iter(range(1, 100))

    def submit(rcpt: str) -> tuple[int, bytes]:
        # One address each: the per-IP message limit (4) is not what this test is about.
        source = f"127.0.6.{next(hosts)}"
        with smtplib.SMTP("127.0.0.1", _port(server, "submission"), source_address=(source, 0),
                          timeout=10) as c:
            c.ehlo("laptop.example")
            c.login("ann@example.test", "correct horse")
            c.mail("ann@example.test")
            code, text = c.rcpt(rcpt)
            if code == 250:
                c.data(b"Subject: out\r\n\r\nhello\r\n")
            return code, text

    for i in range(3):
        assert submit(f"friend{i}@remote.example")[0] == 250
    assert len(srv.queue.items) == queued + 3
    # Local recipients do not count against the remote limit.
    assert submit("joe@example.test")[0] == 250
    code, text = submit("friend9@remote.example")
    assert (code, text[:5]) == (450, b"4.7.0"), (code, text)
    assert len(srv.queue.items) == queued + 3
    time.sleep(1.2)  # the server writes its counts every second (postroom.abuse.counters)
    out = cli(server, capsys, "list")
    assert "user:remote_recipients:ann@example.test  3/3 per 1h  OVER" in out, out
    assert "127.0.0.2" in out  # the connection flood of the first test, over its limit
    assert "cleared 4 key(s)" in cli(server, capsys, "clear", "ann@example.test")
    assert "ann@example.test" not in cli(server, capsys, "list", "--all")
    time.sleep(1.2)  # ... and reads them back as often
    assert submit("friend9@remote.example")[0] == 250


def test_counters_survive_a_restart(server: dict[str, Any]) -> None:
    reply, _took, sock = greet(server, "127.0.0.2")
    sock.close()
    assert reply.startswith("421 "), reply
    server["srv"].stop()
    server["srv"] = _start(server["root"], first=False)
    reply, _took, sock = greet(server, "127.0.0.2")
    sock.close()
    assert reply.startswith("421 4.7.0 "), reply
    reply, _took, sock = greet(server, "127.0.9.9")
    sock.close()
    assert reply.startswith("220 "), reply


def test_cli_usage_errors(server: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    cfg = str(server["root"] / "postroom.toml")
    assert main(["-c", cfg, "ratelimit", "clear"]) == 2
    assert main(["-c", cfg, "ratelimit", "clear", "192.0.2.1", "--all"]) == 2
    assert "give a KEY or --all" in capsys.readouterr().err
    assert "cleared 0 key(s)" in cli(server, capsys, "clear", "198.51.100.99")
