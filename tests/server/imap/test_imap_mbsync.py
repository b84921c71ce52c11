"""mbsync (Debian isync) syncs a 1,000-message mailbox both ways with Postroom."""

import shutil
import subprocess
import time
from pathlib import Path

import pytest

from imap_harness import mbsyncrc, msg

pytestmark = [pytest.mark.slow, pytest.mark.skipif(shutil.which("mbsync") is None, reason="isync not installed")]

N = 1000


def write_maildir(box: Path, n: int) -> None:
    for sub in ("cur", "new", "tmp"):
        (box / sub).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        flags = "S" if i % 2 else ""
        (box / "cur" / f"{1700000000 + i}.{i}.host:2,{flags}").write_bytes(
            msg(f"local {i}", body=f"local body {i}\r\n" * 5).replace(b"\r\n", b"\n"))


def mbsync(cfg: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["mbsync", "-c", str(cfg), "-a"], capture_output=True, text=True, timeout=300)


def test_mbsync_both_ways(srv, tmp_path):
    acc = srv.new_user()
    local = tmp_path / "mail"
    write_maildir(local / "Pushed", N)
    for i in range(N):
        srv.deliver(acc, msg(f"remote {i}"), flags=frozenset({"\\Flagged"}) if i % 3 == 0 else frozenset())
    cfg = mbsyncrc(tmp_path / "mbsyncrc", srv.port, acc.address, local, "INBOX Pushed")
    t0 = time.monotonic()
    res = mbsync(cfg)
    elapsed = time.monotonic() - t0
    assert res.returncode == 0, res.stderr[-2000:]
    # Pull: the 1,000 server messages are in the local INBOX with their flags.
    pulled = list((local / "INBOX" / "cur").iterdir()) + list((local / "INBOX" / "new").iterdir())
    assert len(pulled) == N
    assert sum(1 for p in pulled if "F" in p.name.split(":2,")[-1]) == len(range(0, N, 3))
    # Push: the 1,000 local messages are on the server with their flags.
    c = srv.imapclient(acc)
    st = c.folder_status("Pushed", ["MESSAGES", "UNSEEN"])
    assert st[b"MESSAGES"] == N and st[b"UNSEEN"] == N // 2
    # Changes flow both ways on the next run: flags and deletions.
    c.select_folder("INBOX")
    first = c.search()[:10]
    c.add_flags(first, ["\\Seen"])
    c.logout()
    victims = sorted((local / "Pushed" / "cur").iterdir())[:5]
    for p in victims:
        p.unlink()
    res = mbsync(cfg)
    assert res.returncode == 0, res.stderr[-2000:]
    c = srv.imapclient(acc)
    assert c.folder_status("Pushed", ["MESSAGES"])[b"MESSAGES"] == N - 5
    c.logout()
    seen_local = [p for p in (local / "INBOX" / "cur").iterdir() if "S" in p.name.split(":2,")[-1]]
    assert len(seen_local) == 10
    print(f"mbsync first run (1,000 up + 1,000 down): {elapsed:.1f}s")
