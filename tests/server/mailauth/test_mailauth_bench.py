"""Smoke-run bench/mailauth.py --quick: signing and checks measured, the MX path delivers everything."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[3] / "bench" / "mailauth.py"


@pytest.mark.sqlite_only("the bench runs in a subprocess, on SQLite (bench/scaleout.py measures PostgreSQL)")
@pytest.mark.slow
@pytest.mark.skipif(shutil.which("smtp-source") is None, reason="smtp-source (postfix) not installed")
def test_bench_quick() -> None:
    p = subprocess.run([sys.executable, str(BENCH), "--quick", "--no-postfix"], capture_output=True, text=True,
                       timeout=600)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "rsa-2048" in p.stdout and "ed25519" in p.stdout
    assert "spf=pass dkim=pass,pass dmarc=pass" in p.stdout
    assert "checks on / off" in p.stdout
    assert "CHECK FAILED" not in p.stdout


@pytest.mark.sqlite_only("the bench runs in a subprocess, on SQLite (bench/scaleout.py measures PostgreSQL)")
@pytest.mark.slow
@pytest.mark.skipif(shutil.which("smtp-source") is None, reason="smtp-source (postfix) not installed")
def test_bench_cpu_side_by_side() -> None:
    """``--cpu N --against SRC`` (two copies of the code at once; here this tree twice): both
    servers get every message, and the line of each round (checks on, checks off) gives both figures."""
    src = str(BENCH.parents[1] / "src")
    p = subprocess.run([sys.executable, str(BENCH), "--quick", "--cpu", "20", "--rounds", "1", "--against", src],
                       capture_output=True, text=True, timeout=600, check=False)
    assert p.returncode == 0, p.stdout + p.stderr
    rounds = [line for line in p.stdout.splitlines() if "round 1: this tree" in line]
    assert len(rounds) == 2 and all(" ms, against " in line for line in rounds), p.stdout
