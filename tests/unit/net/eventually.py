"""A wait for a condition that other callbacks make true, shared by the tests of this folder."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


async def until(cond: Callable[[], bool], tries: int = 2000, pause: float = 0.005) -> None:
    """Return once ``cond()`` holds, checking every ``pause`` seconds; fail the test after
    ``tries`` checks (10 s by default: a bound against a hang, never a timing assertion)."""
    for _ in range(tries):
        if cond():
            return
        await asyncio.sleep(pause)
    raise AssertionError("never happened")
