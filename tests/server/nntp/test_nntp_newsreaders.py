"""Real newsreaders from Debian against a running Postroom: suck and rpost, and tin.

* ``suck`` (its multifile mode, MODE READER, articles by number) downloads a whole group; every
  file must be the server's article byte for byte (line ends aside), dot-stuffed lines included.
* ``rpost`` (suck's poster) posts an article read from stdin with POST.
* ``tin`` reads in batch mode (``-S``: save the unread articles of the subscribed groups, after
  its GROUP/OVER/ARTICLE pass) and posts what is in its postponed-articles file (``-o``), which it
  does only on a terminal: that run is under tmux. Its log mail (``-S`` mails a summary) goes
  to a file through its ``mailer_format`` setting, never to the machine's MTA.

scripts/install-test-deps.sh installs them; without them the tests are skipped.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from nntp_harness import Harness, article, unique

pytestmark = pytest.mark.slow


def _need(*programs: str) -> None:
    missing = [p for p in programs if shutil.which(p) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (scripts/install-test-deps.sh)")


def _fill(srv: Harness, n: int = 4) -> tuple[str, list[str]]:
    """A group of ``n`` articles, the second with lines that need dot-stuffing."""
    g = srv.add_group(unique("readers.test"), description="for real newsreaders")
    mids = []
    for i in range(1, n + 1):
        body = b".one leading dot\r\n..two leading dots\r\n.\r\nplain\r\n" if i == 2 else b""
        mids.append(srv.post_direct(article(g, i, body=body)).message_id)
    return g, mids


def _server_article(srv: Harness, g: str, number: int) -> bytes:
    with srv.client("none") as c:
        assert c.cmd(f"GROUP {g}")[0] == 211
        code, text, raw = c.article(str(number))
        assert code == 220, text
        return raw


def _wait_article(srv: Harness, mid: str, timeout: float = 30) -> bytes:
    deadline = time.monotonic() + timeout
    while True:
        with srv.client("none") as c:
            code, _, raw = c.article(mid)
        if code == 220 or time.monotonic() > deadline:
            assert code == 220, f"{mid} not on the server"
            return raw
        time.sleep(0.2)


def _lf(raw: bytes) -> bytes:
    return raw.replace(b"\r\n", b"\n")


# -- suck and rpost -------------------------------------------------------------------
def test_suck_downloads_the_group(srv: Harness, tmp_path: Path) -> None:
    _need("suck")
    g, mids = _fill(srv)
    (tmp_path / "msgs").mkdir()
    (tmp_path / "sucknewsrc").write_text(f"{g} 0\n")
    p = subprocess.run(["suck", f"127.0.0.1:{srv.ports['nntp']}", "-M", "-n", "-m", "-H", "-K", "-q", "-c",
                        "-dd", str(tmp_path), "-dt", str(tmp_path), "-dm", str(tmp_path / "msgs"), "-T", "30"],
                       cwd=tmp_path, capture_output=True, timeout=120, check=False)
    assert p.returncode == 0, p.stdout + p.stderr
    files = sorted((tmp_path / "msgs").iterdir(), key=lambda f: int(f.name.split("-")[0]))
    assert len(files) == len(mids), p.stdout
    for number, f in enumerate(files, 1):
        assert _lf(f.read_bytes()) == _lf(_server_article(srv, g, number))
    assert b"\n.one leading dot\n..two leading dots\n.\nplain\n" in files[1].read_bytes()
    # suck's newsrc now remembers the high-water mark: a second run fetches nothing.
    assert (tmp_path / "sucknewsrc").read_text().split() == [g, str(len(mids))]


def test_rpost_posts_from_stdin(srv: Harness) -> None:
    _need("rpost")
    g = srv.add_group(unique("readers.test"))
    mid = f"<{uuid.uuid4().hex}@rpost.test>"
    raw = (f"From: Rpost User <rpost@client.test>\nNewsgroups: {g}\nSubject: posted by rpost\n"
           f"Message-ID: {mid}\n\n.a line with a leading dot\nhello from rpost\n").encode()
    p = subprocess.run(["rpost", f"127.0.0.1:{srv.ports['nntp']}", "-M", "-T", "30"], input=raw,
                       capture_output=True, timeout=120, check=False)
    assert p.returncode == 0, p.stdout + p.stderr
    assert b"240" in p.stdout
    got = _wait_article(srv, mid)
    assert got.endswith(b"\r\n\r\n.a line with a leading dot\r\nhello from rpost\r\n")
    assert f"Newsgroups: {g}".encode() in got and b"\r\nDate: " in got  # the server added Date


def test_rpost_refused_post_fails(srv: Harness) -> None:
    _need("rpost")
    g = srv.add_group(unique("readers.test"), posting="n")
    raw = f"From: r@client.test\nNewsgroups: {g}\nSubject: refused\n\nno\n".encode()
    p = subprocess.run(["rpost", f"127.0.0.1:{srv.ports['nntp']}", "-M", "-T", "30"], input=raw,
                       capture_output=True, timeout=120, check=False)
    assert b"441" in p.stdout + p.stderr
    with srv.client("none") as c:
        assert c.cmd(f"GROUP {g}")[1].split()[0] == "0"


# -- tin ------------------------------------------------------------------------------
def _tin_home(tmp_path: Path, g: str) -> dict[str, str]:
    home = tmp_path / "home"
    (home / ".tin").mkdir(parents=True)
    (home / ".newsrc").write_text(f"{g}:\n")
    # The -S summary is "mailed" into a file: nothing reaches the machine's MTA.
    (home / ".tin" / "tinrc").write_text(f"mailer_format=cat %F > {home}/mailed.txt\n")
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "NNTPSERVER": "127.0.0.1",
            "LANG": "C.UTF-8"}


def test_tin_reads_the_group_in_batch_mode(srv: Harness, tmp_path: Path) -> None:
    _need("tin")
    g, mids = _fill(srv)
    env = _tin_home(tmp_path, g) | {"TERM": "dumb"}
    saved = tmp_path / "saved"
    p = subprocess.run(["tin", "-r", "-p", str(srv.ports["nntp"]), "-q", "-n", "-S", "-s", str(saved)],
                       env=env, stdin=subprocess.DEVNULL, capture_output=True, timeout=120, check=False)
    assert p.returncode == 0, p.stdout + p.stderr
    files = sorted((saved / Path(*g.split("."))).iterdir(), key=lambda f: int(f.name))
    assert [f.name for f in files] == [str(n) for n in range(1, len(mids) + 1)], p.stdout
    for number, f in enumerate(files, 1):
        assert _lf(f.read_bytes()) == _lf(_server_article(srv, g, number))
    # Its summary went to the file its mailer_format names.
    assert f"Saved {len(mids)} articles from 1 group" in (tmp_path / "home" / "mailed.txt").read_text()
    # -Z: tin's check for unread news (from the group's counts) sees them all, exit status 2.
    p = subprocess.run(["tin", "-r", "-p", str(srv.ports["nntp"]), "-q", "-Z", "-v"], env=env,
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=120, check=False)
    assert p.returncode == 2, p.stdout + p.stderr
    assert f"{len(mids)} unread (   0 hot) articles in {g}".encode() in p.stdout


def test_tin_posts_under_tmux(srv: Harness, tmp_path: Path) -> None:
    _need("tin", "tmux")
    g = srv.add_group(unique("readers.test"))
    env = _tin_home(tmp_path, g) | {"TERM": "xterm"}
    home = Path(env["HOME"])
    subject = f"posted by tin {uuid.uuid4().hex[:8]}"
    (home / ".tin" / "postponed.articles").write_text(
        f"From tin Sun Dec  6 10:00:00 2026\nFrom: Tin User <tin@client.test>\nNewsgroups: {g}\n"
        f"Subject: {subject}\n\nhello from tin\n.a line with a leading dot\n\n")
    sock = str(tmp_path / "tmux.sock")
    done = tmp_path / "tin.exit"
    cmd = f"tin -r -p {srv.ports['nntp']} -q -n -o; echo $? > {done}"
    subprocess.run(["tmux", "-S", sock, "-f", "/dev/null", "new-session", "-d", "-x", "120", "-y", "40",
                    "env", *(f"{k}={v}" for k, v in env.items()), "sh", "-c", cmd], check=True, timeout=30)
    try:
        deadline = time.monotonic() + 60
        while not done.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        screen = subprocess.run(["tmux", "-S", sock, "capture-pane", "-p"], capture_output=True, text=True,
                                check=False).stdout
        assert done.exists(), f"tin did not finish; its screen:\n{screen}"
        assert done.read_text().strip() == "0", screen
    finally:
        subprocess.run(["tmux", "-S", sock, "kill-server"], capture_output=True, check=False)
    # tin logs what it posted, with the Message-ID the server gave it.
    posted = (home / ".tin" / "posted").read_text()
    line = next(ln for ln in posted.splitlines() if subject in ln)
    mid = line[line.index("<"):]
    got = _wait_article(srv, mid)
    assert f"Subject: {subject}".encode() in got and b"User-Agent: tin/" in got
    assert got.endswith(b"\r\n\r\nhello from tin\r\n.a line with a leading dot\r\n")
    assert not (home / ".tin" / "postponed.articles").exists()  # tin took it out of the queue
