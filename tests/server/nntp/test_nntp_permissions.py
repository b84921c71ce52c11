"""Greeting 201 and POST 480/440 on a server where anonymous clients may post nowhere."""

from __future__ import annotations

from nntp_harness import Harness, article


def test_greeting_and_post_refusals(srv: Harness) -> None:
    open_read = srv.add_group(read="anyone", post="accounts")
    mine = srv.add_group(read="anyone", post="poster@example.test")
    acc = srv.new_user()
    with srv.client("implicit") as c:
        assert c.greeting[0] == 201  # RFC 3977 §5.1.1: posting prohibited (for now)
        assert b"POST" not in c.cmd_multi("CAPABILITIES")[2]
        assert c.cmd("MODE READER")[0] == 201
        assert c.cmd("POST")[0] == 480  # a login may help
        assert c.cmd(f"GROUP {open_read}")[0] == 211  # reading needs no login here
        assert c.authinfo(acc.address, "secret")[0] == 281
        assert b"POST" in c.cmd_multi("CAPABILITIES")[2]
        assert c.cmd("MODE READER")[0] == 200
        assert c.post(article(open_read, 1))[0] == 240
        assert c.post(article(mine, 2))[0] == 441  # this group names its posters


def test_post_refused_to_account_without_rights(srv: Harness) -> None:
    """An account that may post nowhere gets 440 (a login would not help)."""
    srv.add_group(post="poster@example.test")
    # the groups of the other test accept any account: make them name their posters too
    for info in srv.call(srv.news.list_groups()):
        if info.post == "accounts":
            srv.call(srv.news.set_group(info.name, post="poster@example.test"))
    acc = srv.new_user()
    with srv.login(acc, tls="implicit") as c:
        assert c.cmd("POST")[0] == 440
