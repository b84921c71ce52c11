"""Smoke run of bench/pop3.py so the benchmark keeps working."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.sqlite_only("the bench runs in a subprocess, on SQLite (bench/scaleout.py measures PostgreSQL)")
@pytest.mark.slow
def test_bench_quick() -> None:
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "pop3.py"), "--quick"],
                          capture_output=True, timeout=300)
    out = proc.stdout.decode()
    assert proc.returncode == 0, out + proc.stderr.decode()
    assert "postroom msg/s" in out
    rows = [line.split() for line in out.splitlines() if line.strip()[:1].isdigit()]
    assert [r[0] for r in rows] == ["1", "2"]
    assert all(float(r[1]) > 0 for r in rows)
