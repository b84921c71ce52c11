"""The cache of verified credentials (auth/verified.py): a reconnect storm costs one hash
check per account, and nothing a wrong or changed password could use."""

from __future__ import annotations

import asyncio

import pytest

from postroom.auth import authenticator as authmod
from postroom.auth import hash_password
from postroom.auth.authenticator import Authenticator
from postroom.auth.verified import VerifiedLogins


@pytest.fixture
def checks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every real hash check the authenticator makes, by the password offered."""
    seen: list[str] = []
    real = authmod.verify_password

    def counting(stored: str, password: str) -> bool:
        seen.append(password)
        return real(stored, password)

    monkeypatch.setattr(authmod, "verify_password", counting)
    return seen


def test_second_login_skips_the_hash_check(store_factory, checks: list[str]) -> None:
    async def t() -> None:
        async with store_factory() as s:
            await s.add_domain("example.test")
            await s.create_account("u@example.test", hash_password("pw"))
            auth = Authenticator(s, base_delay=0.01, cache_ttl=3600)
            assert (await auth.authenticate("u@example.test", "pw", "10.0.0.1")).account is not None
            assert (await auth.authenticate("U@example.TEST", "pw", "10.0.0.2")).account is not None
            assert checks == ["pw"]
            # a wrong password is always checked, and fails
            assert (await auth.authenticate("u@example.test", "pW", "10.0.0.1")).account is None
            assert checks == ["pw", "pW"]
            # and does not spoil the right one's entry
            assert (await auth.authenticate("u@example.test", "pw", "10.0.0.1")).account is not None
            assert checks == ["pw", "pW"]
            # a changed password (here straight in the store, as another node would) misses the cache
            await s.set_password_hash("u@example.test", hash_password("new"))
            assert (await auth.authenticate("u@example.test", "pw", "10.0.0.1")).account is None
            assert (await auth.authenticate("u@example.test", "new", "10.0.0.1")).account is not None
            assert (await auth.authenticate("u@example.test", "new", "10.0.0.1")).account is not None
            assert checks == ["pw", "pW", "pw", "new"]
    asyncio.run(t())


def test_off_checks_every_login(store_factory, checks: list[str]) -> None:
    async def t() -> None:
        async with store_factory() as s:
            await s.add_domain("example.test")
            await s.create_account("u@example.test", hash_password("pw"))
            auth = Authenticator(s, cache_ttl=0)
            for _ in range(3):
                assert (await auth.authenticate("u@example.test", "pw", "10.0.0.1")).account is not None
            assert checks == ["pw"] * 3
    asyncio.run(t())


def test_concurrent_first_logins_share_one_check(store_factory, checks: list[str]) -> None:
    async def t() -> None:
        async with store_factory() as s:
            await s.add_domain("example.test")
            await s.create_account("u@example.test", hash_password("pw"))
            auth = Authenticator(s, base_delay=0.01, cache_ttl=3600)
            results = await asyncio.gather(*(auth.authenticate("u@example.test", "pw", "10.0.0.1")
                                             for _ in range(20)))
            assert all(r.account is not None for r in results)
            assert checks == ["pw"]
    asyncio.run(t())


def test_entries_expire_and_are_bounded() -> None:
    async def t() -> None:
        calls: list[int] = []

        async def ok() -> bool:
            calls.append(1)
            return True

        cache = VerifiedLogins(ttl=3600, max_entries=2)
        for name in ("a", "b", "c"):
            assert await cache.verify(name, "H", "pw", ok)
        assert len(calls) == 3
        assert await cache.verify("c", "H", "pw", ok) and await cache.verify("b", "H", "pw", ok)
        assert len(calls) == 3
        assert await cache.verify("a", "H", "pw", ok)  # evicted (least recently used)
        assert len(calls) == 4
        cache.ttl = 0.01
        cache.forget("a")
        assert await cache.verify("a", "H", "pw", ok)
        await asyncio.sleep(0.05)  # past the entry's lifetime, whatever the clock's resolution
        assert await cache.verify("a", "H", "pw", ok)
        assert len(calls) == 6

    asyncio.run(t())


def test_a_cancelled_first_check_does_not_fail_the_others() -> None:
    async def t() -> None:
        gate = asyncio.Event()
        calls: list[int] = []

        async def slow() -> bool:
            calls.append(1)
            await gate.wait()
            return True

        cache = VerifiedLogins(ttl=3600)
        first = asyncio.create_task(cache.verify("a", "H", "pw", slow))
        await asyncio.sleep(0)
        second = asyncio.create_task(cache.verify("a", "H", "pw", slow))
        await asyncio.sleep(0)
        first.cancel()
        await asyncio.sleep(0)
        gate.set()
        assert await second is True
        assert len(calls) == 2
        with pytest.raises(asyncio.CancelledError):
            await first

    asyncio.run(t())
