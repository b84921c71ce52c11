"""The [mailauth] section: defaults that fit every config, problems with their keys."""

from __future__ import annotations

from pathlib import Path

from postroom.config import from_dict
from postroom.mailauth.settings import parse


def test_default_check_listener_needs_no_smtp_listener(tmp_path: Path) -> None:
    # A POP3-only server (the benches' config) failed `serve` with exit 2: the default
    # check_listeners named "smtp", which that config does not have.
    cfg = from_dict({"listeners": {"pop3": {"address": "127.0.0.1:1110"}}}, tmp_path / "c.toml")
    problems: list[str] = []
    parse(cfg, problems)
    assert problems == []


def test_named_listener_must_exist(tmp_path: Path) -> None:
    cfg = from_dict({"listeners": {"smtp": {"address": "127.0.0.1:2525"}},
                     "mailauth": {"check_listeners": ["smtp", "mx2"]}}, tmp_path / "c.toml")
    problems: list[str] = []
    parse(cfg, problems)
    assert [p.split(":")[0] for p in problems] == ["mailauth.check_listeners"]
    assert "mx2" in problems[0]
