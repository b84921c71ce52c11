"""How many bytes of messages being received the sessions of one process may hold at once.

A message is kept in memory from its first byte until it is stored: with the default
36 MB limit, a few dozen connections sending big messages slowly (port 25 needs no
login, and each address may open 20) would take gigabytes. Postfix streams to its
queue file and never has this problem. Here every SMTP DATA/BDAT and IMAP APPEND
counts what it holds against ``[limits] message_memory`` as the bytes arrive; a message
that does not fit is read to its end without being kept and refused for now (SMTP
``452 4.3.1``, IMAP ``NO [UNAVAILABLE]``), so the sender retries when others are done.
"""

from __future__ import annotations

from typing import Callable

from .context import ServerContext
from .net.connection import Connection


class Budget:
    __slots__ = ("limit", "used")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def take(self, n: int) -> bool:
        """Count ``n`` more bytes as held, if they fit."""
        if self.used + n > self.limit:
            return False
        self.used += n
        return True

    def give_back(self, n: int) -> None:
        self.used -= n


def budget_for(ctx: ServerContext) -> Budget:
    """The process's budget, at the limit of the config now in force (SIGHUP may change it)."""
    b = ctx.state.get("message_memory")
    if not isinstance(b, Budget):
        b = ctx.state["message_memory"] = Budget(ctx.config.limits.message_memory)
    b.limit = ctx.config.limits.message_memory
    return b


async def read_counted(conn: Connection, n: int, budget: Budget | None, timeout: Callable[[], float],
                       received: Callable[[int], None] = lambda n: None) -> tuple[bytes | None, int]:
    """The next ``n`` bytes from ``conn``, counted in ``budget`` as they arrive, and how many
    are counted. Once the budget runs out the rest is read and dropped: ``(None, 0)``, the
    bytes taken given back. Without a budget everything is read and dropped.

    ``timeout()`` gives each read's timeout; ``received(k)`` hears of every k bytes read.
    """
    parts: list[bytes] = []
    taken = 0
    keep = budget is not None
    while n > 0:
        data = await conn.read_some(timeout())
        received(len(data))
        if len(data) > n:
            conn.unread(data[n:])
            data = data[:n]
        n -= len(data)
        if budget is not None and keep:
            if budget.take(len(data)):
                taken += len(data)
                parts.append(data)
            else:
                keep = False
                budget.give_back(taken)
                taken = 0
                parts.clear()
    return (b"".join(parts), taken) if keep else (None, 0)
