import pytest

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


def test_sender_allowed():
    assert policy.sender_allowed("joe@example.org", "joe@example.org")
    assert policy.sender_allowed("Joe+News@Example.org", "joe@example.org")
    assert policy.sender_allowed("", "joe@example.org")
    assert not policy.sender_allowed("ann@example.org", "joe@example.org")
    assert policy.sender_allowed("sales@example.org", "joe@example.org", ["ann@example.org", "joe@example.org"])
