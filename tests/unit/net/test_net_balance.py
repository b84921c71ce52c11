"""The balancer's rules (net/balance.py), in one process over its real socketpairs.

A worker keeps a connection unless another serves fewer sessions (counting those on their
way to it); a hand-over that cannot be sent (a full inbox) is refused so that the caller
serves the connection itself; a dead or stopping worker is sent nothing.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from postroom.net.balance import GONE, Balancer


@pytest.fixture
def made() -> Iterator[list[Balancer]]:
    made: list[Balancer] = []
    yield made
    for b in made:
        b.close()


def new(made: list[Balancer], workers: int) -> Balancer:
    b = Balancer(workers)
    made.append(b)
    return b


def as_worker(b: Balancer, slot: int) -> Balancer:
    b.slot = slot  # what attach does in the forked worker, without clearing the count
    return b


def test_one_worker_is_refused() -> None:
    with pytest.raises(ValueError):
        Balancer(1)


def test_keeps_when_even_hands_over_when_busier(made: list[Balancer]) -> None:
    b = new(made, 3)
    b.attach(0)
    assert b.target() is None  # 0/0/0
    b.opened()
    b.counts[1] = 1
    assert b.target() == 2  # 1/1/0: the least loaded
    b.counts[2] = 1
    assert b.target() is None  # 1/1/1: keeping leaves them one apart
    b.closed()
    assert b.counts[0] == 0


def test_gone_and_retired_workers_get_nothing(made: list[Balancer]) -> None:
    b = new(made, 2)
    b.attach(0)
    b.opened()
    b.mark_gone(1)
    assert b.target() is None
    b.counts[1] = 0  # its replacement attached
    assert b.target() == 1
    b.retire()
    assert b.counts[0] == GONE
    b.closed()  # a retired worker's count stays GONE while its sessions end
    assert b.counts[0] == GONE


def test_connection_in_flight_counts_for_the_receiver(made: list[Balancer]) -> None:
    b = new(made, 2)
    b.attach(0)
    b.opened()
    b.opened()
    listener, client = socket.socket(), socket.socket()
    with listener, client:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        client.connect(listener.getsockname())
        conn, _ = listener.accept()
        with conn:
            assert b.target() == 1
            assert b.hand_over(1, 3, conn.fileno())
            # Not adopted yet: 2 here, 0 + 1 on its way there; the next one stays here.
            assert b.load(1) == 1
            b.opened()
            assert b.target() == 1  # 3 against 1: one more may go
            as_worker(b, 1)
            [(index, sock)] = b.receive()
            with sock:
                assert index == 3
                assert b.load(1) == 0  # taken: now counted by the receiver itself
                client.sendall(b"through the handed-over socket")
                sock.setblocking(True)
                assert sock.recv(100) == b"through the handed-over socket"
            assert b.receive() == []


def test_full_inbox_refuses_the_hand_over(made: list[Balancer]) -> None:
    b = new(made, 2)
    b.attach(0)
    sent = 0
    while b.hand_over(1, 0, b.inbox.fileno()):  # any descriptor will do
        sent += 1
        assert sent < 10_000, "the inbox never filled"
    assert sent >= 1
    as_worker(b, 1)
    got = b.receive()
    assert len(got) == sent
    for _index, sock in got:
        sock.close()
    for i in range(2):
        assert b.load(i) == 0
