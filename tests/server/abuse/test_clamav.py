"""ClamAV at the end of DATA, against a real clamd (tests/clamdpeer.py) over loopback.

One Postroom and one clamd per module. The configured scanner is clamd's Unix socket;
tests that need other settings (TCP, ``accept``, a hung scanner, small ``max_size``)
swap the parsed settings the server caches in ``ctx.state`` for the length of the test.
"""

from __future__ import annotations

import base64
import dataclasses
import logging
import smtplib
import socket
import threading
import time
from collections.abc import Iterator

import pytest
from clamdpeer import EICAR, SIGNATURE, Clamd
from scanner_harness import smtp_harness, start_server

from postroom.abuse import clamav

SENDER = "someone@remote.example"


def message(attachment: bytes | None = None, subject: str = "scan me", extra: str = "") -> bytes:
    head = (f"From: <{SENDER}>\r\nTo: <joe@example.test>\r\nSubject: {subject}\r\n{extra}"
            "Date: Mon, 23 Nov 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n")
    if attachment is None:
        return (head + "Content-Type: text/plain\r\n\r\nNothing to see here.\r\n").encode()
    b64 = base64.encodebytes(attachment).replace(b"\n", b"\r\n")
    return (head + "Content-Type: multipart/mixed; boundary=BND\r\n\r\n--BND\r\nContent-Type: text/plain\r\n\r\n"
            "See attached.\r\n--BND\r\nContent-Type: application/octet-stream\r\n"
            "Content-Disposition: attachment; filename=\"report.dat\"\r\nContent-Transfer-Encoding: base64\r\n\r\n"
            ).encode() + b64 + b"--BND--\r\n"


@pytest.fixture(scope="module")
def clamd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Clamd]:
    c = Clamd(tmp_path_factory.mktemp("clamd")).start()
    yield c
    c.stop()


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory, clamd: Clamd):  # type: ignore[no-untyped-def]
    s = start_server(tmp_path_factory, f'[clamav]\nsocket = "{clamd.unix}"\ntimeout = "5s"\n')
    yield s
    s.stop()


@pytest.fixture
def settings(srv):  # type: ignore[no-untyped-def]
    """Call with keyword changes to [clamav] for this test; restored afterwards."""
    original = clamav.settings_for(srv.ctx)

    def change(**kw: object) -> None:
        srv.ctx.state["clamav"] = dataclasses.replace(original, **kw)
    yield change
    srv.ctx.state["clamav"] = original


def send(srv, msg: bytes, port: str = "smtp") -> tuple[int, str]:  # type: ignore[no-untyped-def]
    """(code, text) of the reply to DATA."""
    with smtplib.SMTP("127.0.0.1", srv.ports[port], timeout=30) as c:
        c.ehlo("client.example")
        c.mail(SENDER)
        c.rcpt("joe@example.test")
        code, text = c.data(msg)
        return code, text.decode()


def last_for_joe(srv, subject: str) -> bytes:  # type: ignore[no-untyped-def]
    for m in reversed(srv.inbox("joe")):
        if f"Subject: {subject}\r\n".encode() in m:
            return m
    raise AssertionError(f"no message {subject!r} in joe's INBOX")


def head(m: bytes) -> str:
    return m.split(b"\r\n\r\n", 1)[0].decode()


def test_eicar_is_rejected_at_data(srv) -> None:  # type: ignore[no-untyped-def]
    before = len(srv.inbox("joe"))
    code, text = send(srv, message(EICAR, "eicar"))
    assert code == 550
    assert text == f"5.7.1 Message contains a virus ({SIGNATURE}.UNOFFICIAL)"
    assert len(srv.inbox("joe")) == before


def test_clean_message_is_delivered_with_its_status(srv) -> None:  # type: ignore[no-untyped-def]
    code, _ = send(srv, message(b"just some bytes\x00\x01", "clean-unix"))
    assert code == 250
    h = head(last_for_joe(srv, "clean-unix"))
    assert "\r\nX-Virus-Scanned: ClamAV on mx.example.test\r\n" in h
    assert "\r\nX-Virus-Status: Clean\r\n" in h


def test_over_tcp_and_forged_status_removed(srv, clamd, settings) -> None:  # type: ignore[no-untyped-def]
    settings(socket=clamd.tcp)
    forged = "X-Virus-Status: Clean\r\nX-Virus-Scanned: by\r\n  the sender\r\n"
    assert send(srv, message(EICAR, "eicar-tcp", forged))[0] == 550
    assert send(srv, message(None, "clean-tcp", forged))[0] == 250
    h = head(last_for_joe(srv, "clean-tcp"))
    assert h.count("X-Virus-Status:") == 1 and h.count("X-Virus-Scanned:") == 1
    assert "the sender" not in h


def test_submission_is_scanned_too_unless_listeners_say_otherwise(srv, settings) -> None:  # type: ignore[no-untyped-def]
    h = smtp_harness()
    with smtplib.SMTP("127.0.0.1", srv.ports["submission"], timeout=30) as c:
        c.starttls(context=h.client_tls())
        c.login("joe@example.test", h.PASSWORD)
        c.mail("joe@example.test")
        c.rcpt("joe@example.test")
        code, text = c.data(message(EICAR, "eicar-submitted"))
    assert (code, text.decode()) == (550, f"5.7.1 Message contains a virus ({SIGNATURE}.UNOFFICIAL)")
    settings(listeners=("submission",))
    assert send(srv, message(EICAR, "eicar-unlisted"))[0] == 250  # port 25 is not in the list
    h = head(last_for_joe(srv, "eicar-unlisted"))
    assert "X-Virus-" not in h


def test_larger_than_max_size_is_delivered_unscanned(srv, settings) -> None:  # type: ignore[no-untyped-def]
    settings(max_size=1000)
    assert send(srv, message(EICAR + b"x" * 2000, "too-big"))[0] == 250
    assert "\r\nX-Virus-Status: Unscanned (too large)\r\n" in head(last_for_joe(srv, "too-big"))


def test_over_clamds_stream_limit_is_delivered_unscanned(srv) -> None:  # type: ignore[no-untyped-def]
    # clamdpeer sets StreamMaxLength 100K: clamd answers "INSTREAM size limit exceeded".
    assert send(srv, message(b"y" * 90_000, "over-clamd-limit"))[0] == 250
    assert "\r\nX-Virus-Status: Unscanned (too large)\r\n" in head(last_for_joe(srv, "over-clamd-limit"))


class Recorder(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def test_clamd_killed_mid_test_tempfails_or_accepts(srv, clamd, settings) -> None:  # type: ignore[no-untyped-def]
    assert send(srv, message(None, "before-kill"))[0] == 250
    clamd.kill()
    warnings = Recorder()
    logging.getLogger("postroom.abuse").addHandler(warnings)
    try:
        before = len(srv.inbox("joe"))
        code, text = send(srv, message(EICAR, "while-down"))
        assert (code, text) == (451, "4.7.1 Virus scanner unavailable, try again later")
        assert len(srv.inbox("joe")) == before  # nothing delivered unscanned
        settings(on_error="accept")
        assert send(srv, message(None, "accepted-unscanned", "X-Virus-Status: Clean\r\n"))[0] == 250
        h = head(last_for_joe(srv, "accepted-unscanned"))
        assert "\r\nX-Virus-Status: Unscanned (scanner unavailable)\r\n" in h
        assert "Clean" not in h and "X-Virus-Scanned" not in h
        # Both outcomes are logged at warning level, with the reason and the action.
        assert len([w for w in warnings.lines if "clamav:" in w and "clamd.sock" in w]) == 2, warnings.lines
        assert "on_error=tempfail" in warnings.lines[0] and "on_error=accept" in warnings.lines[-1]
    finally:
        logging.getLogger("postroom.abuse").removeHandler(warnings)
        clamd.start()
    assert send(srv, message(EICAR, "after-restart"))[0] == 550


@pytest.fixture
def hung_scanner() -> Iterator[str]:
    """A TCP server that accepts and reads but never answers: a wedged clamd."""
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(8)
    held: list[socket.socket] = []
    stop = threading.Event()

    def run() -> None:
        lsock.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = lsock.accept()
            except OSError:
                continue
            held.append(conn)
            conn.settimeout(0.2)
            while not stop.is_set():
                try:
                    if not conn.recv(65536):
                        break
                except TimeoutError:
                    continue
                except OSError:
                    break
    t = threading.Thread(target=run, daemon=True)
    t.start()
    yield f"127.0.0.1:{lsock.getsockname()[1]}"
    stop.set()
    t.join(5)
    for c in held:
        c.close()
    lsock.close()


def test_hung_scanner_hits_the_timeout(srv, settings, hung_scanner) -> None:  # type: ignore[no-untyped-def]
    settings(socket=hung_scanner, timeout=1.0)
    started = time.monotonic()
    assert send(srv, message(None, "hung"))[0] == 451
    assert 0.9 < time.monotonic() - started < 10
    settings(socket=hung_scanner, timeout=1.0, on_error="accept")
    assert send(srv, message(None, "hung-accepted"))[0] == 250
    assert "X-Virus-Status: Unscanned (scanner unavailable)" in head(last_for_joe(srv, "hung-accepted"))


def test_nothing_listening_tempfails_fast(srv, settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings(socket=f"unix:{tmp_path}/no-such.sock")
    started = time.monotonic()
    assert send(srv, message(None, "no-socket"))[0] == 451
    assert time.monotonic() - started < 5
