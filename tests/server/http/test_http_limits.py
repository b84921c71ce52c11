"""The runtime's connection limits hold for HTTP as for the mail listeners: over them, a
client gets ``503`` with ``Retry-After`` and is closed, and a slot frees when a client leaves."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
from http_harness import Harness, read_all, write_http_config


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    d: Path = tmp_path_factory.mktemp("httplimits")
    with closing(Harness(write_http_config(d, limits="connections_per_ip = 2"))) as h:
        yield h


def test_over_the_per_ip_limit_is_503(limited: Harness) -> None:
    held = [limited.raw(tls=True), limited.raw()]
    for s in held:  # both served: the slots are taken by live connections
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert s.recv(4096).startswith(b"HTTP/1.1 200 OK")
    third = limited.raw()
    reply = read_all(third)
    assert reply.startswith(b"HTTP/1.1 503 Service Unavailable\r\n") and b"Retry-After: 5\r\n" in reply
    third.close()
    held.pop().close()
    deadline = time.monotonic() + 5  # a slot is free again once the server has seen the close
    while (got := limited.get("/healthz", "x"))[0] == 503:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert (got[0], got[2]) == (200, b"ok\n")
    for s in held:
        s.close()
