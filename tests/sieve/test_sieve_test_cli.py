"""``postroom sieve test SCRIPT MESSAGE``: one line per action, nothing delivered; exit 1
with line and column for a script that does not compile (tests/sieve/ for the runner)."""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from postroom.cli import main

PY = [sys.executable, "-m", "postroom.cli", "sieve", "test"]
MESSAGE = (b"From: Ann <ann@example.com>\r\nTo: bob+work@example.org\r\nSubject: [dev] build failed\r\n"
           b"List-Id: <dev.lists.example.com>\r\n\r\nThe build failed.\r\n")


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str


def run(tmp_path: Path, script: str, *args: str, message: bytes = MESSAGE) -> Run:
    """The command through the CLI's ``main``, in-process (one real subprocess run is below)."""
    (tmp_path / "s.sieve").write_text(script)
    (tmp_path / "m.eml").write_bytes(message)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["sieve", "test", str(tmp_path / "s.sieve"), str(tmp_path / "m.eml"), *args])
    return Run(code, out.getvalue(), err.getvalue())


def test_actions_one_per_line(tmp_path: Path) -> None:
    p = run(tmp_path, 'require ["fileinto", "imap4flags", "variables", "copy"];\n'
            'if header :matches "list-id" "<*.lists.example.com>" { fileinto :flags "\\\\Seen" "Lists/${1}"; }\n'
            'redirect :copy "archive@example.net";\n')
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines() == ['fileinto :flags "\\\\Seen" "Lists/dev"', 'redirect :copy "archive@example.net"']


def test_implicit_keep_and_envelope_options(tmp_path: Path) -> None:
    script = ('require ["envelope", "subaddress"];\n'
              'if envelope :detail "to" "work" { if envelope :is "from" "ann@example.com" { discard; } }\n')
    p = run(tmp_path, script, "--from", "ann@example.com", "--to", "bob+work@example.org")
    assert p.returncode == 0 and p.stdout.splitlines() == ["discard"], (p.stdout, p.stderr)
    p = run(tmp_path, script, "--from", "other@example.com", "--to", "bob+work@example.org")
    assert p.stdout.splitlines() == ["implicit keep"]


def test_default_recipient_is_the_first_to(tmp_path: Path) -> None:
    p = run(tmp_path, 'require "envelope";\nif envelope :is "to" "bob+work@example.org" { keep; }\n')
    assert p.stdout.splitlines() == ["keep"], (p.stdout, p.stderr)


def test_every_mailbox_exists_offline(tmp_path: Path) -> None:
    p = run(tmp_path, 'require ["mailbox", "fileinto"];\nif mailboxexists "Anything" { fileinto "Anything"; }\n')
    assert p.stdout.splitlines() == ['fileinto "Anything"']


def test_vacation_line(tmp_path: Path) -> None:
    p = run(tmp_path, 'require "vacation";\nvacation :days 3 :subject "Away" "Back soon.";\n',
            "--from", "ann@example.com", "--to", "bob+work@example.org",
            message=MESSAGE.replace(b"List-Id: <dev.lists.example.com>\r\n", b""))
    assert p.stdout.splitlines() == ['vacation to "ann@example.com" :subject "Away" :seconds 259200 "Back soon."',
                                     "implicit keep"], (p.stdout, p.stderr)


@pytest.mark.parametrize("script, where", [
    ('require "fileinto";\nif header :is "subject" { keep; }\n', "line 2, column"),
    ('keep\n', "line 2, column"),
    ('require "vnd.example.nothing";\n', "line 1, column 9"),
])
def test_compile_error_exit_1_with_line_and_column(tmp_path: Path, script: str, where: str) -> None:
    p = run(tmp_path, script)
    assert p.returncode == 1
    assert p.stdout == ""
    assert p.stderr.startswith(f"postroom: {tmp_path / 's.sieve'}: {where}") or f"s.sieve: {where}" in p.stderr, p.stderr


def test_runtime_error_means_implicit_keep(tmp_path: Path) -> None:
    p = run(tmp_path, 'require ["reject", "fileinto"];\nfileinto "Junk";\nreject "no";\n')
    assert p.returncode == 1
    assert p.stdout.splitlines() == ["implicit keep"]
    assert "runtime error" in p.stderr and "line 3" in p.stderr


def test_unreadable_files_are_usage_errors(tmp_path: Path) -> None:
    p = subprocess.run([*PY, str(tmp_path / "none.sieve"), str(tmp_path / "none.eml")],
                       capture_output=True, text=True, check=False, timeout=60)
    assert p.returncode == 2 and "cannot read the script" in p.stderr


def test_needs_no_config_file(tmp_path: Path) -> None:
    (tmp_path / "s.sieve").write_text("keep;\n")
    (tmp_path / "m.eml").write_bytes(MESSAGE)
    p = subprocess.run([sys.executable, "-m", "postroom.cli", "-c", str(tmp_path / "missing.toml"), "sieve", "test",
                        str(tmp_path / "s.sieve"), str(tmp_path / "m.eml")], capture_output=True, text=True, check=False, timeout=60)
    assert p.returncode == 0 and p.stdout == "keep\n", p.stderr
