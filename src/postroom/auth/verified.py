"""A cache of credentials this process has verified, so that a reconnect storm costs one
argon2id check per account rather than one per connection.

Phones and desktop clients open several sessions per account and all reconnect at once after
a server restart or a network change: 10,000 IMAP sessions of 100 accounts cost about half an
hour of CPU with an argon2id check each (docs/imap.md, "Login is the cost of a reconnect
storm"). Dovecot answers the same problem with its ``auth_cache``; this is ours.

What is kept, per login name: the stored hash the password was verified against, an HMAC
of the password under a key drawn at process start (never the password, never written to
disk), and when the entry expires. A login is answered from the cache only when

- the account's stored hash is still the one the entry was made with (a password change,
  on this node or another, reads a new hash from the store and so misses the cache);
- the entry has not expired (``[limits] auth_cache``, default 1 hour; 0 turns it off);
- the HMAC of the offered password equals the kept one (compared in constant time).

Only successes are kept: a wrong password always pays the full hash check and the
throttling penalty, so guessing gets nothing from the cache. Concurrent first logins with
the same name and password share one check (single flight), which is what a client opening
five sessions at once, or a hundred clients of one account after a restart, look like.

The key lives in this process's memory only, so someone who can read that memory can test
guesses against an entry at HMAC speed; such a reader already sees every password as it
arrives, so the cache adds no exposure worth an argon2 check per connection.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

#: Entries kept at most (least recently used go first): about 100 bytes each.
MAX_ENTRIES = 100_000


@dataclass(slots=True)
class _Entry:
    stored: str
    digest: bytes
    expires: float


class VerifiedLogins:
    def __init__(self, ttl: float, max_entries: int = MAX_ENTRIES) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._key = os.urandom(32)
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._inflight: dict[tuple[str, str, bytes], asyncio.Future[bool]] = {}
        self.hits = 0
        self.misses = 0

    def _digest(self, password: str) -> bytes:
        return hmac.new(self._key, password.encode("utf-8", "surrogatepass"), hashlib.sha256).digest()

    async def verify(self, name: str, stored: str, password: str,
                     check: Callable[[], Awaitable[bool]]) -> bool:
        """Whether ``password`` is right for ``name`` whose stored hash is ``stored``:
        from the cache when it can say so, else by awaiting ``check()`` (the real hash
        check), whose success is then remembered."""
        if self.ttl <= 0:
            return await check()
        digest = self._digest(password)
        now = time.monotonic()
        entry = self._entries.get(name)
        if entry is not None:
            if entry.stored == stored and entry.expires > now and hmac.compare_digest(entry.digest, digest):
                self._entries.move_to_end(name)
                self.hits += 1
                return True
            if entry.stored != stored or entry.expires <= now:
                del self._entries[name]  # stale: the password changed or the entry is old
        key = (name, stored, digest)
        pending = self._inflight.get(key)
        if pending is not None:
            try:
                return await asyncio.shield(pending)
            except asyncio.CancelledError:
                if not pending.cancelled():
                    raise  # this login itself was cancelled
                return await check()  # the first one was: check on our own
        self.misses += 1
        fut: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._inflight[key] = fut
        try:
            ok = await check()
        except asyncio.CancelledError:
            fut.cancel()
            raise
        except BaseException as exc:
            fut.set_exception(exc)
            fut.exception()  # retrieved: waiters re-raise it, nobody logs it as lost
            raise
        finally:
            del self._inflight[key]
        fut.set_result(ok)
        if ok:
            self._entries[name] = _Entry(stored, digest, now + self.ttl)
            self._entries.move_to_end(name)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        return ok

    def forget(self, name: str) -> None:
        """Drop ``name``'s entry (its password was changed through this process)."""
        self._entries.pop(name, None)
