"""``postroom group add|list|set|del``: the command forms, one-line errors, exit codes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from postroom.cli import main

PY = [sys.executable, "-m", "postroom.cli"]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*PY, *args], capture_output=True, text=True, timeout=60, check=False)


def one_line_error(p: subprocess.CompletedProcess[str], code: int) -> None:
    assert p.returncode == code, (p.returncode, p.stderr)
    assert "Traceback" not in p.stderr
    assert p.stderr.strip().count("\n") == 0 and p.stderr.startswith("postroom: "), p.stderr


@pytest.fixture(scope="module")
def cfg(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("groupcli") / "srv"
    assert main(["init", str(d), "--domain", "example.test", "--port-offset", "32000"]) == 0
    return d / "postroom.toml"


def test_group_commands(cfg: Path) -> None:
    c = ("--config", str(cfg))
    p = run(*c, "group", "add", "local.test", "--description", "Test group", "--retention", "30")
    assert p.returncode == 0 and "added group local.test" in p.stdout, p.stderr
    assert run(*c, "group", "add", "local.ro", "--posting", "n", "--read", "anyone").returncode == 0
    out = run(*c, "group", "list").stdout.splitlines()
    assert out == ["local.ro n read=anyone post=accounts",
                   "local.test y read=accounts post=accounts retention=30d Test group"]
    p = run(*c, "group", "set", "local.test", "--posting", "m", "--post", "b@example.test,a@example.test",
            "--list", "list@example.test", "--no-retention")
    assert p.returncode == 0, p.stderr
    out = run(*c, "group", "list").stdout.splitlines()
    assert out[1] == "local.test m read=accounts post=a@example.test,b@example.test list=list@example.test Test group"
    # the groups' internal account is not a user, and its domain is not served
    assert "news.invalid" not in run(*c, "user", "list").stdout
    assert "news.invalid" not in run(*c, "domain", "list").stdout
    assert run(*c, "group", "del", "local.ro").returncode == 0
    assert [ln.split()[0] for ln in run(*c, "group", "list").stdout.splitlines()] == ["local.test"]


@pytest.mark.parametrize(("args", "code", "words"), [
    (("group", "add", "Bad..Name"), 2, "not a newsgroup name"),
    (("group", "add", "local.x", "--posting", "q"), 2, "invalid choice"),
    (("group", "add", "local.x", "--retention", "0"), 2, "number of days"),
    (("group", "add", "local.x", "--read", "nobody"), 1, "not an address"),
    (("group", "add", "local.x", "--list", "not-an-address"), 2, "not an address"),
    (("group", "set", "local.none", "--posting", "y"), 1, "no such newsgroup: local.none"),
    (("group", "del", "local.none"), 1, "no such newsgroup: local.none"),
])
def test_group_errors(cfg: Path, args: tuple[str, ...], code: int, words: str) -> None:
    p = run("--config", str(cfg), *args)
    one_line_error(p, code)
    assert words in p.stderr


def test_group_exists(cfg: Path) -> None:
    c = ("--config", str(cfg))
    assert run(*c, "group", "add", "local.twice").returncode == 0
    p = run(*c, "group", "add", "local.twice")
    one_line_error(p, 1)
    assert "newsgroup already exists: local.twice" in p.stderr
