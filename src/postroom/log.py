"""One readable line per event, to stderr by default.

Lines look like ``2026-11-23 15:30:01 smtp[a1b2c3] 127.0.0.1 connect``; the bracketed
session id ties the lines of one connection together, and delivery lines carry the
queue id, sender, recipients, size and result.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import sys
from types import TracebackType
from typing import Any, Callable

_configured = False


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is when a line is logged, not when the handler was made.

    A handler bound to the stream of its creation keeps writing to it after it is replaced
    and closed (a test's captured stderr, a daemon's redirection), and every line then ends
    in "--- Logging error ---" instead of the log.
    """

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass  # StreamHandler's __init__ and setStream: the stream is always the current stderr


def setup(level: str = "info", stream: object = None) -> None:
    global _configured
    root = logging.getLogger("postroom")
    if _configured:
        root.setLevel(level.upper())
        return
    handler: logging.Handler = _StderrHandler() if stream is None else \
        logging.StreamHandler(stream)  # type: ignore[call-overload]
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s: %(message)s", "%Y-%m-%d %H:%M:%S"))
    root.addHandler(handler)
    root.setLevel(level.upper())
    root.propagate = False
    _configured = True


def get(name: str) -> logging.Logger:
    return logging.getLogger(f"postroom.{name}")


def new_id() -> str:
    """Short unique id for a session or a queued message (pid-free: unique across workers)."""
    return secrets.token_hex(5).upper()


def worker_tag() -> str:
    return f"pid={os.getpid()}"


class SessionEvents:
    """The ``connect`` and ``disconnect`` lines of one connection, for IMAP and POP3.

    ``with SessionEvents(logger, listener.name, conn, user) as ev:`` logs the connect
    line; the protocol sets ``ev.result`` ("logout", "timeout", ...) as the session
    ends, and leaving the block logs the disconnect line with it, the byte counts and
    the user (``user()`` is asked then). An exception leaving the block makes the
    result "shutdown" (cancelled) or "error" (the runtime logs its traceback).
    """

    def __init__(self, logger: logging.Logger, listener: str, conn: Any,
                 user: Callable[[], str | None] = lambda: None) -> None:
        self.logger = logger
        self.conn = conn
        self.tag = f"{listener}[{new_id()}] {conn.peer_ip}"
        self.result = "lost"  # the peer went away, unless the protocol says otherwise
        self._user = user

    def __enter__(self) -> "SessionEvents":
        self.logger.info("%s connect%s", self.tag, " tls" if self.conn.tls_active else "")
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is not None:
            self.result = "shutdown" if issubclass(exc_type, asyncio.CancelledError) else "error"
        user = self._user()
        self.logger.info("%s disconnect %s in=%d out=%d%s", self.tag, self.result, self.conn.bytes_in,
                         self.conn.bytes_out, f" user={user}" if user else "")
