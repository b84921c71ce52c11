"""MX ordering (pure) and destination lookup against the DNS fixture."""

import asyncio
import random
from collections import Counter

import pytest

from dnsfixture import DnsFixture
from postroom.outbound.dns import (DestinationResolver, DnsPermanent, DnsTemporary, address_literal,
                                   is_null_mx, order_mx)


def test_order_by_preference():
    out = order_mx([(20, "b"), (10, "a"), (30, "c")])
    assert [n for _, n in out] == ["a", "b", "c"]


def test_equal_preferences_are_shuffled():
    # RFC 5321 §5.1: hosts of equal preference are tried in random order.
    firsts = Counter(order_mx([(10, "a"), (10, "b"), (10, "c"), (20, "z")], random.Random(i))[0][1]
                     for i in range(300))
    assert set(firsts) == {"a", "b", "c"}
    assert min(firsts.values()) > 50
    for i in range(20):
        assert order_mx([(10, "a"), (10, "b"), (20, "z")], random.Random(i))[-1] == (20, "z")


def test_null_mx_and_literals():
    assert is_null_mx([(0, ".")]) and is_null_mx([(0, "")])
    assert not is_null_mx([(0, "."), (10, "mx")])
    assert address_literal("[127.0.0.2]") == "127.0.0.2"
    assert address_literal("[IPv6:::1]") == "::1"
    assert address_literal("example.org") is None


@pytest.fixture
def srv():
    with DnsFixture() as s:
        yield s


def resolve(srv, domain):
    r = DestinationResolver((srv.host, srv.port), timeout=2)
    return asyncio.run(r.hosts_for_domain(domain))


def test_mx_lookup(srv):
    srv.mx("example.test", [(20, "mx2.example.test"), (10, "mx1.example.test")])
    srv.a("mx1.example.test", "127.0.0.2")
    srv.a("mx2.example.test", "127.0.0.3", "127.0.0.4")
    hosts = resolve(srv, "example.test")
    assert [(h.name, tuple(sorted(h.addresses))) for h in hosts] == [
        ("mx1.example.test", ("127.0.0.2",)), ("mx2.example.test", ("127.0.0.3", "127.0.0.4"))]


def test_implicit_mx(srv):
    # RFC 5321 §5.1: no MX records → the domain's own A/AAAA records.
    srv.a("plain.test", "127.0.0.5")
    srv.aaaa("plain.test", "::1")
    [h] = resolve(srv, "plain.test")
    assert h.name == "plain.test" and h.addresses == ("127.0.0.5", "::1")


def test_null_mx_bounces(srv):
    srv.null_mx("nomail.test")
    with pytest.raises(DnsPermanent) as e:
        resolve(srv, "nomail.test")
    assert e.value.status == "5.1.10"  # RFC 7505 §4.2


def test_nxdomain_is_permanent(srv):
    with pytest.raises(DnsPermanent) as e:
        resolve(srv, "nowhere.test")
    assert e.value.status == "5.1.2"


def test_servfail_is_temporary(srv):
    srv.servfail("broken.test")
    with pytest.raises(DnsTemporary):
        resolve(srv, "broken.test")


def test_mx_without_addresses_is_temporary(srv):
    srv.mx("half.test", [(10, "gone.half.test")])
    with pytest.raises(DnsTemporary):
        resolve(srv, "half.test")
