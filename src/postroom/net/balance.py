"""Spreading connections over the worker processes by load, at accept time.

With ``workers = N`` every worker binds the same addresses with SO_REUSEPORT and the
kernel hashes each new connection to one of them: ten long POP3 or IMAP sessions land
6/4, 7/3, sometimes 10/0, and one core works while the other idles. The hash knows
nothing about load, so the workers correct it themselves (Dovecot's master passes
descriptors the same way; nginx's accept_mutex solves the same problem by taking turns).

Made once by the supervisor, before it forks, and inherited by every worker:

* one shared counter per worker (an anonymous shared mmap): the sessions it serves now,
  counted from the moment it keeps a connection (not when the session's task first runs:
  a burst of accepts in one loop iteration must see each other).
* per pair of workers, how many connections i has sent j and how many j has taken from i:
  the difference is in flight, and counts as j's load already. Without it a worker
  accepting a burst would send every connection to the same idle worker before that one
  had adopted the first.
  Every number has one writer (the worker it belongs to), so no lock is needed; a reader
  may see a value one step old, which costs at most one connection of imbalance.
* one Unix datagram socketpair per worker: its inbox for handed-over connections. A
  datagram carries the sender's slot, the listener's index and the socket itself
  (SCM_RIGHTS).

A worker that accepts a connection while it serves more sessions than the least-loaded
worker sends it there before anything was read or written (no greeting, no TLS), and
that worker adopts it as if it had accepted it. When the send fails (the inbox is full:
the kernel queues at most ``net.unix.max_dgram_qlen`` datagrams, 10 by default) the
accepting worker serves the connection itself: a connection is never dropped.

The supervisor keeps every end open, so a worker's inbox outlives the worker: a
connection sent to a worker that has just died waits there for its replacement. The
supervisor marks a dead worker's slot :data:`GONE` so that nobody sends it more
meanwhile; the replacement's :meth:`Balancer.attach` clears it.
"""

from __future__ import annotations

import mmap
import socket
import struct

# Larger than any real count: a worker that is gone or stopping gets nothing handed over.
GONE = 1 << 62
_HEADER = struct.Struct("!HH")  # the sender's slot, the listener's position in the listener list
_SLOT = 8  # bytes per counter (a signed 64-bit integer)


class Balancer:
    """Per-worker session counts and inboxes, shared by a supervisor and its workers."""

    def __init__(self, workers: int) -> None:
        if workers < 2:
            raise ValueError("balancing needs two workers or more")
        self.workers = workers
        # Anonymous and MAP_SHARED: the same memory in every process forked after this.
        self._mem = mmap.mmap(-1, _SLOT * (workers + 2 * workers * workers))
        cells = memoryview(self._mem).cast("q")
        self.counts = cells[:workers]
        self.sent = cells[workers:workers + workers * workers]  # [i * N + j]: i sent to j
        self.taken = cells[workers + workers * workers:]  # [j * N + i]: j took from i
        self._pairs = [socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM) for _ in range(workers)]
        for out, inbox in self._pairs:
            out.setblocking(False)
            inbox.setblocking(False)
        self.slot = -1  # this process's worker slot; -1 in the supervisor
        self._open = 0
        self._retired = False

    def close(self) -> None:
        """Close this process's copies of every inbox (the shared counts stay mapped)."""
        for out, inbox in self._pairs:
            out.close()
            inbox.close()

    # -- in the supervisor ----------------------------------------------------------
    def mark_gone(self, slot: int) -> None:
        """The worker in ``slot`` has died: send it nothing until its replacement starts."""
        self.counts[slot] = GONE

    # -- in a worker ----------------------------------------------------------------
    def attach(self, slot: int) -> None:
        """Become the worker in ``slot`` (a fresh process: nothing served yet). The sent
        and taken numbers carry on from the worker before: what it was sent and had not
        taken still waits in the inbox."""
        self.slot = slot
        self._open = 0
        self._retired = False
        self.counts[slot] = 0

    @property
    def inbox(self) -> socket.socket:
        return self._pairs[self.slot][1]

    def opened(self) -> None:
        self._open += 1
        if not self._retired:
            self.counts[self.slot] = self._open

    def closed(self) -> None:
        self._open -= 1
        if not self._retired:
            self.counts[self.slot] = self._open

    def retire(self) -> None:
        """This worker is stopping: the others must keep their new connections."""
        self._retired = True
        self.counts[self.slot] = GONE

    def target(self) -> int | None:
        """The worker a new connection should go to, or None to keep it here.

        Kept here unless another worker serves fewer sessions than this one: keeping it
        would leave the two at least two apart, handing it over leaves them at most one."""
        best, least = -1, self.load(self.slot)
        for j in range(self.workers):
            if j != self.slot:
                n = self.load(j)
                if n < least:
                    best, least = j, n
        return best if best >= 0 else None

    def load(self, j: int) -> int:
        """Sessions worker ``j`` serves plus the connections on their way to it."""
        n = self.workers
        sent, taken = self.sent, self.taken
        return self.counts[j] + sum(max(0, sent[i * n + j] - taken[j * n + i]) for i in range(n) if i != j)

    def hand_over(self, slot: int, index: int, fd: int) -> bool:
        """Send the connection ``fd`` (accepted on listener ``index``) to worker ``slot``.
        False when it could not be sent: the caller keeps and serves it."""
        try:
            socket.send_fds(self._pairs[slot][0], [_HEADER.pack(self.slot, index)], [fd])
        except OSError:  # the inbox is full (BlockingIOError) or otherwise unusable
            return False
        self.sent[self.slot * self.workers + slot] += 1
        return True

    def receive(self) -> list[tuple[int, socket.socket]]:
        """Every connection waiting in this worker's inbox, with its listener index."""
        got: list[tuple[int, socket.socket]] = []
        while True:
            try:
                data, fds, _flags, _addr = socket.recv_fds(self.inbox, _HEADER.size, 1)
            except (BlockingIOError, InterruptedError):
                return got
            socks = [socket.socket(fileno=fd) for fd in fds]
            if len(data) != _HEADER.size or len(socks) != 1:  # only our own workers write here
                for s in socks:
                    s.close()
                continue
            sender, index = _HEADER.unpack(data)
            if sender < self.workers:
                self.taken[self.slot * self.workers + sender] += 1
            socks[0].setblocking(False)
            got.append((index, socks[0]))
