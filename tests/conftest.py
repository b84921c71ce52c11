"""Shared fixtures: a fresh store, and event-loop helpers for plain pytest tests."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Awaitable, Callable

import pytest


def run(coro: Awaitable[Any]) -> Any:
    return asyncio.run(coro)  # type: ignore[arg-type]


@pytest.fixture
def store_factory(tmp_path: Path) -> Callable[..., Any]:
    """``async with store_factory() as store`` → an opened SqliteStore in a temp dir."""
    from postroom.storage.sqlite.store import SqliteStore

    def make(sub: str = "data") -> SqliteStore:
        return SqliteStore(tmp_path / sub)

    return make
