"""Import/export round trips through the real CLI.

mbox → store → Maildir → store → mbox must give the same messages, as Python's
``mailbox`` module reads them, byte for byte, with flags kept.
"""

from __future__ import annotations

import mailbox
import subprocess
import sys
from pathlib import Path

import pytest

from postroom.cli import main


def pr(cfg: Path, *args: str) -> int:
    return main(["-c", str(cfg), *args])


@pytest.fixture
def cfg(tmp_path: Path) -> Path:
    assert main(["init", str(tmp_path / "srv"), "--domain", "example.test", "--port-offset", "30000"]) == 0
    c = tmp_path / "srv" / "postroom.toml"
    for who in ("a", "b", "c"):
        assert pr(c, "user", "add", f"{who}@example.test", "--password", "pw") == 0
    return c


def make_mbox(path: Path) -> list[tuple[bytes, str]]:
    box = mailbox.mbox(path, create=True)
    out = []
    flags = ["", "R", "RA", "F", "RD", "RF"]
    for i in range(30):
        body = b"line one\n" + (b">From the start\n" if i % 5 == 0 else b"") + b"." * (i % 3) + b"\nend %d\n" % i
        if i % 7 == 0:
            body += b"\n\n"
        raw = (b"From: sender%d@x.test\nTo: a@example.test\nSubject: =?utf-8?q?caf=C3=A9?= %d\n"
               b"Message-ID: <%d@x.test>\n\n" % (i, i, i)) + body
        m = mailbox.mboxMessage(raw)
        m.set_from("sender@x.test", (2024, 1, 1 + i % 28, 10, i, 0, 0, 0, 0))
        m.set_flags(flags[i % len(flags)])
        box.add(m)
    box.flush()
    box.close()
    box = mailbox.mbox(path)
    for key in box.keys():
        out.append((box.get_bytes(key), "".join(sorted(box.get_message(key).get_flags()))))
    return out


def read_mbox(path: Path) -> list[tuple[bytes, str]]:
    box = mailbox.mbox(path, create=False)
    return [(box.get_bytes(k), "".join(sorted(box.get_message(k).get_flags()))) for k in box.keys()]


def test_round_trip_mbox_maildir_mbox(cfg: Path, tmp_path: Path) -> None:
    src = tmp_path / "in.mbox"
    original = make_mbox(src)
    assert pr(cfg, "import", "mbox", "a@example.test", str(src)) == 0
    assert pr(cfg, "export", "a@example.test", str(tmp_path / "md"), "--format", "maildir") == 0
    md = mailbox.Maildir(tmp_path / "md", create=False)
    assert len(md) == 30
    # Maildir flags carry the mbox flags (R→S seen, A→R answered, F→F, D→T)
    seen = sum("S" in md.get_message(k).get_flags() for k in md.keys())
    assert seen == sum("R" in f for _, f in original)
    assert pr(cfg, "import", "maildir", "b@example.test", str(tmp_path / "md")) == 0
    assert pr(cfg, "export", "b@example.test", str(tmp_path / "out"), "--format", "mbox") == 0
    again = read_mbox(tmp_path / "out" / "INBOX.mbox")
    # "O" (old) has no IMAP flag: compare the flags IMAP keeps
    strip = lambda fl: "".join(c for c in fl if c != "O")  # noqa: E731
    # A Maildir has no message order of its own (readers sort by delivery time), so
    # the messages come back ordered by internal date: compare them as a set.
    assert sorted((b, strip(f)) for b, f in again) == sorted((b, strip(f)) for b, f in original)
    assert len(again) == len(original)


def test_maildir_folders_and_flags(cfg: Path, tmp_path: Path) -> None:
    md = mailbox.Maildir(tmp_path / "src", create=True)
    sub = md.add_folder("Lists.python")
    for i, box in enumerate((md, sub, sub)):
        m = mailbox.MaildirMessage(b"Subject: %d\n\nhello %d\n" % (i, i))
        m.set_subdir("cur")
        m.set_flags("DS" if i == 1 else "")
        box.add(m)
    assert pr(cfg, "import", "maildir", "c@example.test", str(tmp_path / "src")) == 0
    assert pr(cfg, "export", "c@example.test", str(tmp_path / "dst")) == 0
    out = mailbox.Maildir(tmp_path / "dst", create=False)
    assert "Lists.python" in out.list_folders()
    f = out.get_folder("Lists.python")
    assert sorted(f.get_bytes(k) for k in f.keys()) == [b"Subject: 1\n\nhello 1\n", b"Subject: 2\n\nhello 2\n"]
    assert sorted(f.get_message(k).get_flags() for k in f.keys()) == ["", "DS"]


def test_bad_import_files_one_line_errors(cfg: Path, tmp_path: Path) -> None:
    bad = tmp_path / "notmbox"
    bad.write_bytes(b"\x00\x01garbage")
    for args in (["import", "mbox", "a@example.test", str(bad)],
                 ["import", "mbox", "a@example.test", str(tmp_path / "missing")],
                 ["import", "maildir", "a@example.test", str(tmp_path)],
                 ["import", "mbox", "nobody@example.test", str(bad)]):
        p = subprocess.run([sys.executable, "-m", "postroom.cli", "-c", str(cfg), *args],
                           capture_output=True, text=True)
        assert p.returncode != 0
        assert p.stderr.count("\n") == 1 and p.stderr.startswith("postroom: "), p.stderr
        assert "Traceback" not in p.stderr


def test_maildir_file_names_with_non_ascii_digits_import(cfg: Path, tmp_path: Path) -> None:
    """Maildir names are sorted "naturally" (1.M9P before 1.M10P); a name with "²" in it
    ("²".isdigit() is True, int("²") raises) used to stop the import with a traceback."""
    md = tmp_path / "md"
    for sub in ("cur", "new", "tmp"):
        (md / sub).mkdir(parents=True)
    for name in ("²", "1.M10P²", "1.M9P"):
        (md / "cur" / f"{name}:2,S").write_bytes(b"Subject: %s\r\n\r\nbody\r\n" % name.encode())
    p = subprocess.run([sys.executable, "-m", "postroom.cli", "-c", str(cfg), "import", "maildir",
                        "a@example.test", str(md), "--mailbox", "Digits"], capture_output=True, text=True)
    assert p.returncode == 0 and "imported 3 messages" in p.stdout + p.stderr, p.stderr


def test_the_newsgroups_account_is_no_user_to_import_or_export(cfg: Path, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    """Groups are mailboxes of a reserved account: it is not exported or imported into as a user."""
    from postroom.news.account import NEWS_ACCOUNT

    assert pr(cfg, "group", "add", "local.test") == 0  # creates the reserved account
    make_mbox(tmp_path / "in.mbox")
    capsys.readouterr()
    assert pr(cfg, "export", NEWS_ACCOUNT, str(tmp_path / "out"), "--format", "mbox") == 2
    assert pr(cfg, "import", "mbox", NEWS_ACCOUNT, str(tmp_path / "in.mbox")) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and all("the newsgroups' internal account, not a user" in e for e in err), err
    assert not (tmp_path / "out").exists()
    assert pr(cfg, "user", "list") == 0
    assert NEWS_ACCOUNT not in capsys.readouterr().out
