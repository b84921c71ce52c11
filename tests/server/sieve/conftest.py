"""The module-scoped server and SMTP sink of the Sieve delivery tests (sieve_server_harness.py)."""

from __future__ import annotations

import pytest
from sieve_server_harness import (
    REMOTE,
    SINK_IP,
    DnsFixture,
    ScriptedSmtp,
    SieveServer,
    free_port,
)


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """(server, sink): one Postroom and the SMTP sink standing for remote.test."""
    port = free_port((SINK_IP,))
    with DnsFixture() as dns, ScriptedSmtp(SINK_IP, port) as sink:
        dns.mx(REMOTE, [(10, f"mx.{REMOTE}")])
        dns.a(f"mx.{REMOTE}", SINK_IP)
        srv = SieveServer(tmp_path_factory.mktemp("sieve"), dns, port).start()
        try:
            yield srv, sink
        finally:
            srv.stop()
