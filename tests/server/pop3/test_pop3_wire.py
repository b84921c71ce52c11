"""Raw transcripts: pipelining, byte-stuffing, octet counts, line limits."""

from __future__ import annotations

import poplib
import socket

from pop3_harness import Harness, client_tls, message

DOTTY = (b"Subject: dots\r\n\r\n.\r\n..\r\n.leading\r\nmiddle . dot\r\n"
         b".\r\n\r\n.\r\nlast line starts with a dot:\r\n.end\r\n")


def _raw_login(srv: Harness, address: str) -> tuple[socket.socket, object]:
    s = socket.create_connection(("127.0.0.1", srv.ports["pop3s"]), timeout=30)
    t = client_tls().wrap_socket(s)
    f = t.makefile("rb")
    assert f.readline().startswith(b"+OK")
    t.sendall(f"USER {address}\r\nPASS secret\r\n".encode())
    assert f.readline().startswith(b"+OK")
    assert f.readline().startswith(b"+OK Logged in")
    return t, f


def _multiline(f) -> bytes:  # type: ignore[no-untyped-def]
    out = b""
    while (line := f.readline()) != b".\r\n":
        assert line, "connection closed mid-response"
        out += line
    return out


def _unstuff(data: bytes) -> bytes:
    return b"".join(line[1:] if line.startswith(b".") else line for line in data.splitlines(keepends=True))


def test_lines_starting_with_a_dot(srv: Harness) -> None:
    acc = srv.new_user()
    srv.deliver(acc, DOTTY)
    c = srv.login(acc)
    resp, lines, octets = c.retr(1)
    assert b"\r\n".join(lines) + b"\r\n" == DOTTY  # poplib un-stuffs
    assert resp == f"+OK {len(DOTTY)} octets".encode()
    assert c.list(1) == f"+OK 1 {len(DOTTY)}".encode()
    _, lines, _ = c.top(1, 2)
    assert lines == [b"Subject: dots", b"", b".", b".."]
    c.quit()
    t, f = _raw_login(srv, acc.address)
    t.sendall(b"RETR 1\r\n")
    status = f.readline()
    stuffed = _multiline(f)
    assert b"\r\n..leading\r\n" in stuffed and b"\r\n...\r\n" in stuffed
    # RFC 1939 §11: the octet count is that of the message before byte-stuffing.
    assert int(status.split()[1]) == len(_unstuff(stuffed)) == len(DOTTY)
    t.close()


def test_pipelined_commands(srv: Harness) -> None:
    acc = srv.new_user()
    raws = [message(i, b"x" * (100 * i) + b"\r\n") for i in range(1, 6)]
    for r in raws:
        srv.deliver(acc, r)
    s = socket.create_connection(("127.0.0.1", srv.ports["pop3s"]), timeout=30)
    t = client_tls().wrap_socket(s)
    f = t.makefile("rb")
    f.readline()
    # RFC 2449 §6.6: everything in one write, replies in order.
    batch = [f"USER {acc.address}", "PASS secret", "STAT", "LIST"] + [f"RETR {i}" for i in range(1, 6)] + \
        ["DELE 1", "DELE 5", "STAT", "UIDL 2", "NOOP", "QUIT"]
    t.sendall("".join(c + "\r\n" for c in batch).encode())
    assert f.readline().startswith(b"+OK")
    assert f.readline().startswith(b"+OK Logged in, 5 messages")
    assert f.readline() == f"+OK 5 {sum(map(len, raws))}\r\n".encode()
    assert f.readline().startswith(b"+OK")
    assert _multiline(f) == b"".join(f"{i} {len(r)}\r\n".encode() for i, r in enumerate(raws, 1))
    for r in raws:
        assert f.readline() == f"+OK {len(r)} octets\r\n".encode()
        assert _unstuff(_multiline(f)) == r
    assert f.readline().startswith(b"+OK Message 1 deleted")
    assert f.readline().startswith(b"+OK Message 5 deleted")
    assert f.readline() == f"+OK 3 {sum(map(len, raws[1:4]))}\r\n".encode()
    assert f.readline().startswith(b"+OK 2 ")
    assert f.readline() == b"+OK\r\n"
    assert f.readline().startswith(b"+OK Logging out")
    assert f.readline() == b""  # the server closed the connection
    t.close()
    assert len(srv.inbox(acc)) == 3


def test_line_too_long(srv: Harness) -> None:
    c = srv.pop3()
    c._putcmd("NOOP " + "x" * 5000)
    try:
        c._getresp()
        raise AssertionError("expected -ERR")
    except poplib.error_proto as exc:
        assert exc.args[0] == b"-ERR Line too long"
    assert c.capa()  # still in sync
    c.quit()


def test_bare_lf_and_lowercase_commands(srv: Harness) -> None:
    with socket.create_connection(("127.0.0.1", srv.ports["pop3"]), timeout=10) as s:
        f = s.makefile("rb")
        f.readline()
        s.sendall(b"capa\nquit\n")
        assert f.readline().startswith(b"+OK")
        _multiline(f)
        assert f.readline() == b"+OK Bye\r\n"


def test_unknown_commands_count(srv: Harness) -> None:
    with socket.create_connection(("127.0.0.1", srv.ports["pop3"]), timeout=10) as s:
        f = s.makefile("rb")
        f.readline()
        s.sendall(b"FOO\r\n" * 25)
        replies = [f.readline() for _ in range(21)]
        assert replies[0] == b"-ERR Unknown command\r\n"
        assert replies[19] == b"-ERR Too many invalid commands\r\n"
        assert replies[20] == b""  # closed
