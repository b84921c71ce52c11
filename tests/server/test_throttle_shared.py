"""Two Postroom nodes on one PostgreSQL database share the login throttle: a client that
fails on node 1 is refused on node 2 (real servers, real imaplib and poplib clients)."""

from __future__ import annotations

import imaplib
import poplib
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from postroom.auth import hash_password
from postroom.config import load

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from cli.serving import make_server_dir
from threaded_runtime import ThreadedRuntime

USER, PW = "alice@example.test", "right"


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory, pg_cluster: Any) -> Iterator[list[ThreadedRuntime]]:
    url = pg_cluster.create_database("throttle_nodes")
    runtimes = []
    for n in (1, 2):
        cfgp = make_server_dir(tmp_path_factory.mktemp(f"node{n}") / "srv")
        text = cfgp.read_text().replace('backend = "sqlite"', f'backend = "postgresql"\nurl = "{url}"')
        text = text.replace("[limits]\n", "[limits]\nauth_failures_per_ip = 3\n")
        text += "\n[imap]\nallow_plaintext_auth = true\n\n[pop3]\nallow_plaintext_auth = true\n"
        cfgp.write_text(text)
        assert load(cfgp).backend == "postgresql"
        runtimes.append(ThreadedRuntime(cfgp))
    try:
        first = runtimes[0]
        first.call(first.store.create_account(USER, hash_password(PW)))
        yield runtimes
    finally:
        for rt in runtimes:
            rt.close()


def _imap_login(rt: ThreadedRuntime, pw: str) -> str:
    with imaplib.IMAP4("127.0.0.1", rt.ports["imap"]) as c:
        try:
            c.login(USER, pw)
        except imaplib.IMAP4.error as exc:
            return str(exc)
        c.logout()
        return "OK"


def test_failures_on_one_node_refuse_on_the_other(nodes: list[ThreadedRuntime]) -> None:
    one, two = nodes
    assert _imap_login(two, PW) == "OK"
    for _ in range(3):
        assert "AUTHENTICATIONFAILED" in _imap_login(one, "wrong")
    # Node 2 has seen no failure itself, yet refuses the right password from this address.
    assert "UNAVAILABLE" in _imap_login(two, PW)
    # POP3 on node 2 too (PASS, and APOP's check before the digest).
    p = poplib.POP3("127.0.0.1", two.ports["pop3"])
    try:
        p.user(USER)
        with pytest.raises(poplib.error_proto, match=r"SYS/TEMP"):
            p.pass_(PW)
    finally:
        p.close()
    p = poplib.POP3("127.0.0.1", two.ports["pop3"])
    try:
        assert re.search(rb"<[^>]+>", p.getwelcome())  # APOP is offered
        with pytest.raises(poplib.error_proto, match=r"SYS/TEMP"):
            p.apop(USER, "any secret")
    finally:
        p.close()
    # The counts are in the database, for both nodes.
    assert one.call(one.server.ctx.auth.throttled("127.0.0.1"))
    assert two.call(two.server.ctx.auth.throttled("127.0.0.1"))
