"""bench/http_endpoints.py --quick runs end to end (the figures themselves are not checked)."""

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.sqlite_only("the bench runs in a subprocess, on SQLite (bench/scaleout.py measures PostgreSQL)")
def test_bench_quick():
    res = subprocess.run([sys.executable, str(ROOT / "bench" / "http_endpoints.py"), "--quick"], capture_output=True,
                         text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    for endpoint in ("autoconfig", "autodiscover", "healthz"):
        assert f"{endpoint:<14}http " in res.stdout and f"{endpoint:<14}https " in res.stdout, res.stdout
    assert "p99 ms" in res.stdout and "worst p99" in res.stdout
