"""The delivery stage's per-process state (issue #15, Sieve cheap at delivery): what a run
needs that does not depend on the message is worked out once per combination of scripts
(``delivery._prepared``), the environment items once per client, the mailbox names taken
from the store's kept answer. None of it may show: an edited script, admin script or
client is seen by the very next delivery, a broken script still keeps mail with one log
line naming it, and ``fileinto :create`` still makes what is missing. Mail goes in over
SMTP to the real server; the result is read from its store."""

from __future__ import annotations

import hashlib
import logging
import smtplib

from sieve_server_harness import DOMAIN, REMOTE

from postroom.sieve import delivery
from postroom.sieve.api import Limits, Vacation
from postroom.sieve.delivery import vacation_handle


def send(srv, user: str, subject: str, helo: str = "client.remote.test") -> None:  # type: ignore[no-untyped-def]
    msg = (f"From: Pal <pal@{REMOTE}>\r\nTo: {user}@{DOMAIN}\r\nSubject: {subject}\r\n"
           f"Message-ID: <{subject.replace(' ', '-')}@{REMOTE}>\r\n\r\nbody of {subject}\r\n")
    with smtplib.SMTP("127.0.0.1", srv.ports["smtp"], local_hostname=helo, timeout=10) as s:
        s.sendmail(f"pal@{REMOTE}", [f"{user}@{DOMAIN}"], msg.encode())


def subjects(srv, user: str, mailbox: str = "INBOX") -> list[str]:  # type: ignore[no-untyped-def]
    return [line.split(b": ", 1)[1].decode() for raw in srv.mailbox(user, mailbox)
            for line in raw.split(b"\r\n") if line.startswith(b"Subject: ")]


def test_an_edited_script_runs_from_the_next_delivery(net):
    srv, _ = net
    srv.put_script("joe", 'require ["fileinto", "mailbox"];\nfileinto :create "First";')
    send(srv, "joe", "one")
    send(srv, "joe", "two")
    srv.put_script("joe", 'require ["fileinto", "mailbox"];\nfileinto :create "Second";')
    send(srv, "joe", "three")
    srv.put_script("joe", 'require ["fileinto", "mailbox"];\nfileinto :create "First";')  # back again
    send(srv, "joe", "four")
    assert subjects(srv, "joe", "First") == ["one", "two", "four"]
    assert subjects(srv, "joe", "Second") == ["three"]
    assert subjects(srv, "joe") == []


def test_admin_scripts_join_and_leave_the_prepared_run(net):
    srv, _ = net
    srv.put_script("ann", 'require ["fileinto", "mailbox"];\nfileinto :create "Mine";')
    try:
        send(srv, "ann", "alone")
        srv.before.write_text('require ["fileinto", "copy", "mailbox"];\nfileinto :copy :create "Audit";\n')
        send(srv, "ann", "audited")
        srv.before.write_text("")
        send(srv, "ann", "alone again")
    finally:
        srv.before.write_text("")
    assert subjects(srv, "ann", "Mine") == ["alone", "audited", "alone again"]
    assert subjects(srv, "ann", "Audit") == ["audited"]


def test_a_script_that_does_not_compile_is_named_each_time_and_mail_is_kept(net, caplog):
    srv, _ = net
    srv.put_script("bob", 'require "fileinto";\nfileinto "Work"\nnot sieve at all\n', name="broken")
    srv.after.write_text('require "nonsense-extension";\n')
    try:
        with caplog.at_level(logging.WARNING, logger="postroom.sieve"):
            send(srv, "bob", "kept one")
            send(srv, "bob", "kept two")  # nothing of a failed compile is kept: named again
    finally:
        srv.after.write_text("")
    assert subjects(srv, "bob") == ["kept one", "kept two"]
    lines = [r.getMessage() for r in caplog.records if "bob@" in r.getMessage()]
    assert len(lines) == 2
    assert all("script=broken" in line and "implicit keep" in line for line in lines)
    # The user's script fixed: now the admin "after" script is the one at fault... until it is gone.
    srv.put_script("bob", 'require "fileinto";\nif header :contains "subject" "x" { fileinto "Work"; }\n',
                   name="broken")
    srv.after.write_text('require "nonsense-extension-two";\n')
    try:
        with caplog.at_level(logging.WARNING, logger="postroom.sieve"):
            caplog.clear()
            send(srv, "bob", "kept three")
    finally:
        srv.after.write_text("")
    lines = [r.getMessage() for r in caplog.records if "bob@" in r.getMessage()]
    assert len(lines) == 1 and "script=after" in lines[0]
    send(srv, "bob", "kept four")
    assert subjects(srv, "bob") == ["kept one", "kept two", "kept three", "kept four"]


def test_fileinto_create_makes_missing_mailboxes_though_the_names_are_kept(net):
    srv, _ = net
    srv.put_script("carl", 'require ["fileinto", "mailbox", "copy"];\n'
                           'fileinto :copy :create "Deep/One";\nfileinto :create "Deep/Two";\n')
    send(srv, "carl", "first")  # both missing: made (with their parent) in one delivery
    send(srv, "carl", "second")  # both there now: filed without being made again

    async def state() -> tuple[set[str], list[str]]:
        # (list_mailboxes, not the SQLite store's kept names: the test runs on PostgreSQL too)
        store = srv.ctx.store
        boxes = await store.list_mailboxes(srv.ids["carl"])
        return {m.name for m in boxes}, await store.list_subscriptions(srv.ids["carl"])
    names, subscribed = srv.call(state())
    assert {"Deep", "Deep/One", "Deep/Two"} <= names
    assert {"Deep", "Deep/One", "Deep/Two"} <= set(subscribed)
    assert subjects(srv, "carl", "Deep/One") == ["first", "second"]
    assert subjects(srv, "carl", "Deep/Two") == ["first", "second"]
    assert subjects(srv, "carl") == []


def test_each_client_sees_its_own_environment(net):
    srv, _ = net
    srv.put_script("dora", 'require ["fileinto", "mailbox", "environment", "variables"];\n'
                           'if environment :matches "remote-host" "*" { fileinto :create "From/${1}"; }\n')
    send(srv, "dora", "from one", helo="one.remote.test")
    send(srv, "dora", "from two", helo="two.remote.test")
    send(srv, "dora", "one again", helo="one.remote.test")
    assert subjects(srv, "dora", "From/one.remote.test") == ["from one", "one again"]
    assert subjects(srv, "dora", "From/two.remote.test") == ["from two"]


def test_the_prepared_run_is_made_once_per_scripts_and_limits():
    text = 'require ["fileinto", "mailbox"];\nif mailboxexists "x" { fileinto "x"; }\n'
    limits = Limits()
    run = delivery._prepared((None, ("mine", text), None), limits)
    assert delivery._prepared((None, ("mine", text), None), limits) is run
    assert run.label == "mine" and run.mailbox_tests and run.inline and not run.include
    assert delivery._prepared((None, ("mine", text + " "), None), limits) is not run  # edited
    assert delivery._prepared((None, ("mine", text), None), Limits(max_actions=3)) is not run  # other limits
    both = delivery._prepared(("keep;", ("mine", text), "keep;"), limits)
    assert both.label == "before+mine+after"
    assert [(src.label, src.admin) for src, _ in both.scripts] == [("before", True), ("mine", False),
                                                                   ("after", True)]
    worker = delivery._prepared((None, ("mine", 'require "duplicate";\nif duplicate { discard; }'), None), limits)
    assert not worker.inline  # asks the store: run on a worker


def test_the_automatic_vacation_handle_is_the_digest_of_what_the_reply_says():
    v = Vacation(sender=f"pal@{REMOTE}", subject="Away", reason="Back on Monday.", from_="me@x.test")
    want = "auto:" + hashlib.sha256(b"Away\x00me@x.test\x00\x00Back on Monday.").hexdigest()[:24]
    assert vacation_handle(v) == want
    assert vacation_handle(v) == want  # the same from the per-process memo
    other = Vacation(sender=f"pal@{REMOTE}", subject="Away", reason="Back on Tuesday.", from_="me@x.test")
    assert vacation_handle(other) != want
    mime = Vacation(sender=f"pal@{REMOTE}", subject="Away", reason="Back on Monday.", from_="me@x.test", mime=True)
    assert vacation_handle(mime) != want
    assert vacation_handle(Vacation(sender="a@b.test", subject="s", reason="r", handle="mine")) == "mine"
