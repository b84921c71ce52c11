"""Sieve script storage (RFC 5804's model): names, one active script, quota, durability."""

from __future__ import annotations

import asyncio

import pytest

from postroom.errors import AccountNotFound
from postroom.storage.api import (
    InvalidSieveScriptName,
    SieveScriptActive,
    SieveScriptExists,
    SieveScriptInfo,
    SieveScriptNotFound,
    SieveScriptQuota,
    sieve_script_name_problem,
)

KEEP = "keep;\r\n"


def test_scripts_lifecycle(store_factory):
    async def t():
        async with store_factory() as s:
            await s.add_domain("example.test")
            a = await s.create_account("u@example.test", "{PLAIN}pw")
            b = await s.create_account("v@example.test", "{PLAIN}pw")
            assert await s.list_sieve_scripts(a.id) == []
            assert await s.get_active_sieve_script(a.id) is None
            await s.put_sieve_script(a.id, "vacation", "# é\r\nkeep;\r\n")
            await s.put_sieve_script(a.id, "main", KEEP, activate=True)
            assert await s.list_sieve_scripts(a.id) == [
                SieveScriptInfo("main", True, len(KEEP)), SieveScriptInfo("vacation", False, len("# é\r\nkeep;\r\n".encode()))]
            assert await s.get_active_sieve_script(a.id) == ("main", KEEP)
            assert await s.get_active_sieve_script(b.id) is None  # per account
            # Replacing keeps the active flag.
            await s.put_sieve_script(a.id, "main", "discard;\r\n")
            assert await s.get_active_sieve_script(a.id) == ("main", "discard;\r\n")
            # Names are case-sensitive.
            assert await s.get_sieve_script(a.id, "MAIN") is None
            with pytest.raises(SieveScriptActive):
                await s.delete_sieve_script(a.id, "main")
            with pytest.raises(SieveScriptNotFound):
                await s.delete_sieve_script(a.id, "nope")
            # Switching the active script leaves exactly one active.
            await s.set_active_sieve_script(a.id, "vacation")
            assert [i.name for i in await s.list_sieve_scripts(a.id) if i.active] == ["vacation"]
            with pytest.raises(SieveScriptNotFound):
                await s.set_active_sieve_script(a.id, "nope")
            assert (await s.get_active_sieve_script(a.id))[0] == "vacation"  # unchanged by the failure
            # Rename keeps the flag; refuses existing targets and missing sources.
            await s.rename_sieve_script(a.id, "vacation", "away")
            assert (await s.get_active_sieve_script(a.id))[0] == "away"
            with pytest.raises(SieveScriptExists):
                await s.rename_sieve_script(a.id, "away", "main")
            with pytest.raises(SieveScriptNotFound):
                await s.rename_sieve_script(a.id, "gone", "x")
            with pytest.raises(InvalidSieveScriptName):
                await s.rename_sieve_script(a.id, "away", "a\nb")
            await s.set_active_sieve_script(a.id, None)
            assert await s.get_active_sieve_script(a.id) is None
            await s.delete_sieve_script(a.id, "away")
            assert [i.name for i in await s.list_sieve_scripts(a.id)] == ["main"]
            with pytest.raises(AccountNotFound):
                await s.put_sieve_script(9999, "x", KEEP)
            # Deleting the account deletes its scripts.
            await s.put_sieve_script(b.id, "x", KEEP, activate=True)
            await s.delete_account("v@example.test")
            assert await s.list_sieve_scripts(b.id) == []
    asyncio.run(t())


def test_quota_is_checked_in_the_transaction(store_factory):
    async def t():
        async with store_factory() as s:
            await s.add_domain("example.test")
            a = await s.create_account("u@example.test", "{PLAIN}pw")
            # Many concurrent PUTs of new names: never more than max_scripts survive.
            results = await asyncio.gather(*(s.put_sieve_script(a.id, f"s{i}", KEEP, max_scripts=3)
                                             for i in range(8)), return_exceptions=True)
            assert sum(r is None for r in results) == 3
            assert all(isinstance(r, SieveScriptQuota) for r in results if r is not None)
            kept = await s.list_sieve_scripts(a.id)
            assert len(kept) == 3
            # Replacing is not a new one. (Which three won is up to the backend's scheduling.)
            await s.put_sieve_script(a.id, kept[0].name, "discard;\r\n", max_scripts=3)
    asyncio.run(t())


def test_scripts_survive_reopen(store_factory):
    async def t():
        async with store_factory() as s:
            await s.add_domain("example.test")
            a = await s.create_account("u@example.test", "{PLAIN}pw")
            await s.put_sieve_script(a.id, "main", KEEP, activate=True)
        async with store_factory() as s:
            assert await s.get_active_sieve_script(a.id) == ("main", KEEP)
    asyncio.run(t())


@pytest.mark.sqlite_only  # SQLite's query plan
def test_active_lookup_uses_the_index(store_factory):
    async def t():
        async with store_factory() as s:
            plan = await s.engine.read(lambda c: c.execute(
                "EXPLAIN QUERY PLAN SELECT name, content FROM sieve_scripts WHERE account_id = ? AND active = 1",
                (1,)).fetchall())
            assert "sieve_scripts_active" in " ".join(str(r[-1]) for r in plan)
    asyncio.run(t())


@pytest.mark.parametrize("name,ok", [
    ("main", True), ("Mon filtre é", True), ("a/b.sieve", True), ("x" * 255, True),
    ("", False), ("x" * 256, False), ("a\tb", False), ("a\x7fb", False), ("a\x85b", False),
    ("a\u2028b", False), ("e\u0301", False),  # not NFC
])
def test_name_rules(name, ok):
    assert (sieve_script_name_problem(name) is None) is ok
