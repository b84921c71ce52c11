"""Which outbound queue a configuration uses: SQLite on this machine, or PostgreSQL shared by every node.

``[storage] backend = "postgresql"`` puts the queue in the same database as the store
(:class:`~postroom.outbound.pgqueue.PgQueue`); otherwise it is the embedded
:class:`~postroom.outbound.queue.SqliteQueue` under ``data_dir/queue``. The server
(service.py), ``postroom queue`` and ``postroom sendmail`` all open it through here.
"""

from __future__ import annotations

from pathlib import Path

from ..config import Config
from .queue import QueueBackend, SqliteQueue
from .settings import OutboundSettings


def queue_dir(cfg: Config) -> Path:
    return Path(cfg.data_dir) / "queue"


def make_queue(cfg: Config, settings: OutboundSettings | None = None) -> QueueBackend:
    """The queue for ``cfg``, not opened yet (``await queue.open()``)."""
    if cfg.pg is not None:
        from .pgqueue import (  # asyncpg only where PostgreSQL is used
            DEFAULT_LEASE,
            PgQueue,
        )

        return PgQueue(cfg.pg, lease=settings.lease if settings is not None else DEFAULT_LEASE)
    return SqliteQueue(queue_dir(cfg))


async def open_queue(cfg: Config, settings: OutboundSettings | None = None) -> QueueBackend:
    """The queue for ``cfg``, opened (PostgreSQL: connected and migrated)."""
    return await make_queue(cfg, settings).open()
