"""The [outbound] section and the retry schedule."""

from pathlib import Path

from postroom.config import from_dict
from postroom.outbound.settings import DEFAULT_RETRY, parse, retry_delay


def settings(section):
    cfg = from_dict({"hostname": "mx.example.test", "outbound": section}, Path("/tmp/postroom.toml"))
    problems: list[str] = []
    return parse(cfg, problems), problems


def test_defaults():
    s, problems = settings({})
    assert problems == []
    assert s.port == 25 and s.resolver is None and s.relay_host is None
    assert s.max_lifetime == 5 * 86400 and s.delay_warning == 4 * 3600
    assert s.helo_name == "mx.example.test"


def test_documented_keys():
    s, problems = settings({"resolver": "127.0.0.1:5353", "port": 2525, "relay_host": "smart.test:587",
                            "max_lifetime": "3d", "delay_warning": "30m", "relay_user": "u",
                            "relay_password": "p", "retry_schedule": ["1m", "5m", "1h"], "concurrency": 7,
                            "per_domain_concurrency": 2})
    assert problems == []
    assert s.resolver == ("127.0.0.1", 5353) and s.port == 2525 and s.relay_host == ("smart.test", 587)
    assert s.max_lifetime == 3 * 86400 and s.delay_warning == 1800
    assert s.retry_schedule == (60, 300, 3600) and s.concurrency == 7 and s.per_domain_concurrency == 2


def test_problems_are_collected():
    _, problems = settings({"resolver": "dns.example:53", "port": 0, "max_lifetime": "soon",
                            "retry_schedule": ["x"], "relay_user": "u", "colour": "blue"})
    text = "\n".join(problems)
    for key in ("outbound.resolver", "outbound.port", "outbound.max_lifetime", "outbound.retry_schedule",
                "outbound.relay_user", "outbound.colour: unknown key"):
        assert key in text


def test_backoff_grows_then_repeats():
    delays = [retry_delay(DEFAULT_RETRY, n) for n in range(1, 12)]
    assert delays == sorted(delays)
    assert delays[0] == 300 and delays[-1] == delays[-2] == 4 * 3600
    assert retry_delay((10.0,), 5) == 10.0
