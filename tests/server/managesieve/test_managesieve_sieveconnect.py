"""Interop with Debian's sieve-connect, a real ManageSieve client: STARTTLS to a
self-signed certificate (not verified), AUTHENTICATE PLAIN, then upload, list,
activate, download, and a refused upload that reports the script's line."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from managesieve_harness import PASSWORD, Harness

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("sieve-connect") is None,
                       reason="sieve-connect not installed (scripts/install-test-deps.sh)"),
]

FILTER = 'require "fileinto";\nif header :contains "subject" "[list]" {\n  fileinto "Lists";\n}\n'


def sieve_connect(srv: Harness, user: str, *args: str) -> subprocess.CompletedProcess[str]:
    r, w = os.pipe()
    os.write(w, PASSWORD.encode() + b"\n")
    os.close(w)
    try:
        return subprocess.run(
            ["sieve-connect", "--server", "127.0.0.1", "--port", str(srv.port), "--user", user,
             "--notlsverify", "--passwordfd", str(r), *args],
            pass_fds=(r,), capture_output=True, text=True, timeout=60, check=False)
    finally:
        os.close(r)


def test_upload_list_activate_download(srv: Harness, tmp_path: Path) -> None:
    acc = srv.new_user()
    src = tmp_path / "filters.sieve"
    src.write_text(FILTER)
    p = sieve_connect(srv, acc.address, "--upload", "--localsieve", str(src), "--remotesieve", "filters")
    assert p.returncode == 0, p.stderr
    p = sieve_connect(srv, acc.address, "--list")
    assert p.returncode == 0 and p.stdout.split() == ['"filters"'], (p.stdout, p.stderr)
    p = sieve_connect(srv, acc.address, "--activate", "--remotesieve", "filters")
    assert p.returncode == 0, p.stderr
    p = sieve_connect(srv, acc.address, "--list")
    assert p.stdout.split() == ['"filters"', "ACTIVE"], p.stdout
    assert srv.call(srv.store.get_active_sieve_script(acc.id)) == ("filters", FILTER)
    out = tmp_path / "out.sieve"
    p = sieve_connect(srv, acc.address, "--download", "--remotesieve", "filters", "--localsieve", str(out))
    assert p.returncode == 0, p.stderr
    assert out.read_text() == FILTER
    p = sieve_connect(srv, acc.address, "--deactivate")
    assert p.returncode == 0, p.stderr
    assert srv.call(srv.store.get_active_sieve_script(acc.id)) is None
    p = sieve_connect(srv, acc.address, "--delete", "--remotesieve", "filters")
    assert p.returncode == 0, p.stderr
    assert srv.call(srv.store.list_sieve_scripts(acc.id)) == []


def test_broken_upload_reports_the_line(srv: Harness, tmp_path: Path) -> None:
    acc = srv.new_user()
    src = tmp_path / "broken.sieve"
    src.write_text('require "fileinto";\nif header :is "subject" {\n  keep;\n}\n')
    p = sieve_connect(srv, acc.address, "--upload", "--localsieve", str(src), "--remotesieve", "broken")
    assert p.returncode != 0
    assert "line 2" in p.stdout + p.stderr, (p.stdout, p.stderr)
    assert srv.call(srv.store.list_sieve_scripts(acc.id)) == []


def test_wrong_password_is_refused(srv: Harness) -> None:
    acc = srv.new_user(password="another")
    p = sieve_connect(srv, acc.address, "--list")
    assert p.returncode != 0
