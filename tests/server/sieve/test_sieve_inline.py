"""Where delivery runs a script (issue #15): cheap scripts on the event loop with a small
time budget, the rest (and any that runs out of that budget or asks the store) on the
worker pool with the full budget. Mail goes in over SMTP to the real server; the result is
read from its store, and the worker pool is counted."""

from __future__ import annotations

import asyncio
import logging
import smtplib
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from sieve_server_harness import DOMAIN, REMOTE, wait_for

from postroom.sieve import delivery
from postroom.sieve.api import SieveRuntimeError
from postroom.sieve.host import DeliveryHost, NeedsWorker


class CountingPool(ThreadPoolExecutor):
    def __init__(self) -> None:
        super().__init__(max_workers=2, thread_name_prefix="test-sieve")
        self.calls = 0

    def submit(self, fn, /, *args, **kwargs):  # type: ignore[no-untyped-def, override]
        self.calls += 1
        return super().submit(fn, *args, **kwargs)


@pytest.fixture
def pool(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    p = CountingPool()
    monkeypatch.setattr(delivery, "_executor", p)
    yield p
    p.shutdown()


def send(srv, user: str, subject: str, msgid: str = "", sender: str = f"pal@{REMOTE}") -> None:  # type: ignore[no-untyped-def]
    msg = (f"From: Pal <{sender}>\r\nTo: {user}@{DOMAIN}\r\nSubject: {subject}\r\n"
           f"Message-ID: <{msgid or subject.replace(' ', '-')}@{REMOTE}>\r\n\r\nbody of {subject}\r\n")
    with smtplib.SMTP("127.0.0.1", srv.ports["smtp"], timeout=10) as s:
        s.sendmail(sender, [f"{user}@{DOMAIN}"], msg.encode())


def subjects(srv, user: str, mailbox: str = "INBOX") -> list[str]:  # type: ignore[no-untyped-def]
    return [line.split(b": ", 1)[1].decode() for raw in srv.mailbox(user, mailbox)
            for line in raw.split(b"\r\n") if line.startswith(b"Subject: ")]


RULES = ('require ["fileinto", "mailbox", "variables", "imap4flags"];\n'
         'if address :domain :is "from" "remote.test" {\n'
         '  if header :matches "subject" "* report" { set "kind" "${1}"; }\n'
         '  fileinto :create :flags "bad(flag" "Reports/${kind}";\n'
         '}\n')


def test_a_cheap_script_runs_on_the_event_loop(net, pool):
    srv, _ = net
    srv.put_script("lou", RULES)
    send(srv, "lou", "weekly report")
    assert subjects(srv, "lou", "Reports/weekly") == ["weekly report"]
    assert pool.calls == 0


def test_over_the_inline_budget_the_run_is_done_again_on_a_worker(net, pool, monkeypatch, caplog):
    srv, _ = net
    monkeypatch.setattr(delivery, "INLINE_SECONDS", -1.0)  # every try on the loop runs out at once
    srv.put_script("max", RULES)
    with caplog.at_level(logging.INFO, logger="postroom.sieve"):
        send(srv, "max", "monthly report")
    assert subjects(srv, "max", "Reports/monthly") == ["monthly report"]
    assert pool.calls == 1
    # The thrown-away try logged nothing: the worker's run logs its notes once.
    notes = [r for r in caplog.records if "ignoring invalid flags" in r.getMessage()]
    assert len(notes) == 1


def test_a_script_that_asks_the_store_runs_on_a_worker(net, pool):
    srv, _ = net
    srv.put_script("ned", 'require ["duplicate", "fileinto", "mailbox"];\n'
                          'if duplicate { fileinto :create "Dupes"; }')
    send(srv, "ned", "first", msgid="same")
    send(srv, "ned", "again", msgid="same")
    assert subjects(srv, "ned") == ["first"]
    assert subjects(srv, "ned", "Dupes") == ["again"]
    assert pool.calls == 2


def test_mailbox_questions_are_answered_on_the_loop_from_the_list_read_first(net, pool):
    srv, _ = net
    srv.call(srv.ctx.store.create_mailbox(srv.ids["olga"], "Projects"))
    srv.put_script("olga", 'require ["mailbox", "fileinto"];\n'
                           'if mailboxexists "Projects" { fileinto "Projects"; }\n'
                           'if mailboxexists "Nope" { fileinto :create "Nope"; }')
    send(srv, "olga", "plan")
    assert subjects(srv, "olga", "Projects") == ["plan"]
    assert subjects(srv, "olga", "Nope") == []
    assert pool.calls == 0


def test_a_host_without_the_mailbox_list_reads_it_only_off_the_loop(net):
    srv, _ = net
    srv.call(srv.ctx.store.create_mailbox(srv.ids["pia"], "Kept"))

    async def go() -> tuple[bool, bool]:
        loop = asyncio.get_running_loop()
        host = DeliveryHost(loop=loop, store=srv.ctx.store, account_id=srv.ids["pia"], mailboxes=None,
                            environment_items={}, _loop_thread=threading.get_ident())
        with pytest.raises(NeedsWorker) as err:
            host.mailbox_exists("Kept")
        assert isinstance(err.value, SieveRuntimeError)
        return await loop.run_in_executor(None, lambda: (host.mailbox_exists("Kept"),
                                                         host.mailbox_exists("Missing")))
    assert srv.call(go()) == (True, False)


def test_vacation_within_the_period_is_answered_once(net):
    srv, sink = net
    srv.put_script("quin", 'require "vacation";\nvacation :days 1 "Away this week.";')
    for i in range(3):
        send(srv, "quin", f"hello {i}", sender=f"friend@{REMOTE}")
    wait_for(lambda: [m for m in sink.messages if b"Away this week." in m], what="vacation reply")
    assert len(subjects(srv, "quin")) == 3
    assert len([m for m in sink.messages if b"Away this week." in m]) == 1

