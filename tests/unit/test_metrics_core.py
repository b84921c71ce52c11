"""postroom.metrics (where values live, multiprocess merging) and the /metrics settings."""

from __future__ import annotations

import ipaddress
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("prometheus_client")
pytest.importorskip("aiohttp")

from prometheus_client.parser import text_string_to_metric_families

from postroom import metrics
from postroom.config import from_dict
from postroom.http import metrics as http_metrics
from postroom.outbound.queue import QueueStats


def _samples(families: object) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families for s in f.samples}  # type: ignore[attr-defined]


@pytest.fixture
def multiprocess(tmp_path: Path) -> Iterator[Path]:
    d = tmp_path / "metrics"
    metrics.use_directory(d)
    try:
        yield d
    finally:
        metrics.use_memory()


def test_off_until_a_server_enables_them() -> None:
    """The CLI (``postroom sendmail`` once per message) and scripts that open the store
    must not pay for prometheus_client's imports: nothing loads it until ``enable``."""
    code = ("import sys; import postroom.server, postroom.smtp.delivery, postroom.storage.sqlite.engine, "
            "postroom.outbound.delivery; from postroom import metrics; "
            "metrics.LOGINS.labels('ok').inc(); metrics.store_commit(0.1, 2); metrics.connection_opened('smtp'); "
            "assert list(metrics.collect()) == []; "
            "assert 'prometheus_client' not in sys.modules, 'imported'; "
            "metrics.enable(); assert 'prometheus_client' in sys.modules; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout == "ok\n", out.stderr


def test_in_memory_values_once_enabled() -> None:
    metrics.enable()
    assert metrics.directory is None
    before = _samples(metrics.collect()).get(("postroom_logins_total", (("result", "ok"),)), 0.0)
    metrics.LOGINS.labels("ok").inc()
    after = _samples(metrics.collect())[("postroom_logins_total", (("result", "ok"),))]
    assert after - before == 1
    # No *_created series: the same series whatever the number of workers.
    assert not any(name.endswith("_created") for name, _ in _samples(metrics.collect()))


def test_forked_processes_are_merged_and_dead_ones_lose_their_live_gauges(multiprocess: Path) -> None:
    metrics.connection_opened("smtp")  # this process: one connection, still open
    metrics.WORKERS_ALIVE.set(1)
    pid = os.fork()
    if pid == 0:  # a worker: two connections, one still open when it dies
        code = 1
        try:
            metrics.connection_opened("smtp")
            metrics.connection_opened("smtp")
            metrics.connection_closed("smtp")
            metrics.WORKERS_ALIVE.set(1)
            metrics.store_commit(0.002, 3)
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    files = {f.name for f in multiprocess.glob("*.db")}
    assert f"counter_{pid}.db" in files and f"counter_{os.getpid()}.db" in files  # the child wrote its own
    s = _samples(metrics.collect())
    assert s[("postroom_connections_total", (("protocol", "smtp"),))] == 3
    assert s[("postroom_connections_open", (("protocol", "smtp"),))] == 2  # livesum over both
    assert s[("postroom_workers_alive", ())] == 2
    assert s[("postroom_store_commit_batch_size_count", ())] == 1
    assert s[("postroom_store_commit_batch_size_bucket", (("le", "4.0"),))] == 1
    assert s[("postroom_store_commit_batch_size_bucket", (("le", "2.0"),))] == 0

    metrics.process_died(pid)
    s = _samples(metrics.collect())
    assert s[("postroom_connections_total", (("protocol", "smtp"),))] == 3  # counters stay
    assert s[("postroom_connections_open", (("protocol", "smtp"),))] == 1  # its open one is gone
    assert s[("postroom_workers_alive", ())] == 1


def test_a_new_run_starts_from_zero(multiprocess: Path) -> None:
    metrics.LOGINS.labels("failed").inc(5)
    assert list(multiprocess.glob("*.db"))
    stale = multiprocess / "gauge_livesum_999999.db"
    stale.write_bytes(b"")
    metrics.use_directory(multiprocess)  # what the supervisor does at each start
    assert not stale.exists()
    assert {f.name.rsplit("_", 1)[1] for f in multiprocess.glob("*.db")} == {f"{os.getpid()}.db"}
    metrics.LOGINS.labels("failed").inc()
    assert _samples(metrics.collect())[("postroom_logins_total", (("result", "failed"),))] == 1


def test_render_parses_in_both_formats() -> None:
    stats = QueueStats(messages=4, held=1, recipients=6, oldest=1000.0)
    extra = http_metrics.queue_families(stats, now=1090.0)
    body, ctype = http_metrics.render(extra, None)
    assert ctype.startswith("text/plain")
    s = _samples(text_string_to_metric_families(body.decode()))
    assert s[("postroom_queue_messages", ())] == 4
    assert s[("postroom_queue_held_messages", ())] == 1
    assert s[("postroom_queue_recipients", ())] == 6
    assert s[("postroom_queue_oldest_age_seconds", ())] == 90
    body, ctype = http_metrics.render(extra, "application/openmetrics-text; version=1.0.0")
    assert ctype.startswith("application/openmetrics-text") and body.endswith(b"# EOF\n")
    assert http_metrics.queue_families(None, 0) == []
    empty = http_metrics.queue_families(QueueStats(0, 0, 0, None), now=5.0)
    assert [f.samples[0].value for f in empty] == [0, 0, 0, 0.0]


def _cfg(sections: dict[str, object], listeners: dict[str, tuple[str, str]]) -> object:
    data: dict[str, object] = {"listeners": {name: {"protocol": proto, "address": addr}
                                             for name, (proto, addr) in listeners.items()}}
    data.update(sections)
    return from_dict(data, Path("/nonexistent/postroom.toml"))


LISTENERS = {
    "http": ("http", "127.0.0.1:80"),
    "https": ("http", "[::1]:443"),
    "public": ("http", "0.0.0.0:8080"),
    "lan": ("http", "192.0.2.10:9100"),
    "imap": ("imap", "127.0.0.1:143"),
}


@pytest.mark.parametrize("section, listeners, allow, problems", [
    # Default: every HTTP listener bound to loopback, never a public one, never a mail one.
    ({}, ("http", "https"), (), []),
    ({"listeners": ["lan"]}, ("lan",), (), []),
    ({"listeners": ["public", "imap", "nope"]}, ("public",), (),
     ["http.metrics.listeners: 'imap' is not an HTTP listener", "http.metrics.listeners: 'nope' is not"]),
    ({"allow": ["10.0.0.0/8", "::1", "192.0.2.7"]}, ("http", "https"),
     ("10.0.0.0/8", "::1/128", "192.0.2.7/32"), []),
    ({"allow": ["10.0.0.300/8"]}, ("http", "https"), (), ["http.metrics.allow: '10.0.0.300/8' is not"]),
    ({"listen": ["http"]}, ("http", "https"), (), ["http.metrics.listen: unknown key"]),
    ({"enabled": "yes"}, ("http", "https"), (), ["http.metrics.enabled: expected true or false"]),
])
def test_settings(section: dict[str, object], listeners: tuple[str, ...], allow: tuple[str, ...],
                  problems: list[str]) -> None:
    cfg = _cfg({"http": {"metrics": section}}, LISTENERS)
    got: list[str] = []
    st = http_metrics.read_settings(cfg, got)  # type: ignore[arg-type]
    assert st.listeners == listeners
    assert st.allow == tuple(ipaddress.ip_network(a) for a in allow)
    assert len(got) == len(problems)
    for g, p in zip(got, problems):
        assert g.startswith(p), got


def test_settings_disabled_and_absent() -> None:
    st = http_metrics.read_settings(_cfg({"http": {"metrics": {"enabled": False}}}, LISTENERS), [])  # type: ignore[arg-type]
    assert not st.enabled
    st = http_metrics.read_settings(_cfg({}, LISTENERS), [])  # type: ignore[arg-type]
    assert st.enabled and st.listeners == ("http", "https")


@pytest.mark.parametrize("peer, allow, ok", [
    ("203.0.113.9", (), True),
    ("127.0.0.1", ("127.0.0.0/8",), True),
    ("127.0.0.1", ("::1",), False),
    ("::1", ("::1",), True),
    ("::ffff:10.1.2.3", ("10.0.0.0/8",), True),  # a v4 client on a dual-stack socket
    ("fe80::1%eth0", ("fe80::/10",), True),
    ("not an address", ("0.0.0.0/0",), False),
    (None, ("0.0.0.0/0",), False),
])
def test_allowed(peer: str | None, allow: tuple[str, ...], ok: bool) -> None:
    nets = tuple(ipaddress.ip_network(a) for a in allow)
    assert http_metrics._allowed(peer, nets) is ok
