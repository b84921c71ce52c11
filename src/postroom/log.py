"""One readable line per event, to stderr by default.

Lines look like ``2026-11-23 15:30:01 smtp[a1b2c3] 127.0.0.1 connect``; the bracketed
session id ties the lines of one connection together, and delivery lines carry the
queue id, sender, recipients, size and result.
"""

from __future__ import annotations

import logging
import os
import secrets
import sys

_configured = False


def setup(level: str = "info", stream: object = None) -> None:
    global _configured
    root = logging.getLogger("postroom")
    if _configured:
        root.setLevel(level.upper())
        return
    handler = logging.StreamHandler(stream or sys.stderr)  # type: ignore[arg-type]
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
