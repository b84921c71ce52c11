"""bench/idle.py --quick runs end to end against a real server (and Dovecot where it can) and prints
its figures; the figures themselves are not checked (CI machines vary): only that every session
stayed open and every idling session of a user heard of that user's new mail."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_idle_bench_smoke() -> None:
    p = subprocess.run([sys.executable, str(ROOT / "bench" / "idle.py"), "--quick"],
                       capture_output=True, text=True, check=False, timeout=900)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    rows = re.findall(r"^(postroom|dovecot)\s+(plain|tls)\s+(\d+)\s+([\d.-]+)\s+([\d.]+)\s+([\d.]+)\s+[\d.]+\s+(\d+)\s+(\d+)$",
                      p.stdout, re.MULTILINE)
    ours = [r for r in rows if r[0] == "postroom"]
    assert [r[1] for r in ours] == ["plain", "tls"], p.stdout
    for _name, _mode, sessions, kb, median, p99, dropped, missed in ours:
        assert int(sessions) > 0 and float(kb) > 0 and float(p99) >= float(median) >= 0
        assert (dropped, missed) == ("0", "0"), p.stdout
    assert re.search(r"^postroom plain: [\d.]+ KB/conn \(target <= 16\), p99 [\d.]+ ms", p.stdout, re.MULTILINE)
