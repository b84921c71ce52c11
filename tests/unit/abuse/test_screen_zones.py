"""The DNSBL/DNSWL site syntax (postscreen's ``zone[=filter][*weight]``) and the
query names (RFC 5782 §2.1, §2.4)."""

from __future__ import annotations

import asyncio
import ipaddress
from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from postroom.abuse.screen import dnsbl_score, reverse_name
from postroom.abuse.screen_settings import ScreenSettings, parse_site
from postroom.resolver import DnsTemporary


@pytest.mark.parametrize("text, zone, weight, listed, not_listed", [
    ("zen.spamhaus.org", "zen.spamhaus.org", 1, ["127.0.0.2", "127.0.0.11"], ["127.255.255.254"]),
    ("zen.spamhaus.org=127.0.0.[2..11]*3", "zen.spamhaus.org", 3, ["127.0.0.2", "127.0.0.11"],
     ["127.0.0.1", "127.0.0.12", "127.255.255.254"]),
    ("list.dnswl.org=127.0.[0..255].[1..3]*-5", "list.dnswl.org", -5, ["127.0.10.1", "127.0.255.3"],
     ["127.0.10.0", "127.1.10.1"]),
    ("bl.example.=127.0.0.[2;4;9..10]", "bl.example", 1, ["127.0.0.2", "127.0.0.4", "127.0.0.10"],
     ["127.0.0.3", "127.0.0.11"]),
    ("b.barracudacentral.org=127.0.0.2*2", "b.barracudacentral.org", 2, ["127.0.0.2"], ["127.0.0.3"]),
    ("BL.Example.ORG*10", "bl.example.org", 10, ["127.0.0.5"], []),
])
def test_sites(text: str, zone: str, weight: int, listed: list[str], not_listed: list[str]) -> None:
    site = parse_site(text)
    assert (site.zone, site.weight) == (zone, weight)
    assert all(site.matches(a) for a in listed)
    assert not any(site.matches(a) for a in not_listed)
    assert not site.matches("not an address")


@pytest.mark.parametrize("text", [
    "", "localhost", "zen.spamhaus.org*", "zen.spamhaus.org*0", "zen.spamhaus.org*x",
    "zen.spamhaus.org=127.0.0", "zen.spamhaus.org=127.0.0.256", "zen.spamhaus.org=127.0.0.[11..2]",
    "zen.spamhaus.org=127.0.0.[2..300]", "zen.spamhaus.org=127.0.0.[a]", "zen.spamhaus.org=127.0.0.[]",
    "zen spamhaus.org", "zen..spamhaus.org", "-zen.spamhaus.org", "zen.spamhaus.org=127.0.0.2.1",
])
def test_bad_sites(text: str) -> None:
    with pytest.raises(ValueError):
        parse_site(text)


def test_query_names() -> None:
    assert reverse_name("192.0.2.99") == "99.2.0.192"
    assert reverse_name("::ffff:192.0.2.99") == "99.2.0.192"
    # RFC 5782 §2.4's example: 2001:db8:1:2:3:4:567:89ab
    assert reverse_name("2001:db8:1:2:3:4:567:89ab") == \
        "b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2"


_octet = st.one_of(
    st.integers(0, 255).map(str),
    st.tuples(st.integers(0, 255), st.integers(0, 255)).map(lambda t: f"[{min(t)}..{max(t)}]"),
    st.lists(st.integers(0, 255), min_size=1, max_size=4).map(lambda v: "[" + ";".join(map(str, v)) + "]"),
)


@given(st.lists(_octet, min_size=4, max_size=4), st.integers(-99, 99).filter(bool),
       st.ip_addresses(v=4).map(str))
def test_filter_matches_exactly_the_octets_it_names(octets: list[str], weight: int, answer: str) -> None:
    site = parse_site(f"bl.example.org={'.'.join(octets)}*{weight}")
    assert site.weight == weight

    def allowed(pattern: str, value: int) -> bool:
        if not pattern.startswith("["):
            return int(pattern) == value
        for item in pattern[1:-1].split(";"):
            lo, _, hi = item.partition("..")
            if int(lo) <= value <= int(hi or lo):
                return True
        return False

    expected = all(allowed(p, v) for p, v in zip(octets, ipaddress.IPv4Address(answer).packed))
    assert site.matches(answer) == expected


@given(st.text(max_size=60))
def test_any_text_parses_or_raises_value_error(text: str) -> None:
    try:
        site = parse_site(text)
    except ValueError:
        return
    assert site.zone and site.weight != 0


@given(st.ip_addresses())
def test_query_name_shape(addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> None:
    name = reverse_name(str(addr))
    labels = name.split(".")
    if addr.version == 4 or (addr.version == 6 and addr.ipv4_mapped):
        assert len(labels) == 4
    else:
        assert len(labels) == 32 and all(len(x) == 1 for x in labels)


class _Answers:
    """Stands in for the resolver: A records by name, DnsTemporary for ``down`` zones."""

    def __init__(self, records: dict[str, list[str]], down: tuple[str, ...] = ()) -> None:
        self.records, self.down = records, down
        self.asked: list[tuple[str, str]] = []

    async def query(self, name: str, rdtype: str) -> list[object] | None:
        self.asked.append((name, rdtype))
        if any(name.endswith("." + z) for z in self.down):
            raise DnsTemporary(f"{name} timed out")
        found = self.records.get(name)
        return None if found is None else [SimpleNamespace(address=a) for a in found]


def test_score_adds_weights_names_a_blocking_zone_and_skips_failures() -> None:
    s = ScreenSettings(dnsbl_sites=tuple(parse_site(t) for t in (
        "wl.example*-1", "bl.example=127.0.0.[2..4]*3", "bl.example=127.0.0.4*2", "down.example*5")))
    res_ = _Answers({"7.2.0.192.wl.example": ["127.0.0.9"], "7.2.0.192.bl.example": ["127.0.0.4"]},
                    down=("down.example",))
    res = asyncio.run(dnsbl_score(res_, "192.0.2.7", s))  # type: ignore[arg-type]
    assert res.score == -1 + 3 + 2  # both bl.example filters match; the down zone counts nothing
    assert res.blocking == ["bl.example"] and set(res.zones) == {"wl.example", "bl.example"}
    assert res.failed == ["down.example"]
    assert sorted(n for n, _ in res_.asked) == ["7.2.0.192.bl.example", "7.2.0.192.down.example",
                                                "7.2.0.192.wl.example"]  # each zone asked once
