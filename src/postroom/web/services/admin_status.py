"""Server status for ``/admin/status`` and ``/api/v1/admin/status``: what is happening now,
charts of the last hours, and the recent warnings and errors.

Where the numbers come from:

- **Now**: :func:`postroom.metrics.collect` (the same families ``/metrics`` serves, so in
  multiprocess mode every worker's share) and the outbound queue's ``stats()``.
- **History**: a :class:`Sampler` per server keeps one :class:`Sample` a minute for
  :data:`HOURS` hours in memory (360 samples of a few numbers: nothing to persist;
  Prometheus is the place for long history). Counters become per-minute rates by
  difference, clamped at zero when a counter restarts. The sampler starts with the
  first status request of the server's life and stops when the server stops.
- **Recent errors**: :class:`RecentLog`, a logging handler on the ``postroom`` logger
  keeping the last :data:`LOG_KEEP` records at WARNING or above, installed once per
  process when this module is imported (at startup: page modules are imported by
  ``mount``). It holds messages only, never a traceback.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import logging
import time
from dataclasses import dataclass, fields
from typing import Any

from aiohttp import web

from ... import metrics
from ..site import ctx_of

HOURS = 6
INTERVAL = 60.0  # seconds between samples
LOG_KEEP = 200
MESSAGE_MAX = 1000


@dataclass(frozen=True, slots=True)
class Sample:
    t: float
    connections_open: float = 0.0
    connections: float = 0.0  # counters: totals since start; the charts show their rates
    messages_accepted: float = 0.0
    messages_rejected: float = 0.0
    logins_failed: float = 0.0
    delivered: float = 0.0
    deferred: float = 0.0
    bounced: float = 0.0
    queue_messages: float = 0.0
    queue_held: float = 0.0

    def as_json(self) -> dict[str, float]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def read_metrics(queue_stats: Any | None, now: float) -> Sample:
    """One sample of the server's metrics and the queue's ``stats()`` (None: no queue)."""
    values: dict[str, float] = collections.defaultdict(float)
    for family in metrics.collect():
        for s in family.samples:
            labels = s.labels
            if s.name == "postroom_connections_open":
                values["connections_open"] += s.value
            elif s.name == "postroom_connections_total":
                values["connections"] += s.value
            elif s.name == "postroom_messages_total" and labels.get("result") in ("accepted", "rejected"):
                values["messages_" + labels["result"]] += s.value
            elif s.name == "postroom_logins_total" and labels.get("result") in ("failed", "throttled"):
                values["logins_failed"] += s.value
            elif s.name == "postroom_outbound_recipients_total" and labels.get("result") in (
                    "delivered", "deferred", "bounced"):
                values[labels["result"]] += s.value
    if queue_stats is not None:
        values["queue_messages"] = float(queue_stats.messages)
        values["queue_held"] = float(queue_stats.held)
    return Sample(now, **values)


class Sampler:
    """The last :data:`HOURS` hours of samples of one server, one every :data:`INTERVAL` s."""

    def __init__(self, ctx: Any, hours: int = HOURS, interval: float = INTERVAL) -> None:
        self.ctx = ctx
        self.interval = interval
        self.samples: collections.deque[Sample] = collections.deque(maxlen=int(hours * 3600 / interval) + 1)
        self.task: asyncio.Task[None] | None = None

    async def sample(self, keep: bool = True) -> Sample:
        """Read the metrics now; ``keep``: add the reading to the history."""
        stats = None
        queue = getattr(getattr(self.ctx, "outbound", None), "queue", None)
        if queue is not None and hasattr(queue, "stats"):
            try:
                stats = await queue.stats()
            except Exception:  # a queue database hiccup must not stop the sampler
                logging.getLogger("postroom.web").warning("status: reading the outbound queue failed",
                                                          exc_info=True)
        s = read_metrics(stats, time.time())
        if keep:
            self.samples.append(s)
        return s

    def start(self) -> None:
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        stopping: asyncio.Event = self.ctx.stopping
        while not stopping.is_set():
            try:
                await self.sample()
            except Exception:
                logging.getLogger("postroom.web").exception("status: taking a sample failed")
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stopping.wait(), self.interval)


_SAMPLERS: dict[int, Sampler] = {}  # by id(ctx): tests run several servers in one process


def sampler_for(ctx: Any) -> Sampler:
    found = _SAMPLERS.get(id(ctx))
    if found is None or found.ctx is not ctx:
        found = _SAMPLERS[id(ctx)] = Sampler(ctx)
    found.start()
    return found


# -- recent warnings and errors --------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class LogLine:
    t: float
    level: str
    logger: str
    message: str

    def as_json(self) -> dict[str, Any]:
        return {"t": self.t, "level": self.level, "logger": self.logger, "message": self.message}


class RecentLog(logging.Handler):
    def __init__(self, keep: int = LOG_KEEP) -> None:
        super().__init__(logging.WARNING)
        self.lines: collections.deque[LogLine] = collections.deque(maxlen=keep)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
        except (TypeError, ValueError):  # a bad format string: keep the template rather than lose the line
            text = str(record.msg)
        self.lines.append(LogLine(record.created, record.levelname, record.name, text[:MESSAGE_MAX]))


def _install() -> RecentLog:
    root = logging.getLogger("postroom")
    for h in root.handlers:
        if isinstance(h, RecentLog):
            return h
    handler = RecentLog()
    root.addHandler(handler)
    return handler


RECENT = _install()


# -- what the page and the API show ----------------------------------------------------------
SERIES = (  # key, label, unit, kind ("gauge": as sampled; "rate": per minute from a counter)
    ("connections_open", "Open connections", "connections", "gauge"),
    ("connections", "New connections", "per minute", "rate"),
    ("messages_accepted", "Messages received", "per minute", "rate"),
    ("delivered", "Outbound deliveries", "per minute", "rate"),
    ("deferred", "Outbound deferrals", "per minute", "rate"),
    ("queue_messages", "Outbound queue", "messages", "gauge"),
)


def series(samples: list[Sample], key: str, kind: str) -> list[tuple[float, float]]:
    if kind == "gauge":
        return [(s.t, getattr(s, key)) for s in samples]
    out = []
    for a, b in itertools.pairwise(samples):
        minutes = max((b.t - a.t) / 60.0, 1e-9)
        out.append((b.t, max(0.0, getattr(b, key) - getattr(a, key)) / minutes))
    return out


async def status(request: web.Request) -> dict[str, Any]:
    """Now, the history of each series, the recent log lines (newest first)."""
    ctx = ctx_of(request)
    sampler = sampler_for(ctx)
    now = await sampler.sample(keep=False)  # the history stays one sample per interval
    samples = list(sampler.samples)
    charts = [{"key": key, "label": label, "unit": unit, "points": series(samples, key, kind)}
              for key, label, unit, kind in SERIES]
    return {"now": now, "charts": charts, "log": list(reversed(RECENT.lines)), "hours": HOURS,
            "interval": sampler.interval}

