"""Config parsing: every problem reported with its key; value parsers."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from postroom.config import ConfigError, from_dict, parse_duration, parse_hostport, parse_size


def test_value_parsers() -> None:
    assert parse_duration("30s") == 30 and parse_duration("10m") == 600 and parse_duration("4h") == 14400
    assert parse_duration("5d") == 432000 and parse_duration(7) == 7 and parse_duration("250ms") == 0.25
    assert parse_size("10M") == 10 * 1024**2 and parse_size("512k") == 512 * 1024 and parse_size(5) == 5
    assert parse_hostport("127.0.0.1:25") == ("127.0.0.1", 25)
    assert parse_hostport("[::1]:587") == ("::1", 587)
    assert parse_hostport("2525") == ("127.0.0.1", 2525)
    for bad in ("soon", "-1s", True, None, "5 parsecs"):
        with pytest.raises(ValueError):
            parse_duration(bad)
    for bad in ("big", -1, "1T", False):
        with pytest.raises(ValueError):
            parse_size(bad)
    for bad in ("host", "1.2.3.4:70000", "::1:25", 3.5):
        with pytest.raises(ValueError):
            parse_hostport(bad)


@given(st.one_of(st.text(max_size=20), st.integers(), st.floats(allow_nan=True), st.booleans(), st.none()))
def test_value_parsers_never_crash(v: object) -> None:
    for fn in (parse_duration, parse_size, parse_hostport):
        try:
            fn(v)
        except ValueError:
            pass


def test_every_problem_with_its_key(tmp_path: Path) -> None:
    data = {
        "hostname": "bad host!", "workers": 0, "typo": 1,
        "storage": {"backend": "oracle"},
        "limits": {"message_size": "x", "line_length": 10, "connections": "many"},
        "listeners": {"smtp": {"address": "127.0.0.1:25"}, "imap": {"address": "127.0.0.1:25"},
                      "odd": {"address": "not-an-ip:1", "tls": "maybe"}},
        "smtp": [],
    }
    with pytest.raises(ConfigError) as exc:
        from_dict(data, tmp_path / "postroom.toml")
    keys = [p.split(":")[0] for p in exc.value.problems]
    for k in ("hostname", "workers", "typo", "storage.backend", "limits.message_size", "limits.line_length",
              "limits.connections", "listeners.imap.address", "listeners.odd.address", "listeners.odd.tls",
              "listeners.odd.protocol", "smtp"):
        assert k in keys, (k, exc.value.problems)


def test_defaults(tmp_path: Path) -> None:
    cfg = from_dict({"listeners": {"imaps": {"address": "127.0.0.1:993"}}}, tmp_path / "c.toml")
    [lst] = cfg.listeners
    assert (lst.protocol, lst.tls, lst.port) == ("imap", "implicit", 993)
    assert cfg.data_dir == tmp_path / "data"


def test_non_ascii_digits_in_a_port_are_a_config_problem(tmp_path):
    """"²".isdigit() is True but int("²") raises: a problem line, not a traceback."""
    from postroom.config import check

    cfgp = tmp_path / "postroom.toml"
    cfgp.write_text('hostname = "mx.example.test"\n[listeners.smtp]\naddress = "127.0.0.1:²5"\n')
    problems = check(cfgp)
    assert any(p.startswith("listeners.smtp.address:") and "no valid port" in p for p in problems), problems
