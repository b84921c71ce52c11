"""How many bytes of message data the SMTP sessions of one process may hold at once.

A message is kept in memory from its first DATA byte until it is stored: with the
default 36 MB limit, a few dozen connections sending big messages slowly (port 25 needs
no login, and each address may open 20) would take gigabytes. Postfix streams to its
queue file and never has this problem; here a session whose next chunk does not fit
in ``[limits] message_memory`` reads the rest of the message without keeping it and
answers ``452 4.3.1``, so the sender retries later, when others are done.
"""

from __future__ import annotations

from ..context import ServerContext


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
    b = ctx.state.get("smtp_budget")
    if not isinstance(b, Budget):
        b = ctx.state["smtp_budget"] = Budget(ctx.config.limits.message_memory)
    b.limit = ctx.config.limits.message_memory
    return b
