"""bench/scaleout.py --quick runs end to end: SQLite and 1, 2, 3 PostgreSQL nodes (figures not checked),
capped by cgroups where this machine lets the test write them, uncapped otherwise; no cgroup is left behind."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

from pgcluster import available
from scaleout import CG_PREFIX, PERIOD_US, QUICK, CpuCaps

CONFIGS = {"sqlite, 1 node", "postgresql, 1 node", "postgresql, 2 nodes", "postgresql, 3 nodes"}


def _tables(out: str) -> dict[str, dict[str, list[str]]]:
    """{"SMTP" or "IMAP": {configuration: the row's figures}} from the two tables of the report."""
    tables: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for line in out.splitlines():
        if line.startswith(("SMTP accept+deliver:", "IMAP FETCH of")):
            current = tables.setdefault(line.split()[0], {})
        elif not line.strip():
            current = None  # a table ends at a blank line
        elif current is not None and "," in line:
            current[line[:20].strip()] = line[20:].split()
    return tables


def _block_seconds(kind: str, label: str, rate: float) -> float:
    """How long a --quick block of the report lasted: SMTP is QUICK[0] messages a node at ``rate``
    for all nodes together, FETCH runs QUICK[4] seconds."""
    if kind != "SMTP":
        return QUICK[4]
    nodes = int(label.split(", ")[1].split()[0])
    return QUICK[0] * nodes / rate


def test_block_seconds() -> None:
    assert _block_seconds("SMTP", "sqlite, 1 node", 929.4) == pytest.approx(0.0538, abs=1e-3)
    assert _block_seconds("SMTP", "postgresql, 3 nodes", 1500.0) == pytest.approx(0.1)
    assert _block_seconds("IMAP", "postgresql, 2 nodes", 10.0) == 0.5


@pytest.mark.slow
def test_scaleout_bench_smoke() -> None:
    if not available() and os.environ.get("POSTROOM_TEST_REQUIRE_PG") != "1":
        pytest.skip("PostgreSQL server not installed")
    p = subprocess.Popen([sys.executable, str(ROOT / "bench" / "scaleout.py"), "--quick"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = p.communicate(timeout=600)
    finally:
        p.kill()
    assert p.returncode == 0, out[-3000:] + err[-3000:]
    caps = CpuCaps(0.4)  # what the bench found: the same probe
    try:
        mode = "node CPU: capped at 0.4 core per node" if caps.active else "node CPU: uncapped ("
    finally:
        caps.close()
    assert mode in out, out
    tables = _tables(out)
    assert set(tables) == {"SMTP", "IMAP"}, out
    for kind, rows in tables.items():
        assert set(rows) == CONFIGS, out
        # rate, node ms/op, pg ms/op, client ms/op, cores per node, throttled share
        for label, r in rows.items():
            assert len(r) == 6, (label, r)
            assert float(r[0]) > 0 and float(r[1]) > 0 and float(r[3]) > 0, (label, r)
            if not label.startswith("postgresql"):
                assert float(r[2]) == 0, (label, r)
            elif kind == "SMTP":  # every delivery commits; a FETCH may be served from a node's cache
                assert float(r[2]) > 0, (label, r)
            if caps.active:
                # The share of scheduler periods throttled: "-" when no period ended during the block,
                # which a quick SMTP block (50 messages a node) can be shorter than.
                short = _block_seconds(kind, label, float(r[0])) < 2 * PERIOD_US / 1e6
                assert r[5].endswith("%") or (short and r[5] == "-"), (label, r)
            else:
                assert r[5] == "-", (label, r)
    assert "SMTP, 1 PostgreSQL node / SQLite: " in out
    assert "IMAP FETCH, 3 PostgreSQL nodes / 1 node: " in out
    for root in (Path("/sys/fs/cgroup/cpu"), Path("/sys/fs/cgroup"), Path("/sys/fs/cgroup/unified")):
        assert not list(root.glob(f"{CG_PREFIX}{p.pid}-*")), "the bench left a cgroup behind"


def test_uncapped_when_asked() -> None:
    caps = CpuCaps(0)
    assert not caps.active and caps.describe() == "uncapped (--node-cpu 0)"


def test_caps_groups_made_and_removed() -> None:
    """Where cgroups can be written: a group with the quota, and nothing left after close()."""
    caps = CpuCaps(0.25)
    if not caps.active:
        assert caps.describe().startswith("uncapped (") and caps.reason
        pytest.skip(f"no writable cgroup cpu controller here: {caps.reason}")
    try:
        group = caps.group("t")
        quota = (group / ("cpu.cfs_quota_us" if caps.version == 1 else "cpu.max")).read_text().split()[0]
        assert quota == "25000"
        child = subprocess.Popen(["sleep", "30"])
        caps.adopt("t", [child.pid])
        assert str(child.pid) in (group / "cgroup.procs").read_text().split()
        # close() with a process still inside: it goes back to the root group, the group goes away
        caps.close()
        assert not group.exists() and child.poll() is None
    finally:
        caps.close()
        if "child" in locals():
            child.kill()
            child.wait()
