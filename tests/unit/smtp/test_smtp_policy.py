import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from postroom.smtp import policy
from postroom.smtp.policy import Client, Route


@pytest.mark.parametrize("local,auth,trusted,expected", [
    (True, False, False, Route.LOCAL),
    (False, False, False, Route.DENIED),
    (False, True, False, Route.RELAY),
    (False, False, True, Route.RELAY),
])
def test_route(local, auth, trusted, expected):
    assert policy.route(local, Client(auth, trusted)) is expected


def test_trusted_networks():
    nets, bad = policy.parse_networks(["192.0.2.0/24", "2001:db8::/32", "nonsense"])
    assert len(nets) == 2 and len(bad) == 1
    assert policy.is_trusted("192.0.2.7", nets)
    assert policy.is_trusted("::ffff:192.0.2.7", nets)
    assert policy.is_trusted("2001:db8::1", nets)
    assert not policy.is_trusted("127.0.0.1", nets)
    assert not policy.is_trusted("127.0.0.1", [])  # no default trust, not even loopback


_IPS = st.sampled_from(["192.0.2.7", "192.0.2.255", "198.51.100.1", "127.0.0.1", "::1", "::ffff:192.0.2.7",
                        "2001:db8::1", "2001:db9::1", "fe80::1%eth0", "", "nonsense", "300.1.1.1"])
_NETS = st.lists(st.sampled_from(["192.0.2.0/24", "127.0.0.0/8", "2001:db8::/32", "::1/128", "0.0.0.0/0",
                                  "198.51.100.0/30", "fe80::/10"]), max_size=4)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(_IPS, _NETS, st.booleans()), min_size=1, max_size=20))
def test_is_trusted_remembered_as_asked(asks):
    """The answers kept by (networks, IP) are those of the check itself, for tuples (kept)
    and lists (asked afresh), over a run of questions that repeats IPs and network sets."""
    made = {}
    for ip, cidrs, as_tuple in asks:
        nets = made.setdefault((tuple(cidrs), as_tuple), (tuple if as_tuple else list)(
            policy.parse_networks(cidrs)[0]))
        want = bool(nets) and bool(ip) and policy._is_trusted(ip, nets)
        assert policy.is_trusted(ip, nets) is want
        assert policy.is_trusted(ip, nets) is want


def test_is_trusted_not_kept_for_a_list_changed_in_place():
    nets = policy.parse_networks(["192.0.2.0/24"])[0]
    assert not policy.is_trusted("198.51.100.1", nets)
    nets.append(policy.parse_networks(["198.51.100.0/24"])[0][0])
    assert policy.is_trusted("198.51.100.1", nets)


def test_sender_allowed():
    assert policy.sender_allowed("joe@example.org", "joe@example.org")
    assert policy.sender_allowed("Joe+News@Example.org", "joe@example.org")
    assert policy.sender_allowed("", "joe@example.org")
    assert not policy.sender_allowed("ann@example.org", "joe@example.org")
    assert policy.sender_allowed("sales@example.org", "joe@example.org", ["ann@example.org", "joe@example.org"])
