"""The autologout timer (RFC 1939 §3) on a server configured with a short one."""

from __future__ import annotations

import socket
import time

from pop3_harness import Harness, message

POP3_SETTINGS = 'idle_timeout = "1s"\nallow_plaintext_auth = true'


def test_idle_timeout_closes_without_update(srv: Harness) -> None:
    acc = srv.new_user()
    srv.deliver(acc, message(1))
    with socket.create_connection(("127.0.0.1", srv.ports["pop3"]), timeout=10) as s:
        f = s.makefile("rb")
        f.readline()
        # Plaintext allowed by this server's config.
        s.sendall(f"USER {acc.address}\r\nPASS secret\r\nDELE 1\r\n".encode())
        for _ in range(3):
            assert f.readline().startswith(b"+OK")
        start = time.monotonic()
        assert f.readline() == b"-ERR Disconnected for inactivity\r\n"
        assert f.readline() == b""
        assert 0.5 < time.monotonic() - start < 5
    # RFC 1939 §3: a timed-out session does not enter UPDATE, so nothing was deleted.
    assert len(srv.inbox(acc)) == 1
    c = srv.pop3(stls=False)
    c.user(acc.address)
    assert c.pass_("secret").startswith(b"+OK")  # the lock was released
    c.quit()
