"""contrib/postroom.service is a unit systemd accepts, and the commands it runs work."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .serving import Serving, make_server_dir

UNIT = Path(__file__).resolve().parents[2] / "contrib" / "postroom.service"
POSTROOM = Path(sys.executable).with_name("postroom")


def _unit_for(cfgp: Path) -> str:
    """The unit with this machine's postroom and ``cfgp`` in place of /opt and /srv."""
    return (UNIT.read_text().replace("/opt/postroom/.venv/bin/postroom", str(POSTROOM))
            .replace("/srv/mail/postroom.toml", str(cfgp)).replace("/srv/mail", str(cfgp.parent)))


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_accepts_the_unit(tmp_path: Path) -> None:
    unit = tmp_path / "postroom.service"
    unit.write_text(_unit_for(tmp_path / "postroom.toml"))
    p = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert "Unknown" not in p.stderr and "ignoring" not in p.stderr, p.stderr


def test_the_units_commands_run(tmp_path: Path) -> None:
    cfgp = make_server_dir(tmp_path / "s")
    lines = dict(line.split("=", 1) for line in _unit_for(cfgp).splitlines() if line.startswith("Exec"))
    check = shlex.split(lines["ExecStartPre"])
    assert check[0] == str(POSTROOM) and check[1:] == ["-c", str(cfgp), "check"]
    assert subprocess.run(check, capture_output=True, timeout=60).returncode == 0
    serve = shlex.split(lines["ExecStart"])
    assert serve[0] == str(POSTROOM) and serve[1:] == ["-c", str(cfgp), "serve"]


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root")
def test_serving_as_root_logs_a_warning(tmp_path: Path) -> None:
    srv = Serving(make_server_dir(tmp_path / "s"))
    try:
        srv.wait_listening()
        assert "running as root: a dedicated user with CAP_NET_BIND_SERVICE is safer" in srv.log()
    finally:
        srv.stop()
