"""Blocking DNS for dkimpy and pyspf, answered by the event loop's one :class:`Resolver`.

dkimpy and pyspf are synchronous libraries that want a function to look names up.
Their checks run in a worker thread (:func:`run_blocking`), and this bridge hands each
lookup back to the loop, so that every check shares the process's TTL cache and
``[dns]`` settings. All the lookups for one message share one deadline
(``[mailauth] timeout``): a nameserver that never answers costs a message that long at
most, never a hung session (issue #13, "bound every lookup in time").
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import threading
import time
from typing import Callable, TypeVar

import dns.rdata

from ..resolver import DnsTemporary, Resolver

T = TypeVar("T")

# One pool for the blocking checks, separate from the loop's default executor (which
# the store uses for reads): a burst of messages waiting on slow DNS must not starve it.
_pool: concurrent.futures.ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()
POOL_THREADS = 32


def _executor() -> concurrent.futures.ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = concurrent.futures.ThreadPoolExecutor(POOL_THREADS, thread_name_prefix="mailauth")
        return _pool


async def run_blocking(fn: Callable[..., T], *args: object) -> T:
    """Run ``fn(*args)`` in the mail-authentication pool (context variables carried over)."""
    loop = asyncio.get_running_loop()
    ctx = contextvars.copy_context()
    return await loop.run_in_executor(_executor(), lambda: ctx.run(fn, *args))


class SyncDns:
    """Lookups for code running in a worker thread; :class:`DnsTemporary` on timeout or SERVFAIL.

    Made on the loop (``SyncDns(resolver, timeout)``), used from the thread. Counts the
    lookups it made (``queries``), which the tests and the log use.
    """

    def __init__(self, resolver: Resolver, timeout: float, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.resolver = resolver
        self.loop = loop or asyncio.get_running_loop()
        self.deadline = time.monotonic() + timeout
        self.queries = 0
        self.expires = float("inf")  # time.time() until which every answer so far holds

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def query(self, name: str, rdtype: str) -> list[dns.rdata.Rdata] | None:
        """As :meth:`Resolver.query`: records, ``None`` for NXDOMAIN, ``[]`` for no data."""
        left = self.left()
        if left <= 0:
            raise DnsTemporary(f"DNS lookup of {name} {rdtype}: time for this message's checks ran out")
        self.queries += 1
        coro = asyncio.wait_for(self.resolver.query_expiring(name, rdtype), left)
        fut = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            records, expires = fut.result(left + 1.0)
        except (asyncio.TimeoutError, concurrent.futures.TimeoutError):
            fut.cancel()
            raise DnsTemporary(f"DNS lookup of {name} {rdtype} timed out") from None
        self.expires = min(self.expires, expires)
        return records

    def txt(self, name: str) -> list[bytes] | None:
        """TXT records, each one's strings joined; ``None`` for NXDOMAIN."""
        records = self.query(name, "TXT")
        if records is None:
            return None
        return [b"".join(r.strings) for r in records]  # type: ignore[attr-defined]

    def dkim_txt(self, name: bytes | str, timeout: float = 5) -> bytes | None:
        """dkimpy's ``dnsfunc``: the key record's text, or ``None`` when there is none.

        Several TXT records at a key name are ambiguous; the first that looks like a key
        record (``v=DKIM1`` or ``p=``) is taken, as OpenDKIM does.
        """
        qname = name.decode("ascii", "replace") if isinstance(name, bytes) else name
        return pick_dkim(self.txt(qname.rstrip(".")) or [])


def pick_dkim(texts: list[bytes]) -> bytes | None:
    """The DKIM key record among the TXT records at a key name (see :meth:`SyncDns.dkim_txt`)."""
    for t in texts:
        if t.lstrip().startswith(b"v=DKIM1") or b"p=" in t:
            return t
    return texts[0] if texts else None
