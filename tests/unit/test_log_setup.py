"""``log.setup``'s handler follows ``sys.stderr`` when it is replaced (and the old one closed)."""

from __future__ import annotations

import io
import logging
from typing import Iterator

import pytest

from postroom import log


@pytest.fixture
def fresh_setup(monkeypatch: pytest.MonkeyPatch) -> Iterator[logging.Logger]:
    root = logging.getLogger("postroom")
    handlers, level, propagate = list(root.handlers), root.level, root.propagate
    monkeypatch.setattr(log, "_configured", False)
    try:
        yield root
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        root.propagate = propagate


def test_handler_writes_to_the_current_stderr(fresh_setup: logging.Logger,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    first = io.StringIO()
    monkeypatch.setattr("sys.stderr", first)
    log.setup("info")
    log.get("test").info("into the first")
    assert "into the first" in first.getvalue()
    first.close()  # as pytest closes a test's captured stderr
    second = io.StringIO()
    monkeypatch.setattr("sys.stderr", second)
    log.get("test").warning("after the switch")
    out = second.getvalue()
    assert "after the switch" in out
    assert "Logging error" not in out


def test_an_explicit_stream_is_kept(fresh_setup: logging.Logger, monkeypatch: pytest.MonkeyPatch) -> None:
    target = io.StringIO()
    log.setup("info", stream=target)
    monkeypatch.setattr("sys.stderr", io.StringIO())
    log.get("test").info("to the given stream")
    assert "to the given stream" in target.getvalue()
