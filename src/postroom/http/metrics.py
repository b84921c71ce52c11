"""``GET /metrics``: the Prometheus text exposition of :mod:`postroom.metrics`.

```toml
[http.metrics]
enabled = true                  # false: /metrics is answered nowhere
listeners = ["http"]            # HTTP listeners that answer it; default: those bound to loopback
allow = ["127.0.0.0/8", "::1"]  # client networks allowed; default: any client of those listeners
```

Who may read it: there is no password (Prometheus scrapers rarely send one, and a
password in a scrape config is one more secret to leak); the endpoint is restricted by
*where* it is served instead. By default only HTTP listeners bound to a loopback
address answer it, so the out-of-the-box server (``postroom init`` binds 127.0.0.1)
serves it to local scrapers and a public listener never does. An operator who scrapes
over the network names a listener for it (a separate ``[listeners.metrics]``, on an
internal address, is the clean way) and may narrow it further with ``allow``. A
listener that does not serve it answers 404, exactly as for an unknown path, so a
scanner learns nothing; a client outside ``allow`` gets 403.

What a scrape reads: every process's values (:func:`postroom.metrics.collect`; in
multiprocess mode the files of all workers, merged), plus the outbound queue's depth
and age, asked of the queue database at scrape time (every worker can read it; a
gauge kept by the one worker running the scheduler would go stale when it dies).
Merging the files runs on a thread, so a scrape never stalls the mail sessions sharing
this worker's event loop, and an answer is reused for :data:`MAX_AGE` (half a second) by
the worker that made it, so that scrapes, however many, never cost the mail listeners
more than a couple of renders a second (``bench/http.py``).
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiohttp import web
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from .. import log, metrics
from ..config import Config, Section
from .app import CTX, listener_of

if TYPE_CHECKING:
    from ..context import ServerContext
    from ..outbound.queue import QueueStats

logger = log.get("http")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
# Seconds a rendered answer is reused by this worker. Rendering takes about a millisecond
# (several with many workers' files to merge); Prometheus scrapes every 15 s or so, so this
# hides nothing from it, while a flood of scrapes costs two renders a second, not one each.
MAX_AGE = 0.5


@dataclass(frozen=True, slots=True)
class MetricsSettings:
    enabled: bool = True
    listeners: tuple[str, ...] = ()  # the HTTP listeners that answer /metrics (resolved)
    allow: tuple[Network, ...] = ()  # empty: any client


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def read_settings(cfg: Config, problems: list[str]) -> MetricsSettings:
    raw = cfg.sections.get("http", {}).get("metrics")
    sec = Section(raw, "http.metrics", problems)
    enabled = sec.get("enabled", bool, True)
    http = {lst.name: lst for lst in cfg.listeners if lst.protocol == "http"}
    if "listeners" in sec.data:
        names = sec.strings("listeners")
        for name in names:
            if name not in http:
                sec.problem("listeners", f"{name!r} is not an HTTP listener (have: {', '.join(http) or 'none'})")
    else:
        names = tuple(name for name, lst in http.items() if _is_loopback(lst.host))
    allow: list[Network] = []
    for item in sec.strings("allow"):
        try:
            allow.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            sec.problem("allow", f"{item!r} is not an IP address or network")
    sec.finish()
    return MetricsSettings(enabled, tuple(n for n in names if n in http), tuple(allow))


def check_settings(cfg: Config, problems: list[str]) -> None:
    read_settings(cfg, problems)


def settings_for(ctx: ServerContext) -> MetricsSettings:
    """Parsed once per config (``ctx.state`` is emptied on SIGHUP)."""
    st = ctx.state.get("http.metrics")
    if not isinstance(st, MetricsSettings):
        problems: list[str] = []
        st = read_settings(ctx.config, problems)
        for p in problems:  # `postroom check` reports them; at run time the valid part applies
            logger.warning("config: %s", p)
        ctx.state["http.metrics"] = st
    return st


def _allowed(peer: str | None, allow: tuple[Network, ...]) -> bool:
    if not allow:
        return True
    try:
        ip = ipaddress.ip_address((peer or "").split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in net for net in allow)


def queue_families(stats: QueueStats | None, now: float) -> list[Metric]:
    """The outbound queue gauges from the queue's ``stats()`` (None: no queue here). On
    PostgreSQL that is the whole cluster's queue, the same on every node."""
    if stats is None:
        return []
    oldest = stats.oldest
    return [
        GaugeMetricFamily("postroom_queue_messages", "Messages in the outbound queue (held ones included)",
                          value=stats.messages),
        GaugeMetricFamily("postroom_queue_held_messages", "Messages held in the outbound queue",
                          value=stats.held),
        GaugeMetricFamily("postroom_queue_recipients", "Outbound recipients not yet delivered or bounced",
                          value=stats.recipients),
        GaugeMetricFamily("postroom_queue_oldest_age_seconds", "Age of the oldest message in the outbound "
                          "queue (0 when empty)", value=max(0.0, now - oldest) if oldest is not None else 0.0),
    ]


class _Families(Collector):
    """Families already collected, for the exposition encoders (which read a registry)."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterable[Metric]:
        return self.families


def render(extra: list[Metric], accept: str | None) -> tuple[bytes, str]:
    """The exposition (text format, or OpenMetrics when the scraper asks for it)."""
    encoder, content_type = choose_encoder(accept or "")
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families([*metrics.collect(), *extra]))
    return encoder(registry), content_type


async def _render(ctx: ServerContext, accept: str | None) -> tuple[bytes, str]:
    queue = getattr(ctx.outbound, "queue", None)
    stats = None
    if queue is not None and hasattr(queue, "stats"):
        try:
            stats = await queue.stats()
        except Exception:  # the other metrics are still worth answering with
            logger.exception("metrics: reading the outbound queue failed; its gauges are left out")
    extra = queue_families(stats, time.time())
    if metrics.directory is not None:
        # Reading and merging every worker's files: off the event loop.
        return await asyncio.to_thread(render, extra, accept)
    return render(extra, accept)


async def exposition(ctx: ServerContext, accept: str | None) -> tuple[bytes, str]:
    """The rendered metrics, made at most once per :data:`MAX_AGE` per format in this
    worker; scrapes arriving while one is being made wait for that one."""
    key = choose_encoder(accept or "")[1]
    cache: dict[str, tuple[float, asyncio.Future[tuple[bytes, str]]]] = ctx.state.setdefault(
        "http.metrics.cache", {})
    now = time.monotonic()
    entry = cache.get(key)
    if entry is None or (entry[1].done() and (now - entry[0] >= MAX_AGE or entry[1].cancelled()
                                              or entry[1].exception() is not None)):
        entry = cache[key] = (now, asyncio.ensure_future(_render(ctx, accept)))
    # Shielded: a scraper that hangs up must not cancel the render the others wait for.
    return await asyncio.shield(entry[1])


async def handle(request: web.Request) -> web.StreamResponse:
    ctx: ServerContext = request.app[CTX]  # type: ignore[assignment]
    st = settings_for(ctx)
    if not st.enabled or listener_of(request) not in st.listeners:
        raise web.HTTPNotFound()  # what any unknown path gets: nothing to learn here
    if not _allowed(request.remote, st.allow):
        return web.Response(status=403, text="403 Forbidden\n")
    metrics.SCRAPES.inc()
    body, content_type = await exposition(ctx, request.headers.get("Accept"))
    resp = web.Response(body=body)
    resp.headers["Content-Type"] = content_type
    resp.headers["Cache-Control"] = "no-store"
    return resp
