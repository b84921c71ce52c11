"""The resolver's own answer cache (resolver.Resolver.query_expiring), which every check's
lookups go through: an answer is reused for exactly its TTL, never changed by a caller,
and never reused after it expired."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # tests/dnsfixture.py

from dnsfixture import DnsFixture

from postroom.resolver import DnsSettings, Resolver

NAME = "sel._domainkey.sender.test"


def test_answer_kept_for_its_ttl_then_asked_again() -> None:
    with DnsFixture(ttl=1) as dns:
        dns.txt(NAME, "v=DKIM1; p=first")

        async def run() -> None:
            r = Resolver(DnsSettings((dns.host, dns.port), 1.0, 1))
            assert not r.has_answer(NAME, "TXT")
            records, expiry = await r.query_expiring(NAME, "TXT")
            assert [b"".join(x.strings) for x in records or []] == [b"v=DKIM1; p=first"]  # type: ignore[attr-defined]
            assert time.time() < expiry <= time.time() + 1
            asked = len(dns.queries)
            assert r.has_answer(NAME, "TXT")
            assert await r.txt(NAME) == [b"v=DKIM1; p=first"]
            again = await r.query(NAME, "TXT")
            assert again is not None
            again.clear()  # the caller's list, not the cache's
            assert await r.txt(NAME) == [b"v=DKIM1; p=first"]
            assert len(dns.queries) == asked  # all three from the cache
            dns.txt(NAME, "v=DKIM1; p=second")
            await asyncio.sleep(max(0.0, expiry - time.time()) + 0.05)
            assert not r.has_answer(NAME, "TXT")
            assert await r.txt(NAME) == [b"v=DKIM1; p=second"]
            assert len(dns.queries) == asked + 1

        asyncio.run(run())


def test_missing_name_and_other_type_are_their_own_answers() -> None:
    with DnsFixture(ttl=60) as dns:
        dns.txt(NAME, "v=DKIM1; p=x")

        async def run() -> None:
            r = Resolver(DnsSettings((dns.host, dns.port), 1.0, 1))
            assert await r.txt(NAME) == [b"v=DKIM1; p=x"]
            assert await r.query(NAME, "A") == []  # the name exists, without A records
            assert await r.txt("nothing." + NAME) is None  # NXDOMAIN
            assert await r.txt(NAME) == [b"v=DKIM1; p=x"]

        asyncio.run(run())
