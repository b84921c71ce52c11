"""The Host delivery gives the engine (postroom.sieve.host), asked from a worker thread as
the engine asks it, against the running server's store."""

from __future__ import annotations

import asyncio
import threading
from email.message import Message
from email.parser import HeaderParser

import pytest
from sieve_server_harness import DOMAIN

from postroom.sieve.api import SieveRuntimeError
from postroom.sieve.host import (
    DeliveryHost,
    environment_items,
    spam_score_of,
    virus_score_of,
)


def headers(text: str) -> Message:
    return HeaderParser().parsestr(text + "\n")


@pytest.mark.parametrize(("text", "score"), [
    ("X-Spam-Score: 5.3", "5.3"),
    ("X-Spam-Status: Yes, score=7.1 required=5.0 tests=BAYES_99", "7.1"),
    ("X-Spam-Status: No, score=-0.2 required=5.0", "-0.2"),
    ("X-Spamd-Result: default: False [2.50 / 15.00];", "2.50"),
    ("X-Spam-Status: garbled", None),
    ("Subject: nothing here", None),
])
def test_spam_score_from_the_scanner_headers(text, score):
    assert spam_score_of(headers(text)) == score


def test_virus_score_from_the_scanner_headers():
    assert virus_score_of(headers("X-Virus-Status: Infected (Eicar)")) == "Infected (Eicar)"
    assert virus_score_of(headers("X-Virus-Score: 5\nX-Virus-Status: Clean")) == "5"
    assert virus_score_of(headers("Subject: x")) is None


def ask(net, user: str, fn_name: str, *args):  # type: ignore[no-untyped-def]
    """Call a Host method the way the engine does: on a worker thread, the loop free."""
    srv, _ = net

    async def go():  # type: ignore[no-untyped-def]
        loop = asyncio.get_running_loop()
        boxes = await srv.ctx.store.list_mailboxes(srv.ids[user])
        host = DeliveryHost(loop=loop, store=srv.ctx.store, account_id=srv.ids[user], mailboxes=boxes,
                            environment_items=environment_items(domain=DOMAIN, host=f"mx.{DOMAIN}",
                                                                remote_host="client.test", remote_ip="192.0.2.7"),
                            headers=headers("X-Spam-Score: 3"), global_dir=srv.root / "sieve" / "global",
                            _loop_thread=threading.get_ident())
        return await loop.run_in_executor(None, getattr(host, fn_name), *args)
    return srv.call(go())


def test_mailboxes_and_special_uses(net):
    assert ask(net, "tom", "mailbox_exists", "Archive")
    assert ask(net, "tom", "mailbox_exists", "inbox")
    assert not ask(net, "tom", "mailbox_exists", "Nope")
    assert ask(net, "tom", "special_use_exists", None, ["\\Junk", "\\Sent"])
    assert ask(net, "tom", "special_use_exists", "Junk", ["\\junk"])
    assert not ask(net, "tom", "special_use_exists", "Archive", ["\\Junk"])
    assert not ask(net, "tom", "special_use_exists", None, ["\\Flagged"])


def test_include_personal_and_global_scripts(net):
    srv, _ = net
    srv.call(srv.ctx.store.put_sieve_script(srv.ids["tom"], "common", "keep;"))
    (srv.root / "sieve" / "global" / "spam.sieve").write_text("discard;")
    assert ask(net, "tom", "include", "common", False) == "keep;"
    assert ask(net, "tom", "include", "missing", False) is None
    assert ask(net, "tom", "include", "spam", True) == "discard;"
    for bad in ("../postroom", ".hidden", "a/b", "a\\b"):
        assert ask(net, "tom", "include", bad, True) is None


def test_environment_scores_metadata(net):
    assert ask(net, "tom", "environment", "location") == "MDA"
    assert ask(net, "tom", "environment", "phase") == "during"
    assert ask(net, "tom", "environment", "name") == "Postroom"
    assert ask(net, "tom", "environment", "remote-ip") == "192.0.2.7"
    assert ask(net, "tom", "environment", "host") == f"mx.{DOMAIN}"
    assert ask(net, "tom", "environment", "no-such-item") is None
    assert ask(net, "tom", "spam_score") == "3"
    assert ask(net, "tom", "metadata", None, "/private/comment") is None


def test_metadata_from_the_imap_metadata_store(net):
    srv, _ = net
    archive = srv.call(srv.ctx.store.get_mailbox(srv.ids["tom"], "Archive"))
    srv.call(srv.ctx.store.set_metadata(srv.ids["tom"], None, {"/private/vendor/x": b"server value"}))
    srv.call(srv.ctx.store.set_metadata(srv.ids["tom"], archive.id, {"/private/comment": b"old mail"}))
    assert ask(net, "tom", "metadata", None, "/private/vendor/x") == "server value"
    assert ask(net, "tom", "metadata", "Archive", "/private/comment") == "old mail"
    assert ask(net, "tom", "metadata", "Archive", "/private/other") is None
    assert ask(net, "tom", "metadata", "Nope", "/private/comment") is None
    assert ask(net, "tom", "metadata", "Junk", "/private/specialuse") == "\\Junk"
    assert ask(net, "tom", "metadata", None, "not an entry") is None


def test_store_questions_on_the_event_loop_fail_cleanly(net):
    srv, _ = net

    async def go() -> None:
        host = DeliveryHost(loop=asyncio.get_running_loop(), store=srv.ctx.store, account_id=srv.ids["tom"],
                            mailboxes=[], environment_items={}, headers=Message(),
                            _loop_thread=threading.get_ident())
        with pytest.raises(SieveRuntimeError):
            host.include("common", False)
    srv.call(go())
