"""bench/nntp.py --quick runs end to end against INN (when installed) and prints its figures
(not checked against each other: CI machines vary)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.sqlite_only("the bench runs its own Postroom in a subprocess, on SQLite")
def test_nntp_bench_smoke() -> None:
    p = subprocess.run([sys.executable, str(ROOT / "bench" / "nntp.py"), "--quick", "--workers", "1"],
                       capture_output=True, text=True, check=False, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    assert re.search(r"^loaded postroom: \d+ articles/s", p.stdout, re.MULTILINE), p.stdout
    inn = "INN not run" not in p.stdout
    rows = re.findall(r"^\s+(OVER|ARTICLE)\s+(\d+)\s+(\d+)\s+(\S+)\s+(\S+)", p.stdout, re.MULTILINE)
    assert {(op, c) for op, c, *_ in rows} == {("OVER", "1"), ("OVER", "2"), ("ARTICLE", "1"), ("ARTICLE", "2")}
    for _op, _c, postroom, inn_rate, ratio in rows:
        assert int(postroom) > 0
        if inn:  # INN's column and the ratio are figures too
            assert int(inn_rate) > 0 and float(ratio) > 0, p.stdout
    if inn:
        assert re.search(r"^loaded inn: \d+ articles/s", p.stdout, re.MULTILINE), p.stdout
        assert re.search(r"ratio per run, ARTICLE, 2 client\(s\): [\d.]+$", p.stdout, re.MULTILINE)


@pytest.mark.slow
@pytest.mark.sqlite_only("the bench runs its own Postroom in a subprocess, on SQLite")
def test_nntp_bench_pinned_smoke() -> None:
    """--pin puts the servers and the readers on chosen CPUs (docs/nntp.md, "One reader: the
    round trip") and says so in the header."""
    p = subprocess.run([sys.executable, str(ROOT / "bench" / "nntp.py"), "--quick", "--workers", "1", "--no-inn",
                        "--ops", "ARTICLE", "--pin", "same"],
                       capture_output=True, text=True, check=False, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "pinned: servers and readers on CPU 0" in p.stdout, p.stdout
    rows = re.findall(r"^\s+ARTICLE\s+(\d+)\s+(\d+)", p.stdout, re.MULTILINE)
    assert sorted(c for c, _ in rows) == ["1", "2"] and all(int(r) > 0 for _, r in rows), p.stdout
