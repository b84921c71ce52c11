"""``/metrics`` of a one-process server: which listeners answer, ``allow``, formats, reload.

One process keeps its values in memory (no files); the scrape reads them the same way.
``[http.metrics] listeners`` names the listeners that answer (here the HTTPS one and an
HTTP one on the wildcard address, not the loopback ``http`` the default would pick), and
a SIGHUP-style reload with ``allow`` narrows it to other client networks.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
from http_harness import Harness, write_http_config

pytest.importorskip("prometheus_client")
from prometheus_client.parser import text_string_to_metric_families

from postroom import metrics
from postroom.http import metrics as http_metrics

LISTENERS = {"http": "none", "https": "implicit", "smtp": "starttls"}
SETTINGS = 'keepalive_timeout = "3s"\n[http.metrics]\nlisteners = ["https", "wild"]\n'


def _write(d: Path, settings: str) -> Path:
    path = write_http_config(d, settings, LISTENERS, limits="connections_per_ip = 4")
    path.write_text(path.read_text() + '[listeners.wild]\nprotocol = "http"\naddress = "0.0.0.0:0"\n')
    return path


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    with closing(Harness(_write(tmp_path_factory.mktemp("metricsrv"), SETTINGS))) as h:
        yield h


def _get(h: Harness, listener: str, headers: dict[str, str] | None = None,
         path: str = "/metrics") -> tuple[int, str, bytes]:
    port = h.ports[listener]
    c: http.client.HTTPConnection
    if listener == "https":
        c = http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=h.tls())
    else:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        c.request("GET", path, headers={"Host": "mail.example.test", **(headers or {})})
        r = c.getresponse()
        return r.status, r.getheader("Content-Type") or "", r.read()
    finally:
        c.close()


def _families(body: bytes) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for f in text_string_to_metric_families(body.decode()):
        for s in f.samples:
            out.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return out


def test_named_listeners_answer_and_others_do_not(srv: Harness) -> None:
    assert metrics.directory is None  # one process: values in memory
    status, ctype, body = _get(srv, "https")
    assert status == 200 and ctype.startswith("text/plain; version=0.0.4")
    fams = _families(body)
    assert fams["postroom_queue_messages"][()] == 0
    assert fams["postroom_connections_total"][(("protocol", "http"),)] >= 1
    status, _, body = _get(srv, "wild")  # public address, but named: the operator decided
    assert status == 200 and b"postroom_connections_total" in body
    status, _, body = _get(srv, "http")  # loopback, but not named: as if there were no such path
    assert status == 404 and body == _get(srv, "http", path="/no-such-path")[2]


def test_openmetrics_when_asked(srv: Harness) -> None:
    status, ctype, body = _get(srv, "https", {"Accept": "application/openmetrics-text; version=1.0.0"})
    assert status == 200 and ctype.startswith("application/openmetrics-text")
    assert body.endswith(b"# EOF\n")


def test_failed_handshakes_are_counted(srv: Harness) -> None:
    def failures() -> float:
        time.sleep(http_metrics.MAX_AGE + 0.05)  # a fresh render, not the one cached
        return sum(_families(_get(srv, "https")[2]).get("postroom_tls_handshake_failures_total", {}).values())

    before = failures()
    with socket.create_connection(("127.0.0.1", srv.ports["https"]), timeout=10) as s:
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")  # plaintext to the TLS port
        s.recv(100)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers("AES128-SHA256")  # no forward secrecy: the server offers none of these
    sock = socket.create_connection(("127.0.0.1", srv.ports["https"]), timeout=10)
    with pytest.raises(ssl.SSLError), ctx.wrap_socket(sock):
        pass
    sock.close()
    assert failures() - before == 2


def test_refused_connections_are_counted(srv: Harness) -> None:
    def refused() -> float:
        time.sleep(http_metrics.MAX_AGE + 0.05)
        status, _, body = _get(srv, "https")
        assert status == 200, status  # 503 while the test's own connections fill the per-IP limit
        return _families(body).get("postroom_connections_refused_total", {}).get((("protocol", "smtp"),), 0.0)

    before = refused()
    held = [socket.create_connection(("127.0.0.1", srv.ports["smtp"]), timeout=10) for _ in range(4)]
    try:
        for s in held:
            assert s.recv(100).startswith(b"220 ")
        with socket.create_connection(("127.0.0.1", srv.ports["smtp"]), timeout=10) as extra:
            assert extra.recv(100).startswith(b"421 4.7.0 Too many connections")  # over connections_per_ip
    finally:
        for s in held:
            s.close()
    deadline = time.monotonic() + 10
    while True:  # the four closes reach the server a moment later
        try:
            after = refused()
            break
        except (AssertionError, OSError):
            assert time.monotonic() < deadline
    assert after - before == 1


def test_allow_after_reload(srv: Harness, tmp_path: Path) -> None:
    cfg = srv.cfg_path
    original = cfg.read_text()
    try:
        cfg.write_text(original.replace('listeners = ["https", "wild"]\n',
                                        'listeners = ["https", "wild"]\nallow = ["192.0.2.0/24", "::1"]\n'))
        srv.loop.call_soon_threadsafe(srv.server.reload, str(cfg))
        srv.call(_noop())  # the reload ran
        status, _, body = _get(srv, "https")
        assert status == 403 and b"postroom_" not in body
        cfg.write_text(original.replace('listeners = ["https", "wild"]\n', "enabled = false\n"))
        srv.loop.call_soon_threadsafe(srv.server.reload, str(cfg))
        srv.call(_noop())
        assert _get(srv, "https")[0] == 404
    finally:
        cfg.write_text(original)
        srv.loop.call_soon_threadsafe(srv.server.reload, str(cfg))
        srv.call(_noop())
    assert _get(srv, "https")[0] == 200


async def _noop() -> None:
    return None



def test_check_reports_metrics_problems(tmp_path: Path) -> None:
    """Regression: ``postroom check`` (config.check) did not read [http.metrics], so a bad
    value there showed up only as a warning at the first scrape."""
    from postroom import config

    path = _write(tmp_path, '[http.metrics]\nenabled = "maybe"\n')
    assert any(p.startswith("http.metrics.enabled:") for p in config.check(path))
