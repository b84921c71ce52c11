"""Shared fixtures: a fresh store, and event-loop helpers for plain pytest tests."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any, Awaitable, Callable, Iterator

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


@pytest.fixture
def postroom_log() -> Iterator[list[str]]:
    """The formatted lines the ``postroom`` loggers write while the test runs (any thread).

    Attached to the ``postroom`` logger itself: once ``log.setup`` has run in this
    process (a CLI test) that logger no longer propagates to the root, where caplog listens.
    """
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    logger = logging.getLogger("postroom")
    handler, level = Collect(logging.INFO), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield lines
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
