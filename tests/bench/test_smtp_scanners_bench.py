"""bench/smtp.py --scanners --quick: Postroom with clamd (and rspamd when installed) on next to
off, every message delivered, the per-message costs printed (figures not checked: CI
machines vary)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
from clamdpeer import CLAMD


@pytest.mark.sqlite_only("the bench runs in a subprocess, on SQLite")
@pytest.mark.slow
@pytest.mark.skipif(shutil.which("smtp-source") is None, reason="smtp-source (postfix) not installed")
@pytest.mark.skipif(CLAMD is None, reason="clamd (clamav-daemon) not installed")
def test_scanners_bench_smoke() -> None:
    p = subprocess.run([sys.executable, str(ROOT / "bench" / "smtp.py"), "--scanners", "--quick", "--messages", "100",
                        "--workers", "1"],
                       capture_output=True, text=True, check=False, timeout=900)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert "none: all" in p.stdout and "clamav: all" in p.stdout, p.stdout
    assert "DELIVERY CHECK FAILED" not in p.stdout
    rows = dict(re.findall(r"^(none|clamav)\s+([\d.]+)/s", p.stdout, re.MULTILINE))
    assert set(rows) == {"none", "clamav"} and all(float(v) > 0 for v in rows.values()), p.stdout
    assert re.search(r"^postroom overhead with clamav: -?[\d.]+ ms CPU/msg in Postroom", p.stdout, re.MULTILINE)
    assert re.search(r"^clamav .* clamav [\d.]+ ms$", p.stdout, re.MULTILINE), p.stdout
