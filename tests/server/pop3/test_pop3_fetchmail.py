"""fetchmail (Debian package) downloads 100 messages with "keep", then with "delete"."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
from pathlib import Path

import pytest

from pop3_harness import Harness, message

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("fetchmail") is None,
                                 reason="fetchmail not installed (scripts/install-test-deps.sh)")]

def _corpus(n: int) -> list[bytes]:
    rnd = random.Random(5)
    out = []
    for i in range(n):
        lines = []
        for _ in range(rnd.randint(1, 60)):
            kind = rnd.random()
            if kind < 0.15:
                lines.append("." * rnd.randint(1, 3) + "dotted line")
            elif kind < 0.2:
                lines.append(".")
            elif kind < 0.25:
                lines.append("")
            else:
                lines.append("".join(rnd.choice("abcdefghij klmnop") for _ in range(rnd.randint(1, 200))))
        out.append(message(i, ("\r\n".join(lines) + "\r\n").encode()))
    return out


def _fetch(srv: Harness, tmp: Path, address: str, keep: bool) -> list[bytes]:
    out = tmp / ("keep" if keep else "delete")
    out.mkdir()
    rc = tmp / "fetchmailrc"
    rc.write_text(
        f'poll 127.0.0.1 port {srv.ports["pop3"]} proto POP3 auth password\n'
        f'  user "{address}" password "secret" is "nobody" here\n'
        f'  sslproto "TLS1.2+" no sslcertck\n'
        f'  {"keep" if keep else "no keep"} fetchall\n'
        # fetchmail runs the MDA through /bin/sh, one process per message: $$ names it.
        f'  mda "cat > {out}/msg.$$"\n')
    rc.chmod(0o600)
    env = dict(os.environ, FETCHMAILHOME=str(tmp), HOME=str(tmp))
    proc = subprocess.run(["fetchmail", "-f", str(rc), "--nosyslog", "--nodetach", "-v"], env=env,
                          capture_output=True, timeout=300)
    log = proc.stdout.decode(errors="replace") + proc.stderr.decode(errors="replace")
    assert proc.returncode == 0, log
    assert "STLS" in log  # fetchmail upgraded the connection before sending the password
    return [p.read_bytes() for p in sorted(out.iterdir())]


def _as_sent(delivered: bytes) -> bytes:
    """Undo what fetchmail adds on the way to an MDA: its Received header and LF line ends."""
    assert delivered.startswith(b"Received: from 127.0.0.1")
    lines = delivered.split(b"\n")
    i = 1
    while lines[i].startswith((b" ", b"\t")):
        i += 1
    return b"\n".join(lines[i:]).replace(b"\n", b"\r\n")


def test_fetchmail_keep_then_delete(srv: Harness, tmp_path: Path) -> None:
    acc = srv.new_user()
    corpus = _corpus(100)
    for raw in corpus:
        srv.deliver(acc, raw)
    kept = _fetch(srv, tmp_path, acc.address, keep=True)
    assert sorted(_as_sent(m) for m in kept) == sorted(corpus)
    assert len(srv.inbox(acc)) == 100
    deleted = _fetch(srv, tmp_path, acc.address, keep=False)
    assert sorted(_as_sent(m) for m in deleted) == sorted(corpus)
    assert srv.inbox(acc) == []
