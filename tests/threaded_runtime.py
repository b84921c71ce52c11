"""The whole Postroom runtime in a background thread, for tests with blocking clients.

``server.running(cfg)`` runs in its own thread and event loop, so tests can use the
stdlib's blocking clients (poplib, imaplib, smtplib) against real sockets, and reach
into the store with :meth:`ThreadedRuntime.call`. Shared by the protocol test
harnesses so that each adds only its own data helpers.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Coroutine

from postroom.config import load


class ThreadedRuntime:
    def __init__(self, cfg_path: Path, start_timeout: float = 30) -> None:
        self.cfg_path = cfg_path
        self.loop = asyncio.new_event_loop()
        self._ready: Future[Any] = Future()
        self._stop: asyncio.Event | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        self.server = self._ready.result(timeout=start_timeout)
        self.ports: dict[str, int] = {name: addr[1] for name, addr in self.server.addresses.items()}
        self.store = self.server.ctx.store

    def _run(self) -> None:
        from postroom.server import running

        async def main() -> None:
            self._stop = asyncio.Event()
            try:
                async with running(load(self.cfg_path)) as srv:
                    # Fast failure delays: the tests exercise failed logins on purpose.
                    assert srv.ctx is not None  # set once running() has started the server
                    srv.ctx.auth.base_delay = 0.01
                    self._ready.set_result(srv)
                    await self._stop.wait()
            except BaseException as exc:
                if not self._ready.done():
                    self._ready.set_exception(exc)
                raise

        self.loop.run_until_complete(main())

    def call(self, coro: Coroutine[Any, Any, Any], timeout: float = 60) -> Any:
        """Run a coroutine on the server's loop (store access) and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        if self._stop is not None:
            self.loop.call_soon_threadsafe(self._stop.set)
        self.thread.join(timeout=30)
