"""Health endpoints, the request log, keep-alive, and what no well-behaved client sends:
garbage, overlong heads, slow heads, idle connections, a handler that fails."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import pytest
from http_harness import DOMAIN, Harness, read_all


@pytest.fixture
def records() -> Iterator[list[logging.LogRecord]]:
    got: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            got.append(record)

    logger = logging.getLogger("postroom")
    handler, level = Collect(logging.DEBUG), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield got
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def wait_for(pred, timeout: float = 5) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline
        time.sleep(0.02)


def test_healthz(srv: Harness) -> None:
    assert srv.get("/healthz", "anything")[::2] == (200, b"ok\n")
    assert srv.get("/healthz", "anything", tls=True)[::2] == (200, b"ok\n")


def test_readyz(srv: Harness) -> None:
    status, _, body = srv.get("/readyz", "anything", tls=True)
    assert status == 200
    assert body == b"ready\nlisteners: ok\nshutdown: ok\nstore: ok\n"


@pytest.mark.sqlite_only("fakes a failing write probe in the data directory, which only the SQLite store has")
def test_readyz_store_not_writable(srv: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    from postroom.http import app

    def fail(directory: str) -> None:
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(app, "_probe_write", fail)
    srv.server.ctx.state.pop("http.ready", None)  # the 1-second cache
    status, _, body = srv.get("/readyz", "anything")
    assert status == 503 and b"store: not writable" in body
    monkeypatch.undo()
    srv.server.ctx.state.pop("http.ready", None)
    assert srv.get("/readyz", "anything")[0] == 200


def test_one_log_line_per_request(srv: Harness, records: list[logging.LogRecord]) -> None:
    srv.get("/mail/config-v1.1.xml", f"autoconfig.{DOMAIN}", tls=True, headers={"User-Agent": "Thunderbird/128"})
    srv.get("/nothing%7F", "x")  # decoded: a control character to escape
    wait_for(lambda: len([r for r in records if r.name == "postroom.http"]) >= 2)
    lines = [r.getMessage() for r in records if r.name == "postroom.http"]
    assert len(lines) == 2, lines
    assert lines[0].startswith("https[") and " 127.0.0.1 GET /mail/config-v1.1.xml 200 " in lines[0]
    assert f"host=autoconfig.{DOMAIN}" in lines[0] and "ua='Thunderbird/128'" in lines[0]
    assert lines[1].startswith("http[") and " GET /nothing\\x7f 404 " in lines[1]


def test_log_fields_cannot_be_forged_with_spaces(srv: Harness, records: list[logging.LogRecord]) -> None:
    """A decoded path or a Host with spaces must not add fields to the request's log line."""
    srv.get("/x%20200%200%200.1ms%20host=forged.example", "real host=forged2")
    wait_for(lambda: any(r.name == "postroom.http" for r in records))
    [line] = [r.getMessage() for r in records if r.name == "postroom.http"]
    assert " GET /x\\x20200\\x200\\x200.1ms\\x20host=forged.example 404 " in line, line
    assert line.endswith("host=real\\x20host=forged2"), line
    assert line.count(" host=") == 1


def test_keepalive_and_pipelining(srv: Harness) -> None:
    s = srv.raw(tls=True)
    req = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    s.sendall(req * 3 + b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    reply = read_all(s)
    assert reply.count(b"HTTP/1.1 200 OK") == 4 and reply.endswith(b"ok\n")
    s.close()


@pytest.mark.parametrize("data", [
    b"GARBAGE\r\n\r\n",
    b"GET / HTTP/9.9\r\n\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64,  # a TLS hello on the plaintext port
    b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Long: " + b"a" * 10000 + b"\r\n\r\n",
    b"GET /" + b"a" * 10000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
], ids=["garbage", "version", "tls-on-plain", "long-header", "long-target", "two-lengths"])
def test_malformed_requests_get_400(srv: Harness, records: list[logging.LogRecord], data: bytes) -> None:
    s = srv.raw()
    s.sendall(data)
    reply = read_all(s)
    s.close()
    assert reply.split(b"\r\n")[0] in (b"HTTP/1.0 400 Bad Request", b"HTTP/1.1 400 Bad Request"), reply[:100]
    assert b"Traceback" not in reply and b"aiohttp" not in reply
    wait_for(lambda: any(r.name == "postroom.http" for r in records))
    lines = [r.getMessage() for r in records if r.name == "postroom.http"]
    assert len(lines) == 1 and " 400 " in lines[0] and " error=" in lines[0], lines
    assert not [r for r in records if r.exc_info], [r.getMessage() for r in records if r.exc_info]


def test_idle_connection_is_closed(srv: Harness) -> None:
    """Nothing sent: closed after keepalive_timeout (3s here), like a mail listener's idle timeout."""
    s = srv.raw(tls=True)
    t0 = time.monotonic()
    assert read_all(s, limit=15) == b""
    assert 2 < time.monotonic() - t0 < 8
    s.close()


def test_slow_head_is_cut_off(srv: Harness) -> None:
    """A client trickling its request head (slowloris) does not keep the connection."""
    s = srv.raw()
    s.sendall(b"GET /healthz HTTP/1.1\r\n")
    t0 = time.monotonic()
    closed = False
    while time.monotonic() - t0 < 12:
        try:
            s.sendall(b"X-A: b\r\n")
        except OSError:
            closed = True
            break
        s.settimeout(0.5)
        try:
            if s.recv(4096) == b"":
                closed = True
                break
        except TimeoutError:
            pass
    assert closed and time.monotonic() - t0 < 8
    s.close()


def test_handler_failure_is_a_bare_500(srv: Harness, records: list[logging.LogRecord],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from postroom.http import autoconfig

    def broken(*args: object, **kw: object) -> bytes:
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(autoconfig, "render", broken)
    status, _, body = srv.get(f"/mail/config-v1.1.xml?emailaddress=never.asked@{DOMAIN}", f"autoconfig.{DOMAIN}",
                              headers={"Accept": "text/html"})  # aiohttp would make HTML (and in debug, a traceback)
    assert status == 500 and body == b"500 Internal Server Error\n"
    wait_for(lambda: any(r.exc_info for r in records))
    (failed,) = [r for r in records if r.exc_info]
    assert "unexpected error" in failed.getMessage() and failed.exc_info[0] is RuntimeError  # type: ignore[index]
