"""The I/O-free parts of the rate limits: ``[ratelimit]`` values, keys, the tarpit."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from postroom.abuse.counters import Ask, Row, bucket_start, matches
from postroom.abuse.limits import (
    DEFAULTS,
    Limit,
    RateSettings,
    client_keys,
    parse,
    parse_limit,
    tarpit_delay,
)
from postroom.abuse.ratelimit_cli import format_rows
from postroom.config import from_dict


@pytest.mark.parametrize(("text", "limit"), [
    ("100/1m", Limit(100, 60.0)),
    ("5000/1h", Limit(5000, 3600.0)),
    (" 3 / 10m ", Limit(3, 600.0)),
    ("1/30", Limit(1, 30.0)),
    ("off", Limit(0, 60.0)),
    (0, Limit(0, 60.0)),
])
def test_parse_limit(text: object, limit: Limit) -> None:
    assert parse_limit(text) == limit


@pytest.mark.parametrize("text", ["100", "100/", "/1m", "-1/1m", "1.5/1m", "x/1m", "10/5s", "10/1y", 10, True,
                                  "²/1m", None])
def test_parse_limit_refuses(text: object) -> None:
    with pytest.raises(ValueError):
        parse_limit(text)


@given(st.one_of(st.text(max_size=20), st.integers(), st.floats(), st.none(), st.booleans()))
def test_parse_limit_never_crashes_otherwise(value: object) -> None:
    try:
        lim = parse_limit(value)
    except ValueError:
        return
    assert lim.count >= 0 and lim.window >= 10


@given(st.integers(min_value=1, max_value=10**6), st.sampled_from(["s", "m", "h", "d"]),
       st.integers(min_value=10, max_value=1000))
def test_parse_limit_round_trip(count: int, unit: str, n: int) -> None:
    lim = parse_limit(f"{count}/{n}{unit}")
    assert lim.count == count and lim.window == n * {"s": 1, "m": 60, "h": 3600, "d": 86400}[unit]


def _settings(table: dict[str, object]) -> tuple[RateSettings, list[str]]:
    cfg = from_dict({"ratelimit": table}, Path("/tmp/postroom.toml"))
    problems: list[str] = []
    return parse(cfg, problems), problems


def test_defaults_are_documented_values() -> None:
    s, problems = _settings({})
    assert problems == []
    assert s.enabled and [str(n) for n in s.exempt] == ["127.0.0.1/32", "::1/128"]
    assert {name: s.limit(name) for name in DEFAULTS} == {name: parse_limit(v) for name, v in DEFAULTS.items()}
    # A mailing-list host delivering 1000 recipients, an office behind one NAT address:
    # far under the client limits.
    assert s.limit("ip_recipients").count >= 1000 and s.limit("ip_messages").count >= 1000


def test_config_problems_are_reported_by_key() -> None:
    _s, problems = _settings({"ip_messages": "lots", "tarpit_from": 2.0, "exempt": ["nonsense"],
                              "ipv4_prefix": 40, "user_mesages": "1/1h", "tarpit_delay": "2m"})
    assert sorted(p.split(":")[0] for p in problems) == [
        "ratelimit.exempt", "ratelimit.ip_messages", "ratelimit.ipv4_prefix", "ratelimit.tarpit_delay",
        "ratelimit.tarpit_from", "ratelimit.user_mesages"]


@pytest.mark.parametrize(("ip", "keys"), [
    ("192.0.2.77", ("192.0.2.77", "192.0.2.0/24")),
    ("::ffff:192.0.2.77", ("192.0.2.77", "192.0.2.0/24")),
    ("2001:db8:1:2:3:4:5:6", ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64")),
    ("fe80::1%eth0", ("fe80::1", "fe80::/64")),
])
def test_client_keys(ip: str, keys: tuple[str, str]) -> None:
    assert client_keys(ip, RateSettings()) == keys


def test_client_keys_refuses_non_addresses() -> None:
    with pytest.raises(ValueError):
        client_keys("unix-socket", RateSettings())


def test_tarpit_grows_to_the_delay_at_the_limit() -> None:
    s = RateSettings(tarpit_from=0.5, tarpit_delay=4.0)
    ask = Ask("ip:connections:x", 10, 60.0)
    delays = [tarpit_delay([n], [ask], s) for n in range(10)]
    assert delays[:4] == [0.0] * 4  # under half the limit
    assert delays == sorted(delays) and 0 < delays[5] < delays[9] == 4.0
    # The worst key decides; tarpit_from 1 means no delay before the refusal.
    other = Ask("net:connections:y", 100, 60.0)
    assert tarpit_delay([9, 1], [ask, other], s) == 4.0
    assert tarpit_delay([9], [ask], RateSettings(tarpit_from=1.0)) <= 4.0


@given(st.integers(min_value=0, max_value=10**6), st.integers(min_value=1, max_value=10**6),
       st.floats(min_value=0.01, max_value=1.0))
def test_tarpit_is_bounded(n: int, limit: int, frm: float) -> None:
    s = RateSettings(tarpit_from=frm, tarpit_delay=5.0)
    assert 0.0 <= tarpit_delay([n], [Ask("k", limit, 60.0)], s) <= 5.0


@given(st.floats(min_value=1e9, max_value=2e9), st.sampled_from([10.0, 60.0, 600.0, 3600.0]))
def test_bucket_start(now: float, window: float) -> None:
    start = bucket_start(now, window)
    assert start <= now + 0.001 and now - start < window / 10 + 0.001


def test_key_matching_for_clear() -> None:
    assert matches("ip:messages:192.0.2.7", "192.0.2.7")
    assert matches("user:remote_recipients:joe@example.org", "joe@example.org")
    assert matches("ip:messages:192.0.2.7", "ip:messages:192.0.2.7")
    assert not matches("ip:messages:192.0.2.70", "192.0.2.7")
    assert matches("ip:connections:2001:db8::1", "2001:db8::1")  # IPv6 colons stay in the value


def test_list_shows_near_and_over() -> None:
    s = RateSettings(limits={"ip_connections": Limit(10, 60.0)})
    rows = [Row("ip:connections:192.0.2.1", 3, 60.0), Row("ip:connections:192.0.2.2", 6, 60.0),
            Row("ip:connections:192.0.2.3", 10, 60.0), Row("odd:key:x", 1, 90.0)]
    assert format_rows(rows, s, everything=False) == [
        "ip:connections:192.0.2.2  6/10 per 1m  near (slowed)",
        "ip:connections:192.0.2.3  10/10 per 1m  OVER",
    ]
    assert format_rows(rows, s, everything=True)[0] == "ip:connections:192.0.2.1  3/10 per 1m  ok"
    assert format_rows(rows, s, everything=True)[-1] == "odd:key:x  1/- per 90s  ok"
