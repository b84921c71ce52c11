"""bench/imap.py's lean timed client (``LeanImap``) against the real server: it must count
exactly what imaplib parses, skip literals by their size (header text that looks like protocol
must not fool it), send a synchronizing literal after "+", and fail loudly on NO/BAD, so the
bench keeps verifying what it measures."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
from imap_harness import PASSWORD, msg

BENCH = Path(__file__).resolve().parents[3] / "bench"


def _bench_imap():
    """bench/imap.py under a name of its own (``imap`` is also this test directory's name)."""
    if str(BENCH) not in sys.path:
        sys.path.append(str(BENCH))
    spec = importlib.util.spec_from_file_location("bench_imap_client", BENCH / "imap.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


bench = _bench_imap()

# Header text that looks like protocol: a line ending in a literal announcement, a fake
# tagged OK, a fake FETCH line. Inside a literal, all of it is data.
TRICKY = (b"From: a@x.test\r\nSubject: ends like a literal {12}\r\n"
          b"To: L9 OK fake\r\nDate: * 7 FETCH (FLAGS ())\r\n\r\nbody\r\n")


@pytest.fixture(scope="module")
def mailbox(srv):
    acc = srv.new_user()
    for i in range(60):
        srv.deliver(acc, TRICKY if i % 7 == 3 else msg(f"bench {i}"))
    return acc


def _lean(srv, acc):
    c = bench.LeanImap(srv.port)
    c.command(f'LOGIN "{acc.address}" "{PASSWORD}"'.encode())
    c.command(b"SELECT INBOX")
    return c


def test_counts_match_imaplib(srv, mailbox):
    c = _lean(srv, mailbox)
    assert c.exists == 60
    ref = srv.imaplib(mailbox, select="INBOX")
    for a, b in ((1, 50), (3, 3), (11, 60), (1, 60)):
        fetches, literals = c.command(f"FETCH {a}:{b} {bench.FETCH_ITEMS}".encode())
        typ, data = ref.fetch(f"{a}:{b}", bench.FETCH_ITEMS)
        assert typ == "OK"
        parsed = [d for d in data if isinstance(d, tuple)]  # imaplib: (line, literal) per message
        assert fetches == literals == len(parsed) == b - a + 1
    # The bench's own check: one response and one header literal per message of the range.
    bench._lean_op(c, "FETCH", c.exists, bench.random.Random(3), 0)
    ref.logout()
    c.close()


def test_each_operation_runs(srv, mailbox):
    c = _lean(srv, mailbox)
    rnd = bench.random.Random(5)
    for count, op in enumerate(("SELECT", "SEARCH", "STORE", "STORE", "APPEND")):
        bench._lean_op(c, op, c.exists, rnd, count)
    assert c.command(b"NOOP") == (0, 0)
    c.command(b"SELECT INBOX")
    assert c.exists == 61  # the APPEND's synchronizing literal went after the "+"
    c.close()


def test_refusals_raise(srv, mailbox):
    c = _lean(srv, mailbox)
    with pytest.raises(RuntimeError, match="BAD"):
        c.command(b"FETCH 1:2 (NOSUCHITEM)")
    with pytest.raises(RuntimeError, match="NO"):
        c.command(b"SELECT NoSuchMailbox")
    c.close()
