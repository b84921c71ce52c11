"""Login throttling is shared with the other protocols (``ctx.auth``): once an address has
failed too often, even the right password gets ``NO (TRYLATER)`` (RFC 5804 §1.3)."""

from __future__ import annotations

from managesieve_harness import Harness


def test_throttled_address_gets_trylater(srv: Harness) -> None:
    srv.server.ctx.auth.max_failures = 2  # this module's server only: every client is 127.0.0.1
    acc = srv.new_user()
    c = srv.client()
    try:
        for _ in range(2):
            r = c.authenticate_plain(acc.address, "wrong")
            assert (r.status, r.code) == ("NO", None), r
        r = c.authenticate_plain(acc.address, "secret")
        assert (r.status, r.code) == ("NO", "TRYLATER"), r
        assert c.command("LISTSCRIPTS").status == "NO"  # not logged in
    finally:
        c.close()
