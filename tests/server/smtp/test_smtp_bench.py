"""Smoke-run bench/smtp.py --quick: all three servers start, every message is delivered."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[3] / "bench" / "smtp.py"


@pytest.mark.sqlite_only("the bench runs in a subprocess, on SQLite (bench/scaleout.py measures PostgreSQL)")
@pytest.mark.slow
@pytest.mark.skipif(shutil.which("smtp-source") is None, reason="smtp-source (postfix) not installed")
def test_bench_quick():
    p = subprocess.run([sys.executable, str(BENCH), "--quick"], capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "postroom: all" in p.stdout and "aiosmtpd: all" in p.stdout
    assert "ratios" in p.stdout
