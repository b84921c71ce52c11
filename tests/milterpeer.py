"""Milters for the tests, each on a loopback port of its own.

* :func:`spawn_miltertest` runs tests/miltertest.py (purepythonmilter) as a child process;
* :class:`ScriptedMilter` is a thread speaking the protocol from the milter side with
  Postroom's own codec, for what purepythonmilter cannot do as Postfix expects
  (QUARANTINE as a modification, PROGRESS, a milter that stops answering);
* :func:`silent_port` is a listening socket that never accepts: connections are made
  (the kernel's backlog) and nothing is ever answered;
* :func:`closed_port` is a port nobody listens on.
"""

from __future__ import annotations

import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

from postroom.abuse.milter import proto
from postroom.abuse.milter.proto import Rsp

HERE = Path(__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def closed_port() -> int:
    return free_port()


def wait_port(port: int, proc: subprocess.Popen[bytes] | None = None, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"milter exited with {proc.returncode}: {proc.stderr.read() if proc.stderr else ''!r}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


def spawn_miltertest() -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(HERE / "miltertest.py"), str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wait_port(port, proc)
    return proc, port


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def silent_port() -> socket.socket:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(64)
    return s


class ScriptedMilter:
    """A milter that negotiates every action and answers by the Subject it is shown:

    * ``HANG``: no answer at end of message (the MTA's content timeout);
    * ``QUARANTINE``: QUARANTINE "scripted" then CONTINUE;
    * anything else: PROGRESS, an INSHEADER at the top and a CHGHEADER deleting
      ``X-Remove-Me``, then ACCEPT.

    ``seen`` keeps (command byte, payload) of everything received, for the tests.
    """

    def __init__(self, unix_path: Path | None = None) -> None:
        """On a loopback port, or on the unix socket ``unix_path``."""
        if unix_path is None:
            self.sock = socket.socket()
            self.sock.bind(("127.0.0.1", 0))
            self.port = int(self.sock.getsockname()[1])
            self.address = f"inet:127.0.0.1:{self.port}"
        else:
            self.sock = socket.socket(socket.AF_UNIX)
            self.sock.bind(str(unix_path))
            self.port = 0
            self.address = f"unix:{unix_path}"
        self.sock.listen(16)
        self.seen: list[tuple[bytes, bytes]] = []
        self._stop = False
        threading.Thread(target=self._serve, daemon=True).start()

    def close(self) -> None:
        self._stop = True
        self.sock.close()

    def _serve(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn: socket.socket) -> None:
        dec = proto.Decoder()
        subject = ""
        with conn:
            while True:
                try:
                    data = conn.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                dec.feed(data)
                while (p := dec.next()) is not None:
                    cmd, payload = p
                    self.seen.append(p)
                    out = b""
                    if cmd == b"O":
                        out = proto.packet(Rsp.OPTNEG, struct.pack("!III", 6, 0x1FF, 0))
                    elif cmd == b"L":
                        name, value = payload.split(b"\0")[:2]
                        if name.lower() == b"subject":
                            subject = value.decode()
                        out = proto.packet(Rsp.CONTINUE)
                    elif cmd == b"E":
                        if "HANG" in subject:
                            continue
                        if "QUARANTINE" in subject:
                            out = proto.packet(Rsp.QUARANTINE, b"scripted\0") + proto.packet(Rsp.CONTINUE)
                        else:
                            out = (proto.packet(Rsp.PROGRESS)
                                   + proto.packet(Rsp.INSHEADER, b"\0\0\0\0X-Scripted\0on top\0")
                                   + proto.packet(Rsp.CHGHEADER, b"\0\0\0\x01X-Remove-Me\0\0")
                                   + proto.packet(Rsp.ACCEPT))
                    elif cmd in b"CHMRTNB":
                        out = proto.packet(Rsp.CONTINUE)
                    elif cmd == b"Q":
                        return
                    if out:
                        try:
                            conn.sendall(out)
                        except OSError:
                            return
