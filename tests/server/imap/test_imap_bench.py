"""bench/imap.py --quick runs end to end (the figures themselves are not checked)."""

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.sqlite_only("the bench runs in a subprocess, on SQLite (bench/scaleout.py measures PostgreSQL)")
def test_bench_quick():
    res = subprocess.run([sys.executable, str(ROOT / "bench" / "imap.py"), "--quick"], capture_output=True,
                         text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    for op in ("SELECT", "FETCH", "SEARCH", "STORE"):
        assert op in res.stdout
    assert "SELECT of 2000 messages" in res.stdout
    assert "first SELECT after a fresh start" in res.stdout  # issue #22: printed on its own
    if "dovecot skipped" not in res.stdout:
        assert "target: FETCH with 2 clients at least 1.5x Dovecot" in res.stdout
    assert "RESYNC of 300 messages" in res.stdout
    assert "QRESYNC SELECT" in res.stdout and "UID FETCH 1:*" in res.stdout
