"""Pigeonhole's ``sieve-test`` as a peer, and one normal form for both engines' actions.

``sieve-test`` (Debian's dovecot-sieve) needs a Dovecot config but no running daemon:
:class:`PigeonholePeer` writes one in a temporary directory (loopback-free: nothing
listens) with mail owned by the ``vmail`` user of /work/shared/PEERS.md, because
Dovecot refuses to run mail processes as root. Postroom's side is ``postroom sieve
test`` (run in-process through the CLI's ``main``, the same code as the command).

Both outputs become a sorted list of tuples:

- ``("store", MAILBOX, FLAGS)`` for keep, implicit keep and fileinto (flags lower-cased,
  sorted, space-joined);
- ``("redirect", ADDRESS)``, ``("reject",)``, ``("discard",)``, ``("vacation",)``,
  ``("notify", METHOD-SCHEME)``;
- ``("compile-error",)`` when the script does not compile, ``("runtime-error",)`` when
  it fails while running.

Header edits (editheader) and duplicate tracking are not listed as actions by Postroom and
are left out of both sides. ``sieve-test`` cannot take the null sender (``-f <>`` is
refused), so every corpus message has a real one.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

VMAIL = 5000  # PEERS.md: the vmail user's uid and gid

Action = tuple[str, ...]

_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"')


def unavailable() -> str | None:
    """Why the peer cannot run here, or None."""
    if shutil.which("sieve-test") is None:
        return "sieve-test (dovecot-sieve) is not installed: scripts/install-test-deps.sh"
    if os.geteuid() != 0:
        return "sieve-test needs root here (mail files owned by the vmail user, PEERS.md)"
    return None


def _ensure_vmail() -> None:
    if subprocess.run(["id", "vmail"], check=False, capture_output=True).returncode != 0:
        subprocess.run(["groupadd", "-g", str(VMAIL), "vmail"], check=False, capture_output=True)
        subprocess.run(["useradd", "-u", str(VMAIL), "-g", str(VMAIL), "-M", "-d", "/nonexistent",
                        "-s", "/usr/sbin/nologin", "vmail"], check=True, capture_output=True)


def _flags(text: str) -> str:
    return " ".join(sorted({f.lower() for f in text.split()}))


class PigeonholePeer:
    """A scratch directory holding a Dovecot config for ``sieve-test`` and copies of the
    scripts and messages (``sieve-test`` reads them as the vmail user)."""

    def __init__(self, corpus: Path) -> None:
        _ensure_vmail()
        self.dir = Path(tempfile.mkdtemp(prefix="postroom-sieve-peer-"))
        os.chmod(self.dir, 0o755)
        self.scripts = self.dir / "scripts"
        self.messages = self.dir / "messages"
        shutil.copytree(corpus / "scripts", self.scripts)
        shutil.copytree(corpus / "messages", self.messages)
        for sub in ("run", "state", "mail", "home"):
            (self.dir / sub).mkdir()
        self.config = self.dir / "dovecot.conf"
        self.config.write_text(f"""\
base_dir = {self.dir}/run
state_dir = {self.dir}/state
log_path = {self.dir}/dovecot.log
mail_uid = {VMAIL}
mail_gid = {VMAIL}
first_valid_uid = {VMAIL}
first_valid_gid = {VMAIL}
mail_location = maildir:{self.dir}/mail
mail_home = {self.dir}/home
plugin {{
  sieve = file:{self.scripts};active={self.dir}/home/active.sieve
  sieve_extensions = +editheader +vacation-seconds +mboxmetadata +servermetadata +spamtest +spamtestplus +virustest
  sieve_spamtest_status_type = score
  sieve_spamtest_status_header = X-Spam-Score
  sieve_spamtest_max_value = 10
  sieve_virustest_status_type = text
  sieve_virustest_status_header = X-Virus-Status
  sieve_virustest_text_value1 = Clean
  sieve_virustest_text_value5 = Infected
}}
""")
        for path in [self.dir, *self.dir.rglob("*")]:
            os.chown(path, VMAIL, VMAIL)

    def close(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    def run(self, script: str, message: str, sender: str, recipient: str) -> list[Action]:
        proc = subprocess.run(
            ["sieve-test", "-c", str(self.config), "-f", sender or "<>", "-r", recipient,
             str(self.scripts / script), str(self.messages / message)],
            capture_output=True, text=True, check=False, timeout=60, env={**os.environ, "TZ": os.environ.get("TZ", "UTC")})
        if "failed to compile sieve script" in proc.stderr:
            return [("compile-error",)]
        if proc.returncode != 0 or "Performed actions:" not in proc.stdout:
            return [("runtime-error",)]
        return parse_pigeonhole(proc.stdout)


def parse_pigeonhole(out: str) -> list[Action]:
    """The actions ``sieve-test`` lists under "Performed actions" and "Implicit keep"."""
    actions: list[Action] = []
    for line in out.splitlines():
        s = line.strip()
        if s.startswith("+ add IMAP flags:") and actions and actions[-1][0] == "store":
            actions[-1] = ("store", actions[-1][1], _flags(s.split(":", 1)[1]))
        elif not s.startswith("* "):
            continue
        elif s.startswith("* store message in folder:"):
            actions.append(("store", s.split(":", 1)[1].strip(), ""))
        elif s.startswith("* redirect message to:"):
            actions.append(("redirect", s.split(":", 1)[1].strip().strip("<>").lower()))
        elif s.startswith("* reject message"):
            actions.append(("reject",))
        elif s == "* discard":
            actions.append(("discard",))
        elif s.startswith("* send vacation message"):
            actions.append(("vacation",))
        elif s == "* track duplicate":
            continue  # the mark RFC 7352 §3 records; Postroom's Result.duplicate_marks, not an action
        elif s.startswith("* send notification with method"):
            actions.append(("notify", s.split("'")[1].rstrip(":")))
        else:
            actions.append(("?", s))
    return sorted(actions)


def run_postroom(script: Path, message: Path, sender: str, recipient: str) -> list[Action]:
    """``postroom sieve test SCRIPT MESSAGE --from --to``, parsed."""
    from postroom.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["sieve", "test", str(script), str(message), "--from", sender, "--to", recipient])
    if code != 0:
        return [("runtime-error",)] if "runtime error" in err.getvalue() else [("compile-error",)]
    return parse_postroom(out.getvalue())


def parse_postroom(out: str) -> list[Action]:
    actions: list[Action] = []
    for line in out.splitlines():
        word = line.split(" ", 1)[0]
        strings = [re.sub(r"\\(.)", r"\1", m) for m in _QUOTED.findall(line)]
        flags = ""
        if " :flags " in line:
            flags = _flags(strings.pop(0))
        if line.startswith(("keep", "implicit keep")):
            actions.append(("store", "INBOX", flags))
        elif word == "fileinto":
            if " :specialuse " in line:
                strings.pop(0)
            actions.append(("store", strings[-1], flags))
        elif word == "redirect":
            actions.append(("redirect", strings[-1].lower()))
        elif word in ("reject", "ereject"):
            actions.append(("reject",))
        elif word in ("discard", "vacation"):
            actions.append((word,))
        elif word == "notify":
            actions.append(("notify", strings[-1].split(":", 1)[0]))
        elif word in ("addheader", "deleteheader"):
            continue
        else:
            actions.append(("?", line))
    return sorted(actions)
