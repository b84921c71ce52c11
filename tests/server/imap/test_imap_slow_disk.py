"""A slow disk must not freeze the other connections (issue #2, "Runtime").

While the store's writer waits seconds for an fsync, sessions that only read (IMAP
NOOP, FETCH, STATUS, SEARCH; SMTP up to RCPT) are answered at once: fsyncs run on the
writer thread and reads on the reader threads, never on the event loop.
"""

from __future__ import annotations

import smtplib
import threading
import time

import pytest
from imap_harness import msg

pytestmark = pytest.mark.sqlite_only("slows the SQLite store's segment fsyncs")

SLOW = 3.0  # seconds each segment fsync takes
PROMPT = 1.0  # what "at once" allows, generous for a loaded test machine


def _timed(fn, *args):
    t0 = time.monotonic()
    out = fn(*args)
    return out, time.monotonic() - t0


def test_sessions_are_answered_while_the_writer_waits_for_a_slow_fsync(srv, monkeypatch):
    from diskfault import slow_segment_syncs

    acc = srv.new_user()
    srv.deliver(acc, msg("already here"))
    reader = srv.imaplib(acc)
    assert reader.select("INBOX")[0] == "OK"  # before the disk slows: SELECT claims \Recent (a write)
    syncing = slow_segment_syncs(monkeypatch, SLOW)

    appended: list[tuple[str, float]] = []

    def append() -> None:
        c = srv.imaplib(acc)
        (typ, _), took = _timed(c.append, "Drafts", None, None, msg("slow to keep"))
        appended.append((typ, took))
        c.logout()

    writer = threading.Thread(target=append)
    writer.start()
    assert syncing.wait(10), "the APPEND never reached the fsync"

    checks = {
        "NOOP": lambda: reader.noop(),
        "FETCH": lambda: reader.fetch("1", "(FLAGS BODY.PEEK[])"),
        "STATUS": lambda: reader.status("Drafts", "(MESSAGES UIDNEXT)"),
        "SEARCH": lambda: reader.search(None, "ALL"),
    }
    for name, check in checks.items():
        (typ, data), took = _timed(check)
        assert typ == "OK", (name, data)
        assert took < PROMPT, f"{name} waited {took:.2f}s behind the fsync"
    with smtplib.SMTP("127.0.0.1", srv.ports["smtp"], timeout=10) as c:
        (code, _), took = _timed(c.ehlo, "client.test")
        assert code == 250 and took < PROMPT
        assert c.mail("someone@remote.test")[0] == 250
        (code, _), took = _timed(c.rcpt, acc.address)
        assert code == 250 and took < PROMPT, f"RCPT waited {took:.2f}s behind the fsync"
        c.rset()
    assert syncing.is_set() and writer.is_alive(), "the checks were not made during the slow fsync"

    writer.join(30)
    [(typ, took)] = appended
    assert typ == "OK" and took >= SLOW
    assert reader.status("Drafts", "(MESSAGES)")[1][0].endswith(b"(MESSAGES 1)")
    reader.logout()
