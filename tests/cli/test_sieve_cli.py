"""``postroom sieve put|get|list|activate|deactivate|del|check``: the real command, against a
config from ``init``, checked against the store and the ManageSieve rules."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from postroom.cli import main
from postroom.config import load
from postroom.storage import open_store

PY = [sys.executable, "-m", "postroom.cli"]
FILTER = 'require "fileinto";\nif header :contains "subject" "[list]" {\n  fileinto "Lists";\n}\n'
BROKEN = 'require "fileinto";\nif header :is "subject" {\n  keep;\n}\n'
USER = "sieve@example.test"


def run(cfgp: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*PY, "-c", str(cfgp), *args], capture_output=True, text=True, timeout=60, input=stdin,
                          check=False)


def one_line_error(p: subprocess.CompletedProcess[str], code: int) -> str:
    assert p.returncode == code, (p.returncode, p.stdout, p.stderr)
    assert "Traceback" not in p.stderr
    assert p.stderr.strip().count("\n") == 0 and p.stderr.startswith("postroom: "), p.stderr
    return p.stderr


def active(cfgp: Path, address: str) -> tuple[str, str] | None:
    cfg = load(cfgp)

    async def go() -> tuple[str, str] | None:
        store = open_store(cfg)
        await store.open()
        try:
            acct = await store.get_account(address)
            return await store.get_active_sieve_script(acct.id)
        finally:
            await store.close()
    return asyncio.run(go())


@pytest.fixture(scope="module")
def cfgp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("sievecli") / "srv"
    assert main(["init", str(d), "--domain", "example.test", "--port-offset", "33000"]) == 0
    cfgp = d / "postroom.toml"
    cfgp.write_text(cfgp.read_text() + '\n[sieve]\nmax_scripts = 2\nmax_script_size = "1k"\n')
    p = run(cfgp, "user", "add", USER, "--password-stdin", stdin="pw\n")
    assert p.returncode == 0, p.stderr
    return cfgp


def test_put_list_get_activate_delete(cfgp: Path, tmp_path: Path) -> None:
    f = tmp_path / "filters.sieve"
    f.write_text(FILTER)
    p = run(cfgp, "sieve", "put", USER, "filters", str(f))
    assert p.returncode == 0 and "stored" in p.stdout, p.stderr
    p = run(cfgp, "sieve", "put", USER, "other", "-", "--activate", stdin="keep;\n")
    assert p.returncode == 0 and "(active)" in p.stdout, p.stderr
    assert active(cfgp, USER) == ("other", "keep;\n")
    p = run(cfgp, "sieve", "list", USER)
    assert p.stdout.splitlines() == ["  filters", "* other"]
    p = run(cfgp, "sieve", "get", USER, "filters")
    assert p.returncode == 0 and p.stdout == FILTER
    p = run(cfgp, "sieve", "activate", USER, "filters")
    assert p.returncode == 0, p.stderr
    assert active(cfgp, USER) == ("filters", FILTER)
    assert "deactivate it first" in one_line_error(run(cfgp, "sieve", "del", USER, "filters"), 1)
    p = run(cfgp, "sieve", "deactivate", USER)
    assert p.returncode == 0 and active(cfgp, USER) is None
    p = run(cfgp, "sieve", "list", USER)
    assert p.stdout.splitlines() == ["  filters", "  other"]
    # The quota of [sieve] applies to the CLI too.
    assert "max_scripts" in one_line_error(run(cfgp, "sieve", "put", USER, "third", "-", stdin="keep;"), 1)
    assert run(cfgp, "sieve", "del", USER, "filters").returncode == 0
    assert run(cfgp, "sieve", "del", USER, "other").returncode == 0
    assert "has no scripts" in run(cfgp, "sieve", "list", USER).stdout


def test_refusals(cfgp: Path, tmp_path: Path) -> None:
    f = tmp_path / "broken.sieve"
    f.write_text(BROKEN)
    err = one_line_error(run(cfgp, "sieve", "put", USER, "broken", str(f)), 1)
    assert f"{f}: line 2, column " in err
    assert "no such account" in one_line_error(run(cfgp, "sieve", "list", "nobody@example.test"), 1)
    assert "has no script" in one_line_error(run(cfgp, "sieve", "get", USER, "missing"), 1)
    assert "has no script" in one_line_error(run(cfgp, "sieve", "activate", USER, "missing"), 1)
    assert "has no script" in one_line_error(run(cfgp, "sieve", "del", USER, "missing"), 1)
    one_line_error(run(cfgp, "sieve", "list", "not-an-address"), 2)
    one_line_error(run(cfgp, "sieve", "put", USER, "bad\tname", "-", stdin="keep;"), 2)
    one_line_error(run(cfgp, "sieve", "put", USER, "x", str(tmp_path / "missing.sieve")), 2)
    assert "max_script_size" in one_line_error(run(cfgp, "sieve", "put", USER, "x", "-", stdin="#" * 2000), 1)


def test_check(cfgp: Path, tmp_path: Path) -> None:
    good, bad, binary = tmp_path / "good.sieve", tmp_path / "bad.sieve", tmp_path / "binary.sieve"
    good.write_text(FILTER)
    bad.write_text(BROKEN)
    binary.write_bytes(b"keep;\n# \xff\xfe\n")
    p = run(cfgp, "sieve", "check", str(good))
    assert p.returncode == 0 and p.stdout.strip() == f"{good}: OK", p.stderr
    err = one_line_error(run(cfgp, "sieve", "check", str(bad)), 1)
    assert f"{bad}: line 2, column " in err
    assert "line 2: not valid UTF-8" in one_line_error(run(cfgp, "sieve", "check", str(binary)), 1)


def test_init_writes_the_listener_and_check_reads_the_section(cfgp: Path, tmp_path: Path) -> None:
    text = cfgp.read_text()
    assert '[listeners.managesieve]\naddress = "127.0.0.1:37190"' in text  # 4190 + --port-offset
    bad = cfgp.parent / "bad.toml"
    bad.write_text(text.replace("max_scripts = 2", 'max_scripts = 0\nbefore = "missing.sieve"\n'
                                'vacation_min_period = "2d"\nvacation_default_period = "1d"\nmax_actoins = 3'))
    p = run(bad, "check")
    assert p.returncode != 0
    assert "sieve.max_scripts: must be at least 1" in p.stderr + p.stdout
    assert "sieve.max_actoins: unknown key" in p.stderr + p.stdout
    assert "sieve.vacation_default_period: must be between" in p.stderr + p.stdout
    assert "sieve.before: cannot read" in p.stderr + p.stdout
    broken = cfgp.parent / "before.sieve"
    broken.write_text(BROKEN)
    bad.write_text(text + '\n[managesieve]\nmax_bad_commands = 0\n')
    bad.write_text(bad.read_text().replace("max_scripts = 2", 'max_scripts = 2\nbefore = "before.sieve"'))
    p = run(bad, "check")
    assert "sieve.before: " in p.stderr + p.stdout and "line 2, column" in p.stderr + p.stdout
    assert "managesieve.max_bad_commands: must be at least 1" in p.stderr + p.stdout
