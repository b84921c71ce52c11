"""The SQLite news state's group commit: concurrent ``execute`` calls share one COMMIT, and each
keeps its own atomicity, row counts and errors."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from postroom.news.state import SqliteNewsState

RESERVE = ("INSERT INTO history(message_id, state, marks, poster, arrived) VALUES (?, 'pending', '', NULL, 0) "
           "ON CONFLICT DO NOTHING")


async def _opened(tmp_path: Path) -> tuple[SqliteNewsState, list[str]]:
    state = SqliteNewsState(tmp_path)
    await state.open()
    commits: list[str] = []
    assert state._conn is not None
    state._conn.set_trace_callback(lambda sql: commits.append(sql) if sql == "COMMIT" else None)
    return state, commits


def _ids(tmp_path: Path) -> list[str]:
    with sqlite3.connect(tmp_path / "store.db") as conn:
        return [r[0] for r in conn.execute("SELECT message_id FROM news_history ORDER BY message_id")]


def test_calls_of_one_turn_share_one_commit(tmp_path: Path) -> None:
    async def main() -> list[list[int]]:
        state, commits = await _opened(tmp_path)
        try:
            got = await asyncio.gather(*(state.execute([(RESERVE, (f"<{i}@x>",))]) for i in range(40)))
            assert commits == ["COMMIT"]  # one transaction for the forty
            return got
        finally:
            await state.close()

    assert asyncio.run(main()) == [[1]] * 40
    assert len(_ids(tmp_path)) == 40  # and it was committed


def test_calls_made_during_a_commit_form_the_next_batch(tmp_path: Path) -> None:
    async def main() -> int:
        state, commits = await _opened(tmp_path)
        try:
            first = asyncio.ensure_future(state.execute([(RESERVE, ("<first@x>",))]))
            await asyncio.sleep(0)  # the first batch is on its way
            rest = [state.execute([(RESERVE, (f"<{i}@x>",))]) for i in range(10)]
            await asyncio.gather(first, *rest)
            return len(commits)
        finally:
            await state.close()

    assert asyncio.run(main()) == 2
    assert len(_ids(tmp_path)) == 11


def test_a_failing_call_undoes_only_its_own_statements(tmp_path: Path) -> None:
    async def main() -> list[object]:
        state, commits = await _opened(tmp_path)
        try:
            bad = [(RESERVE, ("<bad-1@x>",)), ("INSERT INTO no_such_table VALUES (?)", (1,))]
            got = await asyncio.gather(state.execute([(RESERVE, ("<good-1@x>",))]), state.execute(bad),
                                       state.execute([(RESERVE, ("<good-2@x>",))]), return_exceptions=True)
            assert commits == ["COMMIT"]
            return got
        finally:
            await state.close()

    got = asyncio.run(main())
    assert got[0] == [1] and got[2] == [1]
    assert isinstance(got[1], sqlite3.OperationalError) and "no_such_table" in str(got[1])
    assert _ids(tmp_path) == ["<good-1@x>", "<good-2@x>"]  # <bad-1@x> went with its call


def test_a_call_alone_fails_as_before(tmp_path: Path) -> None:
    async def main() -> None:
        state, _commits = await _opened(tmp_path)
        try:
            with pytest.raises(sqlite3.OperationalError):
                await state.execute([(RESERVE, ("<alone@x>",)), ("INSERT INTO no_such_table VALUES (1)", ())])
            assert await state.execute([(RESERVE, ("<after@x>",))]) == [1]  # the state still works
        finally:
            await state.close()

    asyncio.run(main())
    assert _ids(tmp_path) == ["<after@x>"]


def test_row_counts_follow_the_order_of_the_calls(tmp_path: Path) -> None:
    """Two posts of one Message-ID in one batch: the reservation is the first's (the duplicate
    check of News.post reads the second's count of 0)."""
    async def main() -> list[list[int]]:
        state, _commits = await _opened(tmp_path)
        try:
            return list(await asyncio.gather(state.execute([(RESERVE, ("<same@x>",))]),
                                             state.execute([(RESERVE, ("<same@x>",))])))
        finally:
            await state.close()

    assert asyncio.run(main()) == [[1], [0]]


def test_close_waits_for_the_calls_already_made(tmp_path: Path) -> None:
    async def main() -> None:
        state, _commits = await _opened(tmp_path)
        calls = [asyncio.ensure_future(state.execute([(RESERVE, (f"<{i}@x>",))])) for i in range(5)]
        await asyncio.sleep(0)
        await asyncio.wait_for(state.close(), 30)
        assert [c.result() for c in calls] == [[1]] * 5

    asyncio.run(main())
    assert len(_ids(tmp_path)) == 5


def test_a_cancelled_caller_does_not_stop_the_others(tmp_path: Path) -> None:
    async def main() -> list[int]:
        state, _commits = await _opened(tmp_path)
        try:
            gone = asyncio.ensure_future(state.execute([(RESERVE, ("<gone@x>",))]))
            kept = asyncio.ensure_future(state.execute([(RESERVE, ("<kept@x>",))]))
            await asyncio.sleep(0)
            gone.cancel()
            return await kept
        finally:
            await state.close()

    assert asyncio.run(main()) == [1]
    assert "<kept@x>" in _ids(tmp_path)
