"""The reply path that every message takes (server.py flush, Connection.ack_quickly and
Connection.drain, the fixed replies of proto.py): what a client sees must not change with
the per-message CPU cuts of issue #22.

- A client with Nagle's algorithm on that writes a message's final "." in a send of its
  own is not held up by delayed ACKs: the server asks for quick ACKs (TCP_QUICKACK, set
  on the descriptor) after each reply batch. Without it each such message waits 40 ms.
- The fixed replies (greeting, 250 Sender OK, 354, 221) keep their exact wire form over
  many sessions, now that each is encoded once per process.
"""

from __future__ import annotations

import socket
import statistics
import time

from conftest import Raw

BODY = b"Subject: dot apart\r\n\r\n" + (b"x" * 78 + b"\r\n") * 60


def test_final_dot_in_its_own_send_is_not_held_by_delayed_acks(smtp_server):
    before = len(smtp_server.inbox("dora"))
    raw = Raw(smtp_server.ports["smtp"])
    s = raw.sock
    assert s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 0  # Nagle on, as many libraries
    raw.reply()
    assert raw.cmd("EHLO nagle.example").startswith("250")
    took = []
    for _ in range(9):
        t0 = time.perf_counter()
        assert raw.cmd("MAIL FROM:<slow@remote.example>").startswith("250")
        assert raw.cmd("RCPT TO:<dora@example.test>").startswith("250")
        assert raw.cmd("DATA").startswith("354")
        s.sendall(BODY)
        s.sendall(b".\r\n")  # held by Nagle until BODY is ACKed
        assert raw.reply().startswith("250 2.0.0 Ok: queued as")
        took.append(time.perf_counter() - t0)
    assert raw.cmd("QUIT").startswith("221")
    raw.close()
    assert len(smtp_server.wait_inbox("dora", before + 9)) == before + 9
    # With delayed ACKs every message takes at least 40 ms (Linux's shortest delayed ACK);
    # the median leaves room for a busy test machine's occasional slow fsync.
    assert statistics.median(took) < 0.035, [round(t * 1000, 1) for t in took]


def test_fixed_replies_keep_their_wire_form(smtp_server):
    for _ in range(3):  # the second and third sessions get the replies encoded by the first
        raw = Raw(smtp_server.ports["smtp"])
        raw.sock.settimeout(10)
        greeting = raw.reply()
        assert greeting.startswith("220 mx.example.test ") and "2.0.0" not in greeting  # RFC 2034 §3
        raw.cmd("EHLO wire.example")
        assert raw.cmd("MAIL FROM:<a@remote.example>") == "250 2.1.0 Sender OK"
        assert raw.cmd("RCPT TO:<carl@example.test>") == "250 2.1.5 Recipient OK"
        assert raw.cmd("DATA") == "354 End data with <CR><LF>.<CR><LF>"
        assert raw.cmd(b"Subject: wire\r\n\r\nbody\r\n.\r\n").startswith("250 2.0.0 Ok: queued as ")
        assert raw.cmd("QUIT") == "221 2.0.0 mx.example.test closing connection"
        assert raw.closed()
