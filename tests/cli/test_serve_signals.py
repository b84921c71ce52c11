"""A SIGHUP that reaches a worker while it starts is carried out once it has started, not lost.

The "listening" lines are logged during ``Server.start``, so a reload sent on seeing them (as
tests/cli/test_cli.py's SIGHUP test does, or an admin's script) can arrive before the worker's
event loop has its SIGHUP handler: a worker ignored it then (CI, 2026-12-07: one of two workers
reloaded), a single-process server was ended by it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from typing import Any

import pytest

from postroom import server


class _StartingServer:
    """Server's surface as ``_serve_forever`` uses it; the SIGHUP arrives inside ``start``."""

    reloads: list[str] = []

    def __init__(self, cfg: Any, balancer: Any = None) -> None:
        self.log = logging.getLogger("postroom.test")

    async def start(self, reuse_port: bool = False) -> None:
        os.kill(os.getpid(), signal.SIGHUP)
        for _ in range(5):  # the loop reads its signal pipe and runs the handler
            await asyncio.sleep(0)
        # Then stop: a SIGTERM once the server runs, whatever happened to the SIGHUP.
        asyncio.get_running_loop().call_soon(os.kill, os.getpid(), signal.SIGTERM)

    def reload(self, path: str) -> None:
        self.reloads.append(path)

    async def stop(self, grace: float = 0) -> None:
        """Nothing to stop: this stand-in opened no listener."""


def test_sighup_during_start_is_carried_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server, "Server", _StartingServer)
    monkeypatch.setattr(server, "_warn_if_root", lambda log: None)
    _StartingServer.reloads = []
    before = signal.signal(signal.SIGHUP, signal.SIG_IGN)  # a worker's disposition until its loop runs
    term = signal.getsignal(signal.SIGTERM)
    try:
        assert asyncio.run(server._serve_forever("postroom.toml", object(), reuse_port=False)) == 0  # type: ignore[arg-type]
    finally:
        signal.signal(signal.SIGHUP, before)
        signal.signal(signal.SIGTERM, term)
    assert _StartingServer.reloads == ["postroom.toml"]
