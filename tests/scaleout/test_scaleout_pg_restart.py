"""PostgreSQL restarted under load with three nodes on it (issue #17, "Done when").

The cluster is this module's own (tests/pgcluster.py), so restarting it leaves the session's
cluster and the other tests alone. SMTP and APPEND clients run against all three nodes while
PostgreSQL stops and starts again, first with a fast shutdown (the server ends every session)
and then with an immediate one (as a crash or a failover: no goodbye, crash recovery at start).
Clients may get temporary errors (451, NO [UNAVAILABLE]) or lose their connection meanwhile;
then they must carry on, every acknowledged message must be stored whole, and no node may die.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest
from pgcluster import PgCluster, available
from scaleout_nodes import Load, NodeSet, check_mailbox, free_port, wait_for

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster_nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[PgCluster, NodeSet]]:
    if not available():
        if os.environ.get("POSTROOM_TEST_REQUIRE_PG") == "1":
            pytest.fail("PostgreSQL server binaries missing (scripts/install-test-deps.sh installs them)")
        pytest.skip("PostgreSQL server not installed")
    cluster = PgCluster(tmp_path_factory.mktemp("pg-restart")).start()
    try:
        url = cluster.create_database("scaleout")
        # No outbound mail here: the resolver and MX port point at nothing.
        nodes = NodeSet(tmp_path_factory.mktemp("nodes"), url, f"127.0.0.1:{free_port('127.0.0.1')}",
                        free_port("127.0.0.4"), ("fast", "immediate"))
        try:
            nodes.start()
            yield cluster, nodes
        finally:
            nodes.stop()
    finally:
        cluster.destroy()


@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_postgresql_restart_under_load(cluster_nodes, mode: str) -> None:  # type: ignore[no-untyped-def]
    cluster, nodes = cluster_nodes
    with Load(list(nodes), mode, f"r{mode[0]}") as load:
        wait_for(lambda: len(load.ledger.acked) >= 60, timeout=60, what="traffic on every node")
        down = time.monotonic()
        cluster.restart(mode)
        back = time.monotonic()
        # Every client carries on once PostgreSQL is back: a success after the restart, from each.
        wait_for(lambda: all(t.last_ok > back for t in load.threads), timeout=60,
                 what="every client succeeding again after the restart")
        recovered = time.monotonic() - back
    dead = [n.name for n in nodes if not n.alive()]
    assert not dead, f"nodes died: {dead}\n" + "\n".join(nodes[int(d[-1]) - 1].log()[-3000:] for d in dead)
    count, problems = check_mailbox(nodes[0], mode, load.ledger)
    print(f"\nPostgreSQL {mode} restart: down {back - down:.1f}s, every client succeeding again "
          f"{recovered:.1f}s after; {len(load.ledger.acked)} acknowledged, {count} stored; "
          f"temporary failures seen by clients: {dict(load.ledger.temporary)}")
    assert not load.ledger.unexpected, f"{load.ledger.unexpected[:10]}\n{nodes.errors()}"
    # The restart happened under the clients' feet (else this test would prove nothing).
    assert sum(load.ledger.temporary.values()) > 0
    assert not problems, problems[:10]
