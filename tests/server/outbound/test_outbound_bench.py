"""Smoke run of bench/outbound.py --quick (queue → smtp-sink, 1 and 20 domains)."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[3] / "bench" / "outbound.py"


@pytest.mark.slow
@pytest.mark.skipif(not shutil.which("smtp-sink"), reason="Postfix smtp-sink not installed "
                    "(bash scripts/install-test-deps.sh)")
@pytest.mark.sqlite_only("the bench runs in a subprocess, on SQLite (bench/scaleout.py measures PostgreSQL)")
def test_bench_quick():
    p = subprocess.run([sys.executable, str(BENCH), "--quick"], capture_output=True, text=True, timeout=240)
    assert p.returncode == 0, p.stderr
    lines = [x for x in p.stdout.splitlines() if "msg/s" in x]
    assert len(lines) == 2 and " 1 domain" in lines[0] and "20 domain" in lines[1]
