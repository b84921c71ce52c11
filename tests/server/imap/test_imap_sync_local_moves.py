"""mbsync and offlineimap carry moves made in the local Maildir to the server (issue #14:
"changes on both sides (new, flag changes, expunges, moves)"; test_imap_sync_clients.py moves on
the server only).

A mail program moves a message between Maildir folders by writing it under a new name in the
target folder and removing the old file (the old name carries the source folder's UID, which
means nothing in the target). The sync clients see a deletion in one folder and a new message in
another: the server must end with the message in the target mailbox only, its flags kept, and
the next round must change nothing.
"""

from __future__ import annotations

import pytest
from imap_harness import msg
from test_imap_sync_clients import CLIENTS, find_local, start_sync

pytestmark = pytest.mark.slow


def move_local(local, name: str, src: str, dst: str) -> None:
    """Move ``name``'s file from ``src`` to ``dst`` the way a mail program does."""
    p = find_local(local, src, name)
    info = p.name.split(":2,", 1)[1] if ":2," in p.name else ""
    (local / dst / "cur" / f"1700000001.moved-{name}.host:2,{info}").write_bytes(p.read_bytes())
    p.unlink()


@pytest.mark.parametrize("client", sorted(CLIENTS))
def test_local_moves_reach_the_server(srv, tmp_path, client):
    acc, local, sync, check = start_sync(srv, tmp_path, client)

    c = srv.imaplib(acc)
    assert c.create("Projects")[0] == "OK"
    c.logout()
    for i in range(4):
        srv.deliver(acc, msg(f"m{i}"), flags=frozenset({"\\Flagged"}) if i % 2 == 0 else frozenset())
    srv.deliver(acc, msg("p0"), mailbox="Projects", flags=frozenset({"\\Seen"}))
    spec = {"INBOX": {"m0": {"\\Flagged"}, "m1": set(), "m2": {"\\Flagged"}, "m3": set()},
            "Projects": {"p0": {"\\Seen"}}}
    sync()
    check(spec)

    # Local moves both ways (flags kept), while the server moves another message.
    move_local(local, "m0", "INBOX", "Projects")
    move_local(local, "p0", "Projects", "INBOX")
    c = srv.imaplib(acc, select="INBOX")
    _, data = c.uid("SEARCH", "HEADER", "Message-ID", "<m3@outside.test>")
    assert c.uid("MOVE", data[0].decode(), "Projects")[0] == "OK"
    c.logout()
    spec["Projects"]["m0"] = spec["INBOX"].pop("m0")
    spec["INBOX"]["p0"] = spec["Projects"].pop("p0")
    spec["Projects"]["m3"] = spec["INBOX"].pop("m3")
    sync()
    check(spec)
    sync()  # a quiet round changes nothing
    check(spec)
