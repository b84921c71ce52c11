"""Runtime hooks: start the queue (every worker) and the runner.

Every worker process can enqueue (SMTP's hand-off needs it). With the SQLite queue
only the worker that holds ``data_dir/queue/scheduler.lock`` (``fcntl.flock``) runs
deliveries; the others keep trying the lock, so if that worker dies another takes
over, and enqueues from other processes are seen by the runner's poll
(``[outbound] poll_interval``). With the PostgreSQL queue every worker of every node
runs a runner: claims with leases keep them apart (pgqueue.py), and NOTIFY wakes
them when mail arrives anywhere.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import time
from typing import Any, Callable

from ..config import Config
from .api import Envelope
from .backends import make_queue, queue_dir
from .delivery import Runner
from .queue import QueueBackend, SqliteQueue
from .settings import OutboundSettings, parse

log = logging.getLogger("postroom.outbound")
LOCK_RETRY = 5.0
__all__ = ["OutboundService", "check_settings", "etrn", "queue_dir", "start_services", "stop_services"]


def check_settings(cfg: Config, problems: list[str]) -> None:
    parse(cfg, problems)


class OutboundService:
    """What ``ctx.outbound`` is: the :class:`~postroom.outbound.api.OutboundQueue` plus ETRN."""

    def __init__(self, ctx: Any, settings: OutboundSettings, queue: QueueBackend,
                 clock: Callable[[], float] = time.time) -> None:
        self.ctx = ctx
        self.settings = settings
        self.queue = queue
        self.clock = clock
        self.runner: Runner | None = None
        self._lock_fd: int | None = None
        self._task: asyncio.Task[None] | None = None
        self._listener: asyncio.Task[None] | None = None

    async def enqueue(self, envelope: Envelope, raw: bytes) -> str:
        qid = await self.queue.enqueue(envelope, raw)
        log.info("%s: queued from=<%s> to=%s size=%d", qid, envelope.sender,
                 ",".join(r.address for r in envelope.recipients), len(raw))
        if self.runner is not None:
            self.runner.wake()
        return qid

    async def etrn(self, domain: str) -> bool:
        """RFC 1985 §5: start a queue run for ``domain`` (``@domain`` includes subdomains);
        True if anything is queued for it (250), False if not (251)."""
        d = domain.strip()
        subdomains = d.startswith("@")
        if d.startswith("#"):  # §5.2 named queues: we have none
            return False
        n = await self.queue.reschedule(self.clock(), domain=d.lstrip("@"), subdomains=subdomains)
        if n and self.runner is not None:
            self.runner.wake()
        return n > 0

    # -- scheduler lock ----------------------------------------------------------
    def _try_lock(self, queue: SqliteQueue) -> bool:
        path = queue.root / "scheduler.lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._lock_fd = fd
        return True

    async def start(self) -> None:
        await self.queue.open()
        self._task = asyncio.get_running_loop().create_task(self._scheduler())

    async def _scheduler(self) -> None:
        if isinstance(self.queue, SqliteQueue):
            while not self._try_lock(self.queue):
                await asyncio.sleep(LOCK_RETRY)
            log.info("outbound queue runner started (%s)", f"pid={os.getpid()}")
            await self.queue.sweep_orphans()
        else:  # shared queue: every worker delivers, claims keep them apart
            log.info("outbound queue runner started (%s, shared queue, lease %gs)", f"pid={os.getpid()}",
                     self.queue.lease)
        self.runner = runner = Runner(self.ctx, self.queue, self.settings, clock=self.clock, notice_queue=self)
        self._listener = asyncio.get_running_loop().create_task(self.queue.listen(runner.wake))
        await runner.run()

    async def stop(self) -> None:
        for task in (self._listener, self._task):
            if task is not None:
                task.cancel()
                try:
                    await task
                except asyncio.CancelledError:
                    pass
        if self.runner is not None:
            await self.runner.close()
            self.runner = None
        await self.queue.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor releases the flock
            self._lock_fd = None


async def start_services(ctx: Any) -> None:
    problems: list[str] = []
    settings = parse(ctx.config, problems)
    for p in problems:
        log.error("config: %s", p)
    service = OutboundService(ctx, settings, make_queue(ctx.config, settings))
    await service.start()
    ctx.outbound = service
    ctx.state["outbound"] = service


def _service(ctx: Any) -> OutboundService | None:
    # ctx.outbound first: a SIGHUP reload clears ctx.state but keeps ctx.outbound.
    for candidate in (getattr(ctx, "outbound", None), ctx.state.get("outbound")):
        if isinstance(candidate, OutboundService):
            return candidate
    return None


async def stop_services(ctx: Any) -> None:
    service = _service(ctx)
    ctx.state.pop("outbound", None)
    if service is not None:
        await service.stop()
        if getattr(ctx, "outbound", None) is service:
            ctx.outbound = None


async def etrn(ctx: Any, domain: str) -> bool:
    """For the SMTP command table: RFC 1985 ETRN → True (250) or False (251)."""
    service = _service(ctx)
    return await service.etrn(domain) if service is not None else False
