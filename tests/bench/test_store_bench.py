"""Benchmarks are not timed tests: CI only checks that they run and print their figures."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_store_bench_smoke() -> None:
    p = subprocess.run([sys.executable, str(ROOT / "bench" / "store.py"), "--quick", "--processes", "2",
                        "--ceiling"],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    rows = [line.split() for line in p.stdout.splitlines()
            if line.split() and line.split()[0] in ("1", "2") and "process" not in line]
    assert [(r[0], r[1]) for r in rows] == [(n, c) for n in ("1", "2") for c in ("1", "8", "64")]
    # store msg/s, its CPU per delivery, baseline msg/s, its CPU per delivery, the same for the
    # store with its fsyncs skipped (the ceiling)
    assert all(float(r[2]) > 0 and float(r[3]) > 0 and float(r[5]) > 0 and float(r[6]) > 0 and
               float(r[8]) > 0 and float(r[9]) > 0 for r in rows)
    assert "1 process(es), 64 deliverers: the store is" in p.stdout
    assert "2 process(es), 64 deliverers: the store is" in p.stdout
    # Issue #22 item 5: CPU per delivery with the event loop's share, and durable / no-fsync.
    item5 = [line for line in p.stdout.splitlines() if line.startswith("  cpu: ")]
    assert len(item5) == 6 and all("of which the event loop" in line and "durable/no-fsync" in line
                                   for line in item5)
    assert any(line.startswith("  cpu: 1 process(es), 64 deliverers:") and line.count("the target") == 2
               for line in item5)
