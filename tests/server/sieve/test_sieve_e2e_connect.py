"""End to end with real clients only: a script uploaded and activated over ManageSieve
with Debian's ``sieve-connect`` files mail delivered over SMTP (smtplib) into a folder
with flags, checked over IMAP (imaplib); a script that fails when it runs keeps the
mail in INBOX; a script that does not compile is refused and the active one stays.
"""

from __future__ import annotations

import imaplib
import os
import re
import shutil
import smtplib
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing
from email.message import EmailMessage
from pathlib import Path

import pytest
from threaded_runtime import ThreadedRuntime

from postroom.auth import hash_password
from postroom.storage.models import Account

sys.path.append(str(Path(__file__).resolve().parents[3] / "bench"))  # the Postroom peer config, as the harnesses do
from postroom_peer import DOMAIN, write_config

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("sieve-connect") is None,
                       reason="sieve-connect not installed (scripts/install-test-deps.sh)"),
]

PASSWORD = "e2e secret"

FILTER = """require ["fileinto", "imap4flags", "mailbox"];
if header :contains "subject" "[proj]" {
  fileinto :create :flags ["\\\\Flagged", "$Proj"] "Projects";
}
"""
# Compiles, but fails when it runs: an empty mailbox name built from a variable.
FAILS_AT_RUN = """require ["fileinto", "variables"];
set "box" "";
fileinto "${box}";
"""
BROKEN = 'require "fileinto";\nif header :is "subject" {\n  keep;\n}\n'


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadedRuntime]:
    root = tmp_path_factory.mktemp("sievee2e")
    cfg = write_config(root, """
[limits]
auth_failures_per_ip = 1000
[mailauth]
check_listeners = []
[listeners.smtp]
address = "127.0.0.1:0"
tls = "starttls"
[listeners.imaps]
address = "127.0.0.1:0"
tls = "implicit"
[listeners.managesieve]
address = "127.0.0.1:0"
tls = "starttls"
""", hostname="mail.example.test")
    with closing(ThreadedRuntime(cfg)) as rt:
        yield rt


@pytest.fixture
def account(srv: ThreadedRuntime, request: pytest.FixtureRequest) -> Account:
    name = re.sub(r"[^a-z0-9]", "", request.node.name.lower())[:40]
    return srv.call(srv.store.create_account(f"{name}@{DOMAIN}", hash_password(PASSWORD)))


def sieve_connect(srv: ThreadedRuntime, user: str, *args: str) -> subprocess.CompletedProcess[str]:
    r, w = os.pipe()
    os.write(w, PASSWORD.encode() + b"\n")
    os.close(w)
    try:
        return subprocess.run(
            ["sieve-connect", "--server", "127.0.0.1", "--port", str(srv.ports["managesieve"]), "--user", user,
             "--notlsverify", "--passwordfd", str(r), *args],
            pass_fds=(r,), capture_output=True, text=True, timeout=60, check=False)
    finally:
        os.close(r)


def upload(srv: ThreadedRuntime, tmp_path: Path, user: str, name: str, text: str) -> subprocess.CompletedProcess[str]:
    src = tmp_path / f"{name}.sieve"
    src.write_text(text)
    return sieve_connect(srv, user, "--upload", "--localsieve", str(src), "--remotesieve", name)


def send(srv: ThreadedRuntime, to: str, subject: str) -> None:
    msg = EmailMessage()
    msg["From"] = "sender@elsewhere.example"
    msg["To"] = to
    msg["Subject"] = subject
    msg["Message-ID"] = f"<{time.monotonic_ns()}@elsewhere.example>"
    msg.set_content("Hello.\n")
    with smtplib.SMTP("127.0.0.1", srv.ports["smtp"], timeout=30) as s:
        s.sendmail("sender@elsewhere.example", [to], msg.as_bytes())


def imap(srv: ThreadedRuntime, user: str) -> imaplib.IMAP4_SSL:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    conn = imaplib.IMAP4_SSL("127.0.0.1", srv.ports["imaps"], ssl_context=ctx, timeout=30)
    conn.login(user, PASSWORD)
    return conn


def subjects_and_flags(conn: imaplib.IMAP4_SSL, mailbox: str) -> list[tuple[str, set[str]]]:
    typ, _ = conn.select(f'"{mailbox}"', readonly=True)
    if typ != "OK":
        return []
    typ, data = conn.fetch("1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    if typ != "OK" or data == [None]:
        return []
    out = []
    for item in data:
        if not isinstance(item, tuple):
            continue
        meta, header = item
        flags = set(re.search(rb"FLAGS \(([^)]*)\)", meta).group(1).decode().split())  # type: ignore[union-attr]
        subject = header.decode().split(":", 1)[1].strip()
        out.append((subject, flags))
    return out


def test_uploaded_script_files_smtp_mail_with_flags(srv: ThreadedRuntime, account: Account, tmp_path: Path) -> None:
    p = upload(srv, tmp_path, account.address, "projects", FILTER)
    assert p.returncode == 0, p.stderr
    p = sieve_connect(srv, account.address, "--activate", "--remotesieve", "projects")
    assert p.returncode == 0, p.stderr
    send(srv, account.address, "[proj] weekly status")
    send(srv, account.address, "lunch?")
    with closing(imap(srv, account.address)) as conn:
        projects = subjects_and_flags(conn, "Projects")
        assert [s for s, _ in projects] == ["[proj] weekly status"]
        assert {"\\Flagged", "$Proj"} <= projects[0][1]
        assert "\\Seen" not in projects[0][1]
        assert [s for s, _ in subjects_and_flags(conn, "INBOX")] == ["lunch?"]
        typ, listing = conn.list()
        assert typ == "OK" and any(b'"Projects"' in line or line.endswith(b" Projects") for line in listing)


def test_script_failing_at_run_time_keeps_mail_in_inbox(srv: ThreadedRuntime, account: Account,
                                                         tmp_path: Path) -> None:
    p = upload(srv, tmp_path, account.address, "fails", FAILS_AT_RUN)
    assert p.returncode == 0, p.stderr  # it compiles: ManageSieve has no reason to refuse it
    p = sieve_connect(srv, account.address, "--activate", "--remotesieve", "fails")
    assert p.returncode == 0, p.stderr
    send(srv, account.address, "still delivered")
    with closing(imap(srv, account.address)) as conn:
        assert [s for s, _ in subjects_and_flags(conn, "INBOX")] == ["still delivered"]


def test_broken_script_is_refused_and_the_active_one_stays(srv: ThreadedRuntime, account: Account,
                                                          tmp_path: Path) -> None:
    assert upload(srv, tmp_path, account.address, "projects", FILTER).returncode == 0
    assert sieve_connect(srv, account.address, "--activate", "--remotesieve", "projects").returncode == 0
    p = upload(srv, tmp_path, account.address, "projects", BROKEN)
    assert p.returncode != 0
    assert "line 2" in p.stdout + p.stderr, (p.stdout, p.stderr)
    send(srv, account.address, "[proj] after a refused upload")
    with closing(imap(srv, account.address)) as conn:
        assert [s for s, _ in subjects_and_flags(conn, "Projects")] == ["[proj] after a refused upload"]
        assert subjects_and_flags(conn, "INBOX") == []
