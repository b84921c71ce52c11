"""bench/sieve.py --quick runs end to end and prints its figures (not checked: CI machines vary)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_sieve_bench_smoke() -> None:
    p = subprocess.run([sys.executable, str(ROOT / "bench" / "sieve.py"), "--quick", "--workers", "1"],
                       capture_output=True, text=True, check=False, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    rates = dict(re.findall(r"^(no script|30 rules):\s+([\d.]+) deliveries/s$", p.stdout, re.MULTILINE))
    assert set(rates) == {"no script", "30 rules"} and all(float(v) > 0 for v in rates.values()), p.stdout
    assert re.search(r"ratio \(30 rules / no script\): [\d.]+; the script costs -?[\d.]+ % of throughput", p.stdout)
    # The script run filed mail into several mailboxes (lists, notifications, junk…).
    assert re.search(r"script-0 .*\((\d+) mailboxes", p.stdout)
