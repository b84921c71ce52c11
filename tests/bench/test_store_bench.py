"""Benchmarks are not timed tests: CI only checks that they run and print their figures."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_store_bench_smoke() -> None:
    p = subprocess.run([sys.executable, str(ROOT / "bench" / "store.py"), "--quick"], capture_output=True,
                       text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    rows = [line.split() for line in lines if line.split() and line.split()[0] in ("1", "8", "64")]
    assert [r[0] for r in rows] == ["1", "8", "64"]
    assert all(float(r[1]) > 0 and float(r[3]) > 0 for r in rows)
    assert "at 64 deliverers the store is" in p.stdout
