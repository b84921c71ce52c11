"""Prometheus metrics: every definition in one place, and where the values live.

Call sites reach the metrics through this module at call time
(``metrics.LOGINS.labels("ok").inc()``), never with ``from .metrics import LOGINS``:
:func:`use_directory` defines them anew when the process switches to multiprocess
mode, and a name bound early would keep counting into the old, unscraped object.

Only servers keep metrics: :func:`enable` (``Server.start``) or :func:`use_directory`
(the supervisor) switch them on. Until then every metric is :data:`OFF`, which
ignores what it is told, so the CLI (``postroom sendmail`` runs once per message) and
scripts that open the store do not load ``prometheus_client`` (0.1-0.2 s of imports,
among them the standard library's ``http.server``) for values nobody could scrape.

Where values live:

- **One process** (``workers = 1``, and servers started in-process by tests): plain
  in-memory values in :data:`registry`; ``/metrics`` renders them directly.
- **Several workers**: ``prometheus_client``'s multiprocess mode. The supervisor calls
  :func:`use_directory` (``<data>/metrics``, emptied at each start) before it forks;
  every process then writes each value into its own mmap'd file there
  (``counter_<pid>.db`` …), and a scrape, answered by whichever worker the kernel gives
  the connection to, merges all files (:func:`collect`). Counters of dead workers stay
  in the sum (a counter must not go down when a worker is restarted); their live gauges
  are dropped by :func:`process_died`, which the supervisor calls for each dead worker.

Gauge modes, chosen per gauge: ``livesum`` for things each worker holds a share of
(open connections, workers alive): the sum over the workers alive is the server's
value. The queue's depth and age are not kept in files at all: the queue is one
database every worker can read, so a scrape asks it (``postroom.http.metrics``).

Cost on the hot paths: an increment is a dict lookup for the labels, an uncontended
lock and, in multiprocess mode, one 8-byte write into the mmap'd file; no system call.
``prometheus_client`` would call ``os.getpid()`` (a system call) on every increment to
notice a fork; the pid is kept here instead and refreshed by an at-fork hook.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry
    from prometheus_client.metrics_core import Metric

ENV = "PROMETHEUS_MULTIPROC_DIR"
SUBDIR = "metrics"  # under the data directory

# Seconds from a message's arrival in the outbound queue to its final outcome: immediate
# deliveries take well under a second, retried ones minutes to days (max_lifetime 5 d).
DELIVERY_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, 86400, 5 * 86400)
# One group commit: an fsync of the segment and one of the WAL, 0.1 ms on tmpfs to tens
# of ms on a busy disk.
COMMIT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)

_pid = os.getpid()


def _refresh_pid() -> None:
    global _pid
    _pid = os.getpid()


os.register_at_fork(after_in_child=_refresh_pid)


def _current_pid() -> int:
    return _pid


class Off:
    """Every metric until :func:`enable`: takes labels and values, keeps nothing."""

    __slots__ = ()

    def labels(self, *_values: str) -> Off:
        return self

    def inc(self, amount: float = 1) -> None:
        pass

    def dec(self, amount: float = 1) -> None:
        pass

    def set(self, value: float) -> None:
        pass

    def observe(self, value: float) -> None:
        pass


OFF = Off()
enabled = False
registry: CollectorRegistry | None = None  # in-memory mode's values
directory: Path | None = None  # set in multiprocess mode
# Per-protocol children, looked up once: ``labels()`` checks and locks on every call.
_per_protocol: dict[str, tuple[Any, Any]] = {}


def _define() -> None:
    """(Re)create every metric; in-process mode registers them in :data:`registry`."""
    global registry, CONNECTIONS, CONNECTIONS_REFUSED, CONNECTIONS_OPEN, WORKERS_ALIVE, WORKER_RESTARTS
    global LOGINS, MESSAGES, LOCAL_DELIVERIES, OUTBOUND_RESULTS, OUTBOUND_SECONDS
    global STORE_COMMIT_SECONDS, STORE_COMMIT_BATCH, TLS_HANDSHAKE_FAILURES, SCRAPES, enabled
    from prometheus_client import (
        CollectorRegistry,
        Counter,
        Gauge,
        Histogram,
        disable_created_metrics,
    )

    # ``*_created`` series are written in one process only (multiprocess mode has none):
    # off, so that /metrics has the same series whatever the number of workers.
    disable_created_metrics()
    reg = None if directory is not None else CollectorRegistry(auto_describe=True)
    CONNECTIONS = Counter("postroom_connections", "Connections accepted, by protocol",
                          ["protocol"], registry=reg)
    CONNECTIONS_REFUSED = Counter("postroom_connections_refused", "Connections turned away at a connection "
                                  "limit (total or per IP) or while shutting down, by protocol", ["protocol"],
                                  registry=reg)
    CONNECTIONS_OPEN = Gauge("postroom_connections_open", "Connections being served now, by protocol",
                             ["protocol"], registry=reg, multiprocess_mode="livesum")
    WORKERS_ALIVE = Gauge("postroom_workers_alive", "Worker processes serving (1 without a supervisor)",
                          registry=reg, multiprocess_mode="livesum")
    WORKER_RESTARTS = Counter("postroom_worker_restarts", "Workers that died and were started again "
                              "by the supervisor", registry=reg)
    LOGINS = Counter("postroom_logins", "Login attempts of every protocol: ok, failed (wrong password "
                     "or unknown user), throttled (refused unchecked after too many failures)",
                     ["result"], registry=reg)
    MESSAGES = Counter("postroom_messages", "Messages received (SMTP, submission, local sendmail) "
                       "by result (accepted, rejected, deferred) and reason", ["source", "result", "reason"],
                       registry=reg)
    LOCAL_DELIVERIES = Counter("postroom_local_deliveries", "Copies of accepted messages for local "
                               "accounts (before Sieve), one per account", registry=reg)
    OUTBOUND_RESULTS = Counter("postroom_outbound_recipients", "Outbound delivery attempts' outcomes per "
                               "recipient: delivered, deferred (to be retried), bounced", ["result"],
                               registry=reg)
    OUTBOUND_SECONDS = Histogram("postroom_outbound_delivery_seconds", "Time from a message's arrival in "
                                 "the outbound queue to its recipient's final outcome", ["result"],
                                 buckets=DELIVERY_BUCKETS, registry=reg)
    STORE_COMMIT_SECONDS = Histogram("postroom_store_commit_seconds", "Duration of one group commit of the "
                                     "mail store (segment fsync, SQLite COMMIT)", buckets=COMMIT_BUCKETS,
                                     registry=reg)
    STORE_COMMIT_BATCH = Histogram("postroom_store_commit_batch_size", "Write requests committed together "
                                   "in one group commit", buckets=BATCH_BUCKETS, registry=reg)
    TLS_HANDSHAKE_FAILURES = Counter("postroom_tls_handshake_failures", "Server-side TLS handshakes "
                                     "(implicit TLS and STARTTLS) the client failed, by OpenSSL reason",
                                     ["reason"], registry=reg)
    SCRAPES = Counter("postroom_metrics_scrapes", "Requests for /metrics answered", registry=reg)
    registry = reg
    _per_protocol.clear()
    enabled = True


# Typed loosely: each is OFF or a prometheus_client Counter, Gauge or Histogram.
CONNECTIONS: Any = OFF
CONNECTIONS_REFUSED: Any = OFF
CONNECTIONS_OPEN: Any = OFF
WORKERS_ALIVE: Any = OFF
WORKER_RESTARTS: Any = OFF
LOGINS: Any = OFF
MESSAGES: Any = OFF
LOCAL_DELIVERIES: Any = OFF
OUTBOUND_RESULTS: Any = OFF
OUTBOUND_SECONDS: Any = OFF
STORE_COMMIT_SECONDS: Any = OFF
STORE_COMMIT_BATCH: Any = OFF
TLS_HANDSHAKE_FAILURES: Any = OFF
SCRAPES: Any = OFF


def enable() -> None:
    """Keep metrics in this process (in memory, unless :func:`use_directory` ran already)."""
    if not enabled:
        _define()


def directory_for(data_dir: Path) -> Path:
    return Path(data_dir) / SUBDIR


def prepare_directory(path: Path) -> None:
    """Create ``path`` or empty it of the value files of an earlier run (supervisor start).

    Files of processes that are gone would otherwise be summed into this run's values:
    counters would start high and live gauges of dead pids would count for ever.
    """
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    for f in path.glob("*.db"):
        f.unlink(missing_ok=True)


def use_directory(path: Path) -> None:
    """Switch this process (and the ones it forks from now on) to multiprocess mode.

    Must run before the first fork: the children inherit the setting and the new metric
    objects; each child writes its own files once it first touches a value.
    """
    global directory
    from prometheus_client import values

    prepare_directory(path)
    os.environ[ENV] = str(path)
    values.ValueClass = values.MultiProcessValue(process_identifier=_current_pid)
    directory = path
    _define()


def use_memory() -> None:
    """Back to in-process values (tests that ran a multiprocess setup)."""
    global directory
    from prometheus_client import values

    os.environ.pop(ENV, None)
    values.ValueClass = values.MutexValue
    directory = None
    _define()


def process_died(pid: int) -> None:
    """A worker is gone: its live gauges must stop counting (its counters stay)."""
    if directory is not None:
        from prometheus_client.multiprocess import mark_process_dead

        mark_process_dead(pid, str(directory))


def collect() -> Iterable[Metric]:
    """Every metric family of the server: all processes' files, or this process's values."""
    if directory is not None:
        from prometheus_client.multiprocess import MultiProcessCollector

        return MultiProcessCollector.merge([str(p) for p in directory.glob("*.db")], accumulate=True)
    return list(registry.collect()) if registry is not None else []


# -- small helpers for call sites that would otherwise need two lines ---------------------

def _protocol(protocol: str) -> tuple[Any, Any]:
    pair = _per_protocol.get(protocol)
    if pair is None:
        pair = _per_protocol[protocol] = (CONNECTIONS.labels(protocol), CONNECTIONS_OPEN.labels(protocol))
    return pair


def connection_opened(protocol: str) -> None:
    total, now_open = _protocol(protocol)
    total.inc()
    now_open.inc()


def connection_closed(protocol: str) -> None:
    _protocol(protocol)[1].dec()


def store_commit(seconds: float, batch: int) -> None:
    STORE_COMMIT_SECONDS.observe(seconds)
    STORE_COMMIT_BATCH.observe(batch)


def outbound_result(result: str, queued_for: float | None = None) -> None:
    """One recipient's attempt outcome; ``queued_for``: seconds since arrival, for final ones."""
    OUTBOUND_RESULTS.labels(result).inc()
    if queued_for is not None:
        OUTBOUND_SECONDS.labels(result).observe(max(0.0, queued_for))


def message(source: str, result: str, reason: str = "") -> None:
    MESSAGES.labels(source, result, reason).inc()

