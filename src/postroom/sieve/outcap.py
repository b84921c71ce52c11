"""The per-account hourly cap on mail that Sieve scripts make the server send.

``redirect``, ``vacation``, ``notify`` and rejection notices all send mail on a user's
behalf, triggered by whoever writes to that user: per message they are capped
(``max_redirects``, one vacation reply per sender and period), but a script fed a stream
of incoming mail would still turn the server into a spam cannon, signed with our DKIM
key. So each account may make at most ``[sieve] max_outgoing_per_hour`` such messages
(each recipient counts) in any sliding hour; past that, redirects become an implicit keep
and replies/notifications are not sent, with one log line each.

Pure: the caller passes the time. Counts live in memory (per process, reset on restart
and on a config reload), which is what a rate limit needs.
"""

from __future__ import annotations

from collections import deque

WINDOW = 3600.0  # seconds


class HourlyCap:
    """At most ``limit`` events per key in any ``WINDOW``; ``limit`` 0 means no cap."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.events: dict[int, deque[float]] = {}

    def take(self, key: int, now: float) -> bool:
        """Count one event for ``key`` and say True, or say False (nothing counted) when
        ``key`` already had ``limit`` events in the last hour."""
        if self.limit <= 0:
            return True
        q = self.events.setdefault(key, deque())
        while q and q[0] <= now - WINDOW:
            q.popleft()
        if len(q) >= self.limit:
            return False
        q.append(now)
        if len(self.events) > 4 * 4096:  # keep memory bounded by the active accounts
            self._prune(now)
        return True

    def _prune(self, now: float) -> None:
        for key in [k for k, q in self.events.items() if not q or q[-1] <= now - WINDOW]:
            del self.events[key]


def cap_for(state: dict[str, object], limit: int) -> HourlyCap:
    """The process's cap, kept in ``ctx.state`` (made anew when the limit changes)."""
    cap = state.get("sieve-outcap")
    if not isinstance(cap, HourlyCap) or cap.limit != limit:
        cap = HourlyCap(limit)
        state["sieve-outcap"] = cap
    return cap
