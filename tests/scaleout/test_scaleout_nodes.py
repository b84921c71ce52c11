"""Three Postroom nodes on one PostgreSQL database (issue #17, "Done when").

Three separate ``postroom serve`` processes on 127.0.0.1, .2 and .3, each with its own
config directory, share one database of the session's cluster (tests/conftest.py
``pg_cluster``). The tests check what makes them one mail system: a delivery on one node is
seen at once by IDLE on another and by POP3 on the third; the outbound queue is drained by
all of them, each message sent once; and a node killed with SIGKILL in the middle of SMTP
and APPEND traffic loses nothing that was acknowledged. PostgreSQL restarting under load is
in test_scaleout_pg_restart.py (it needs a cluster of its own).
"""

from __future__ import annotations

import poplib
import re
import smtplib
import socket
import statistics
import threading
import time
from collections.abc import Iterator

import pytest
from dnsfixture import DnsFixture
from scaleout_nodes import (
    DOMAIN,
    PASSWORD,
    REMOTE_DOMAIN,
    SINK_IP,
    Load,
    NodeSet,
    Sink,
    check_mailbox,
    free_port,
    message,
    smtp_send,
    wait_for,
)

pytestmark = pytest.mark.slow

USERS = ("idle", "queue", "kill")


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory, pg_cluster) -> Iterator[tuple[NodeSet, Sink, DnsFixture]]:  # type: ignore[no-untyped-def]
    url = pg_cluster.create_database("scaleout_nodes")
    sink = Sink(free_port(SINK_IP))
    with DnsFixture() as dns_srv:
        dns_srv.mx(REMOTE_DOMAIN, [(10, f"mx.{REMOTE_DOMAIN}")])
        dns_srv.a(f"mx.{REMOTE_DOMAIN}", SINK_IP)
        nodes = NodeSet(tmp_path_factory.mktemp("scaleout"), url, dns_srv.address, sink.port, USERS)
        try:
            nodes.start()
            yield nodes, sink, dns_srv
        finally:
            nodes.stop()
            sink.stop()


def _read_until(sock: socket.socket, buf: bytearray, pattern: bytes, timeout: float) -> tuple[bytes, float]:
    """Read from ``sock`` until a line matching ``pattern``; (the line, when it was read)."""
    deadline = time.monotonic() + timeout
    rx = re.compile(pattern)
    while True:
        while b"\r\n" in buf:
            line, _, rest = bytes(buf).partition(b"\r\n")
            buf[:] = rest
            if rx.search(line):
                return line, time.monotonic()
        left = deadline - time.monotonic()
        assert left > 0, f"no line matching {pattern!r} in {timeout}s"
        sock.settimeout(left)
        chunk = sock.recv(65536)
        assert chunk, "the IMAP server closed the connection"
        buf += chunk


def test_delivery_on_node1_seen_by_idle_on_node2_and_pop3_on_node3(net) -> None:  # type: ignore[no-untyped-def]
    nodes, _, _ = net
    n1, n2, n3 = nodes
    sock = socket.create_connection((n2.ip, n2.ports["imap"]), timeout=10)
    buf = bytearray()
    _read_until(sock, buf, rb"^\* OK", 10)
    sock.sendall(f'a1 LOGIN "idle@{DOMAIN}" "{PASSWORD}"\r\n'.encode())
    _read_until(sock, buf, rb"^a1 OK", 10)
    sock.sendall(b"a2 SELECT INBOX\r\n")
    _read_until(sock, buf, rb"^a2 OK", 10)
    sock.sendall(b"a3 IDLE\r\n")
    _read_until(sock, buf, rb"^\+ ", 10)
    sent: list[bytes] = []
    latencies: list[float] = []
    for i in range(1, 6):
        raw = message(f"idle-{i}")
        sent.append(raw)
        smtp_send(n1, f"idle@{DOMAIN}", raw)  # returns once the 250 to DATA is read
        acked = time.monotonic()
        # Another node's IDLE can see the new message even before the client reads the 250:
        # the notification goes out when the transaction commits, the 250 after it.
        _, seen = _read_until(sock, buf, rb"^\* %d EXISTS" % i, 10)
        latencies.append(max(0.0, seen - acked))
    sock.sendall(b"DONE\r\n")
    _read_until(sock, buf, rb"^a3 OK", 10)
    sock.sendall(b"a4 LOGOUT\r\n")
    sock.close()
    print(f"\nIDLE on node 2 saw deliveries on node 1 {statistics.median(latencies) * 1000:.1f} ms after the 250 "
          f"(median of {len(latencies)}; max {max(latencies) * 1000:.1f} ms; target 100 ms)")
    # Target 100 ms; this machine runs other test suites at the same time: a generous bound.
    assert statistics.median(latencies) < 1.0, latencies

    pop = poplib.POP3(n3.ip, n3.ports["pop3"], timeout=10)
    try:
        pop.user(f"idle@{DOMAIN}")
        pop.pass_(PASSWORD)
        count, _ = pop.stat()
        assert count == len(sent)
        for i, raw in enumerate(sent, 1):
            _, lines, _ = pop.retr(i)
            got = b"\r\n".join(lines) + b"\r\n"
            assert got.endswith(b"\r\n" + raw), (i, got[:300])
    finally:
        pop.quit()


def test_thousand_queued_remote_messages_drained_once_by_all_nodes(net) -> None:  # type: ignore[no-untyped-def]
    nodes, sink, _ = net
    total = 1000
    # The sink is not listening yet: every node's first attempt fails and the messages wait
    # in the shared queue, so that all three runners compete for the same rows when it comes up.
    errors: list[str] = []

    def submit(node_index: int) -> None:
        node = nodes[node_index]
        try:
            with smtplib.SMTP(node.ip, node.ports["smtp"], timeout=30, source_address=("127.0.0.1", 0)) as s:
                for i in range(node_index, total, 3):
                    s.sendmail(f"queue@{DOMAIN}", [f"user{i % 7}@{REMOTE_DOMAIN}"], message(f"q-{i}", 800))
        except (smtplib.SMTPException, OSError) as e:  # reported below; a thread's exception would be lost
            errors.append(f"node{node_index + 1}: {e!r}")

    t0 = time.monotonic()
    threads = [threading.Thread(target=submit, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not errors, errors
    queued = time.monotonic() - t0
    sink.start()
    t1 = time.monotonic()
    wait_for(lambda: len(sink.ids()) >= total, timeout=240, what=f"{total} messages at the sink", interval=0.5)
    drained = time.monotonic() - t1
    wait_for(lambda: "empty" in nodes[0].cli("queue", "list"), timeout=60, what="the shared queue to empty",
             interval=0.5)
    time.sleep(1.5)  # a duplicate would come from a retry after a lost lease: give it a retry interval
    got = sink.ids()
    dupes = {mid: k for mid, k in got.items() if k > 1}
    assert not dupes, f"{len(dupes)} messages received more than once, e.g. {list(dupes.items())[:5]}"
    assert set(got) == {f"<q-{i}@scaleout>" for i in range(total)}
    peers = {r.peer for r in sink.snapshot()}
    by_peer = {p: sum(1 for r in sink.snapshot() if r.peer == p) for p in sorted(peers)}
    print(f"\nqueued {total} in {queued:.1f}s; drained in {drained:.1f}s; sent by {by_peer}")
    assert len(peers) > 1, f"only {peers} sent: the queue was not shared"
    assert peers <= {n.ip for n in nodes}


def test_sigkill_of_a_node_under_smtp_and_append_loses_nothing_acknowledged(net) -> None:  # type: ignore[no-untyped-def]
    nodes, _, _ = net
    n1, n2, n3 = nodes
    with Load(list(nodes), "kill", "k") as load:
        wait_for(lambda: len(load.ledger.acked) >= 60, timeout=60, what="traffic on every node")
        before = len(load.ledger.acked)
        n3.kill()
        killed_at = time.monotonic()
        # The survivors carry on.
        wait_for(lambda: load.ledger.acked_after(killed_at) >= 30, timeout=60, what="traffic after the kill")
    try:
        count, problems = check_mailbox(n1, "kill", load.ledger)
        print(f"\n{len(load.ledger.acked)} acknowledged ({before} before the SIGKILL), {count} stored, "
              f"{len(load.ledger.attempted)} tried; failures seen by clients: {dict(load.ledger.temporary)}")
        assert not load.ledger.unexpected, f"{load.ledger.unexpected[:10]}\n{nodes.errors()}"
        assert not problems, problems[:10]
        # The same from another survivor: one store, whichever node reads it.
        assert check_mailbox(n2, "kill", load.ledger) == (count, [])
    finally:
        n3.start()
        n3.wait_listening()
    # The restarted node serves the same mail.
    count3, problems3 = check_mailbox(n3, "kill", load.ledger)
    assert (count3, problems3) == (count, [])

