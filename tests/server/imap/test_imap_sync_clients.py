"""mbsync (isync) and offlineimap (offlineimap3) keep a local Maildir in sync with Postroom.

Each client runs sync rounds over a small account while both sides change: new messages
(server and local), flag changes (both sides), expunges (both sides) and a MOVE between
mailboxes on the server. After every round the local Maildir (Message-IDs and flags) must
equal the server's state read over imaplib, and both must equal what the changes call for:
nothing lost, nothing duplicated. The clients run with their defaults (offlineimap3 does
not use CONDSTORE/QRESYNC; isync 1.4 neither).
"""

from __future__ import annotations

import email.parser
import re
import shutil
import subprocess
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from imap_harness import PASSWORD, mbsyncrc, msg

pytestmark = pytest.mark.slow

BOXES = ("INBOX", "Projects")
# Maildir info letters and the IMAP flags they stand for (the ones both clients map).
LETTERS = {"D": "\\Draft", "F": "\\Flagged", "R": "\\Answered", "S": "\\Seen", "T": "\\Deleted"}
FLAGS = set(LETTERS.values())

State = dict[str, Counter]  # mailbox -> Counter of (Message-ID, frozenset of flags)


def mid(name: str) -> str:
    return f"<{name}@outside.test>"  # what imap_harness.msg(subject=name) puts in Message-ID


# -- the two sides' states -----------------------------------------------------------------
def local_files(local: Path, box: str) -> list[Path]:
    return [p for sub in ("cur", "new") if (local / box / sub).is_dir() for p in (local / box / sub).iterdir()]


def local_state(local: Path) -> State:
    out: State = {}
    for box in BOXES:
        c: Counter = Counter()
        for p in local_files(local, box):
            hdr = email.parser.BytesHeaderParser().parsebytes(p.read_bytes())
            info = p.name.split(":2,", 1)[1] if ":2," in p.name else ""
            c[(hdr["Message-ID"].strip(), frozenset(LETTERS[ch] for ch in info if ch in LETTERS))] += 1
        out[box] = c
    return out


def server_state(srv, acc) -> State:
    out: State = {}
    c = srv.imaplib(acc)
    try:
        for box in BOXES:
            typ, _ = c.select(box, readonly=True)
            assert typ == "OK", box
            typ, data = c.uid("FETCH", "1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
            assert typ == "OK", data
            cnt: Counter = Counter()
            for item in data:
                if not isinstance(item, tuple):
                    continue
                flags = re.search(rb"FLAGS \(([^)]*)\)", item[0])
                assert flags, item[0]
                hdr = email.parser.BytesHeaderParser().parsebytes(item[1])
                fl = frozenset(f for f in flags.group(1).decode().split() if f in FLAGS)
                cnt[(hdr["Message-ID"].strip(), fl)] += 1
            out[box] = cnt
    finally:
        c.logout()
    return out


def expected(spec: dict[str, dict[str, set[str]]]) -> State:
    return {box: Counter((mid(n), frozenset(fl)) for n, fl in spec.get(box, {}).items()) for box in BOXES}


# -- local changes ---------------------------------------------------------------------
def find_local(local: Path, box: str, name: str) -> Path:
    (p,) = [p for p in local_files(local, box) if f"Message-ID: {mid(name)}".encode() in p.read_bytes()]
    return p


def set_local_flags(local: Path, box: str, name: str, letters: str) -> None:
    p = find_local(local, box, name)
    base = p.name.split(":2,", 1)[0]
    p.rename(local / box / "cur" / f"{base}:2,{''.join(sorted(letters))}")


def add_local_message(local: Path, box: str, name: str) -> None:
    (local / box / "new" / f"1700000000.local-{name}.host").write_bytes(msg(name).replace(b"\r\n", b"\n"))


# -- clients ---------------------------------------------------------------------------
def mbsync_runner(srv, acc, tmp_path: Path, local: Path) -> Callable[[], None]:
    cfg = mbsyncrc(tmp_path / "mbsyncrc", srv.port, acc.address, local, " ".join(BOXES))

    def run() -> None:
        res = subprocess.run(["mbsync", "-c", str(cfg), "-a"], capture_output=True, text=True, timeout=60, check=False)
        assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]

    return run


def offlineimap_runner(srv, acc, tmp_path: Path, local: Path) -> Callable[[], None]:
    cfg = tmp_path / "offlineimaprc"
    cfg.write_text(f"""
[general]
accounts = postroom
metadata = {tmp_path}/offlineimap-meta
ui = basic

[Account postroom]
localrepository = local
remoterepository = remote

[Repository local]
type = Maildir
localfolders = {local}

[Repository remote]
type = IMAP
remotehost = 127.0.0.1
remoteport = {srv.port}
remoteuser = {acc.address}
remotepass = {PASSWORD}
ssl = no
starttls = no
folderfilter = lambda f: f in {list(BOXES)!r}
""")

    def run() -> None:
        res = subprocess.run(["offlineimap", "-c", str(cfg), "-o", "-u", "basic"],
                             capture_output=True, text=True, timeout=60, check=False)
        out = res.stdout + res.stderr
        assert res.returncode == 0 and "ERROR" not in out, out[-3000:]

    return run


CLIENTS = {
    "mbsync": ("mbsync", mbsync_runner),
    "offlineimap": ("offlineimap", offlineimap_runner),
}


def start_sync(srv, tmp_path, client):
    """A new account, an empty local Maildir, ``client``'s sync runner for them, and a check
    that server and local copy both hold exactly a given spec (skips if ``client`` is absent)."""
    binary, make_runner = CLIENTS[client]
    if shutil.which(binary) is None:
        pytest.skip(f"{binary} not installed (scripts/install-test-deps.sh installs it)")
    acc = srv.new_user()
    local = tmp_path / "mail"
    local.mkdir()
    sync = make_runner(srv, acc, tmp_path, local)

    def check(spec: dict[str, dict[str, set[str]]]) -> None:
        want = expected(spec)
        assert server_state(srv, acc) == want
        assert local_state(local) == want

    return acc, local, sync, check


@pytest.mark.parametrize("client", sorted(CLIENTS))
def test_sync_both_sides(srv, tmp_path, client):
    acc, local, sync, check = start_sync(srv, tmp_path, client)

    # Round 1: the initial pull.
    c = srv.imaplib(acc)
    assert c.create("Projects")[0] == "OK"
    c.logout()
    for i in range(5):
        srv.deliver(acc, msg(f"s{i}"), flags=frozenset({"\\Flagged"}) if i % 2 == 0 else frozenset())
    srv.deliver(acc, msg("a0"), mailbox="Projects", flags=frozenset({"\\Seen"}))
    spec = {
        "INBOX": {"s0": {"\\Flagged"}, "s1": set(), "s2": {"\\Flagged"}, "s3": set(), "s4": {"\\Flagged"}},
        "Projects": {"a0": {"\\Seen"}},
    }
    sync()
    check(spec)

    # Round 2: changes on the server — a new message, flags, an expunge, a MOVE.
    srv.deliver(acc, msg("s5"))
    c = srv.imaplib(acc, select="INBOX")
    uids = {}
    for name in ("s0", "s1", "s2", "s3"):
        _, data = c.uid("SEARCH", "HEADER", "Message-ID", mid(name))
        (uids[name],) = data[0].decode().split()
    assert c.uid("STORE", uids["s0"], "+FLAGS", "(\\Seen \\Answered)")[0] == "OK"
    assert c.uid("STORE", uids["s2"], "-FLAGS", "(\\Flagged)")[0] == "OK"
    assert c.uid("STORE", uids["s1"], "+FLAGS", "(\\Deleted)")[0] == "OK"
    assert c.expunge()[0] == "OK"
    assert c.uid("MOVE", uids["s3"], "Projects")[0] == "OK"
    c.logout()
    spec["INBOX"].update(s0={"\\Flagged", "\\Seen", "\\Answered"}, s2=set(), s5=set())
    del spec["INBOX"]["s1"]
    spec["Projects"]["s3"] = spec["INBOX"].pop("s3")
    sync()
    check(spec)

    # Round 3: changes in the Maildir — a new message, flags, a deletion.
    add_local_message(local, "INBOX", "l0")
    add_local_message(local, "Projects", "l1")
    set_local_flags(local, "INBOX", "s4", "FS")
    set_local_flags(local, "INBOX", "s5", "F")
    set_local_flags(local, "Projects", "a0", "")
    find_local(local, "INBOX", "s2").unlink()
    spec["INBOX"].update(l0=set(), s4={"\\Flagged", "\\Seen"}, s5={"\\Flagged"})
    spec["Projects"].update(l1=set(), a0=set())
    del spec["INBOX"]["s2"]
    sync()
    check(spec)

    # Round 4: both sides at once (different messages), then a quiet round changes nothing.
    srv.deliver(acc, msg("s6"), mailbox="Projects")
    c = srv.imaplib(acc, select="Projects")
    _, data = c.uid("SEARCH", "HEADER", "Message-ID", mid("s3"))
    assert c.uid("MOVE", data[0].decode(), "INBOX")[0] == "OK"
    c.logout()
    add_local_message(local, "INBOX", "l2")
    set_local_flags(local, "INBOX", "l0", "S")
    find_local(local, "Projects", "l1").unlink()
    spec["Projects"]["s6"] = set()
    spec["INBOX"]["s3"] = spec["Projects"].pop("s3")
    spec["INBOX"].update(l2=set(), l0={"\\Seen"})
    del spec["Projects"]["l1"]
    sync()
    check(spec)
    sync()
    check(spec)
