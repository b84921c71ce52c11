"""Junk training: IMAP COPY/MOVE into and out of Junk teach a real rspamd (tests/rspamdpeer.py).

The evidence is rspamd's own: its controller's /stat counts the learns per statfile
(BAYES_SPAM, BAYES_HAM). One Postroom (SMTP + IMAP) and one rspamd per module.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import time
from collections.abc import Callable, Iterator

import pytest
from imapclient import IMAPClient
from rspamdpeer import Rspamd, hung_http, start_or_skip
from scanner_harness import smtp_harness, start_server

from postroom.abuse import rspamd

VOCABULARY = ("quarterly", "report", "river", "water", "quality", "improved", "oxygen", "levels",
              "near", "old", "mill", "volunteers", "counted", "herons", "otters", "kingfishers",
              "surprising", "number", "dragonflies", "meadow", "orchard", "harvest", "apples", "pears",
              "bicycle", "repair", "workshop", "library", "opening", "hours", "committee", "budget",
              "village", "fence", "hedge", "parking", "rota", "evening", "hall", "concert", "choir",
              "rehearsal", "bakery", "bread", "delivery", "tuesday", "thursday")


def words(tag: str) -> str:
    """A body of its own per message: rspamd's learn cache knows a message by its tokens,
    so two messages that differ by one word would count as one."""
    rnd = random.Random(tag)
    return " ".join(rnd.sample(VOCABULARY, 30))


@pytest.fixture(scope="module")
def peer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rspamd]:
    r = start_or_skip(tmp_path_factory.mktemp("rspamd"))
    yield r
    r.stop()


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory, peer: Rspamd):  # type: ignore[no-untyped-def]
    s = start_server(tmp_path_factory, f'[rspamd]\ncontroller_url = "{peer.controller_url}"\n'
                                       f'password = "{peer.password}"\ntimeout = "10s"\n'
                                       '[listeners.imap]\naddress = "127.0.0.1:0"\n'
                                       '[imap]\nallow_plaintext_auth = true\n')
    yield s
    s.stop()


@pytest.fixture
def settings(srv):  # type: ignore[no-untyped-def]
    original = rspamd.settings_for(srv.ctx)

    def change(**kw: object) -> None:
        srv.ctx.state["rspamd"] = dataclasses.replace(original, **kw)
    yield change
    srv.ctx.state["rspamd"] = original


def put(srv, user: str, box: str, tag: str) -> None:  # type: ignore[no-untyped-def]
    """A message stored straight into ``box`` (no IMAP, so nothing is learnt yet)."""
    raw = (f"From: <friend@remote.example>\r\nTo: <{user}@example.test>\r\nSubject: {tag}\r\n"
           f"Message-ID: <{tag}.{time.monotonic_ns()}@remote.example>\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\n"
           f"\r\n{tag} {words(tag)} {tag}\r\n").encode()

    async def go() -> None:
        acct = await srv.ctx.store.get_account(f"{user}@example.test")
        await srv.ctx.store.append(acct.id, box, raw)
    srv.call(go())


def login(srv, user: str = "joe") -> IMAPClient:  # type: ignore[no-untyped-def]
    c = IMAPClient("127.0.0.1", srv.ports["imap"], ssl=False, timeout=30)
    c.login(f"{user}@example.test", smtp_harness().PASSWORD)
    return c


def uid_of(c: IMAPClient, tag: str) -> int:
    uids = c.search(["SUBJECT", tag])
    assert len(uids) == 1, (tag, uids)
    return int(uids[0])


def wait_for(check: Callable[[], bool], timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return check()


def test_move_into_junk_learns_spam_and_out_learns_ham(srv, peer) -> None:  # type: ignore[no-untyped-def]
    put(srv, "joe", "INBOX", "trainmove")
    before = peer.learns()
    with login(srv) as c:
        c.select_folder("INBOX")
        c.move([uid_of(c, "trainmove")], "Junk")
        assert wait_for(lambda: peer.learns().get("BAYES_SPAM", 0) == before.get("BAYES_SPAM", 0) + 1)
        c.select_folder("Junk")
        mid = peer.learns()
        c.move([uid_of(c, "trainmove")], "Archive")
        # The same message relearnt as ham: rspamd moves it from one statfile to the other.
        assert wait_for(lambda: peer.learns().get("BAYES_HAM", 0) == mid.get("BAYES_HAM", 0) + 1)


def test_copy_and_uid_copy_into_junk_learn_spam(srv, peer) -> None:  # type: ignore[no-untyped-def]
    put(srv, "joe", "INBOX", "traincopy1")
    put(srv, "joe", "INBOX", "traincopy2")
    before = peer.learns().get("BAYES_SPAM", 0)
    with login(srv) as c:
        c.select_folder("INBOX")
        c.use_uid = False
        seq = c.search(["SUBJECT", "traincopy1"])
        c.copy(seq, "Junk")  # plain COPY with a sequence number
        c.use_uid = True
        c.copy([uid_of(c, "traincopy2")], "Junk")  # UID COPY
    assert wait_for(lambda: peer.learns().get("BAYES_SPAM", 0) == before + 2)


def test_junk_to_trash_and_append_into_junk_learn_nothing(srv, peer) -> None:  # type: ignore[no-untyped-def]
    put(srv, "joe", "Junk", "traintrash")
    before = peer.learns()
    with login(srv) as c:
        body = words("trainappend")
        c.append("Junk", f"From: <x@remote.example>\r\nSubject: trainappend\r\n\r\ntrainappend {body}\r\n".encode())
        c.select_folder("Junk")
        c.move([uid_of(c, "traintrash")], "Trash")
        # A move that does teach, after the two that must not: when its learn shows, the
        # earlier ones (started first, each one message) have had their chance.
        put(srv, "joe", "INBOX", "trainafter")
        c.select_folder("INBOX")
        c.move([uid_of(c, "trainafter")], "Junk")
    assert wait_for(lambda: peer.learns().get("BAYES_SPAM", 0) == before.get("BAYES_SPAM", 0) + 1)
    time.sleep(0.5)
    after = peer.learns()
    assert after.get("BAYES_SPAM", 0) == before.get("BAYES_SPAM", 0) + 1
    assert after.get("BAYES_HAM", 0) == before.get("BAYES_HAM", 0)


def test_special_use_junk_is_found_under_another_name(srv, peer) -> None:  # type: ignore[no-untyped-def]
    async def setup() -> None:
        acct = await srv.ctx.store.get_account("ann@example.test")
        # ann's spam folder is "Spam" with \Junk; "Junk" itself is an ordinary folder then.
        await srv.ctx.store.delete_mailbox(acct.id, "Junk")
        await srv.ctx.store.create_mailbox(acct.id, "Spam", special_use="\\Junk")
        await srv.ctx.store.create_mailbox(acct.id, "Junk")
    srv.call(setup())
    put(srv, "ann", "INBOX", "trainspecial")
    put(srv, "ann", "INBOX", "trainnotjunk")
    before = peer.learns().get("BAYES_SPAM", 0)
    with login(srv, "ann") as c:
        c.select_folder("INBOX")
        c.move([uid_of(c, "trainnotjunk")], "Junk")
        c.move([uid_of(c, "trainspecial")], "Spam")
    assert wait_for(lambda: peer.learns().get("BAYES_SPAM", 0) == before + 1)
    time.sleep(0.5)
    assert peer.learns().get("BAYES_SPAM", 0) == before + 1


@pytest.fixture
def hung_controller() -> Iterator[str]:
    with hung_http() as url:
        yield url


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def test_imap_reply_never_waits_for_rspamd(srv, settings, hung_controller) -> None:  # type: ignore[no-untyped-def]
    settings(controller_url=hung_controller, timeout=1.0)
    log = Lines()
    logging.getLogger("postroom.abuse").addHandler(log)
    if logging.getLogger("postroom.abuse").getEffectiveLevel() > logging.WARNING:
        pytest.skip("postroom's log level hides warnings")
    put(srv, "joe", "INBOX", "trainhung")
    with login(srv) as c:
        c.select_folder("INBOX")
        started = time.monotonic()
        c.move([uid_of(c, "trainhung")], "Junk")
        assert time.monotonic() - started < 0.9  # the learn request waits 1 s for its timeout
        c.noop()
    try:
        # The failure reaches the server's log, never the client (its MOVE said OK).
        assert wait_for(lambda: any("learnspam for joe@example.test uid" in line and "failed" in line
                                    for line in log.lines), timeout=10)
    finally:
        logging.getLogger("postroom.abuse").removeHandler(log)
