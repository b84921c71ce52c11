"""The reply path that every message takes (server.py flush, Connection.ack_quickly and
Connection.drain, the fixed replies of proto.py): what a client sees must not change with
the per-message CPU cuts of issue #22.

- A client with Nagle's algorithm on that writes a message's final "." in a send of its
  own is not held up by delayed ACKs: the server asks for quick ACKs (TCP_QUICKACK, set
  on the descriptor) after each reply batch. Without it each such message waits 40 ms.
  The test checks that cause, not the 40 ms (issue #22: no test depends on a timing):
  Linux reports a socket's ACK mode through getsockopt(TCP_QUICKACK), 0 once it has
  answered data promptly ("pingpong", ACKs delayed to ride on the next reply), 1 after
  TCP_QUICKACK was set. The server runs in this process, so the test reads the server's
  own socket for the connection after each reply.
- The fixed replies (greeting, 250 Sender OK, 354, 221) keep their exact wire form over
  many sessions, now that each is encoded once per process.
"""

from __future__ import annotations

import asyncio
import os
import socket
import stat

import pytest

from conftest import Raw

BODY = b"Subject: dot apart\r\n\r\n" + (b"x" * 78 + b"\r\n") * 60

pytestmark = pytest.mark.skipif(not hasattr(socket, "TCP_QUICKACK"), reason="Linux TCP_QUICKACK")


def _quick(sock: socket.socket) -> int:
    """1 while the kernel ACKs what arrives at once, 0 while it delays ACKs (pingpong)."""
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK)


def _server_end(client: socket.socket) -> socket.socket:
    """A duplicate of the descriptor the (in-process) server holds for this client's
    connection: the socket whose local and peer addresses are the client's, swapped."""
    want = (client.getpeername(), client.getsockname())
    for name in os.listdir("/proc/self/fd"):
        try:
            fd = int(name)
            if not stat.S_ISSOCK(os.fstat(fd).st_mode):
                continue
            dup = socket.socket(fileno=os.dup(fd))
        except OSError:  # the listing's own descriptor, or one closed meanwhile
            continue
        try:
            if dup.family == client.family and (dup.getsockname(), dup.getpeername()) == want:
                return dup
        except OSError:
            pass
        dup.close()
    raise AssertionError(f"no server socket for {want}")


def test_kernel_reports_delayed_ack_mode():
    """The check below means something on this kernel: a socket that answered data at once
    reports 0 (ACKs delayed), and 1 after TCP_QUICKACK."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname())
        server, _ = listener.accept()
        with client, server:
            for _ in range(3):
                client.sendall(b"NOOP\r\n")
                assert server.recv(100) == b"NOOP\r\n"
                server.sendall(b"250 ok\r\n")
                assert client.recv(100) == b"250 ok\r\n"
            assert _quick(server) == 0
            server.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
            assert _quick(server) == 1


def test_final_dot_in_its_own_send_is_not_held_by_delayed_acks(smtp_server):
    before = len(smtp_server.inbox("dora"))
    raw = Raw(smtp_server.ports["smtp"])
    s = raw.sock
    assert s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 0  # Nagle on, as many libraries
    raw.reply()  # the greeting: the server has accepted the connection, so it holds a descriptor for it
    server_end = _server_end(s)

    def quick_after_reply() -> int:
        # The server writes a reply batch and asks for quick ACKs in one step of its event
        # loop; once a no-op has run on that loop, the step that wrote the reply is over.
        smtp_server.call(asyncio.sleep(0))
        return _quick(server_end)

    with server_end:
        assert raw.cmd("EHLO nagle.example").startswith("250")
        assert quick_after_reply() == 1
        for _ in range(9):
            assert raw.cmd("MAIL FROM:<slow@remote.example>").startswith("250")
            assert raw.cmd("RCPT TO:<dora@example.test>").startswith("250")
            assert quick_after_reply() == 1
            assert raw.cmd("DATA").startswith("354")
            # The body and its final dot come next: they must be ACKed at once, or Nagle
            # holds the dot below until the server's delayed ACK (40 ms).
            assert quick_after_reply() == 1
            s.sendall(BODY)
            s.sendall(b".\r\n")  # held by Nagle until BODY is ACKed
            assert raw.reply().startswith("250 2.0.0 Ok: queued as")
            assert quick_after_reply() == 1
        assert raw.cmd("QUIT").startswith("221")
    raw.close()
    assert len(smtp_server.wait_inbox("dora", before + 9)) == before + 9


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
