"""A real clamd (Debian's clamav-daemon) on a Unix socket and a loopback TCP port.

Its database directory is made here and holds one signature: an MD5 hash signature
(``.hdb``: ``md5:size:name``) of the EICAR test file, which is built from its published
text. clamd hashes every MIME part it decodes, so an EICAR attachment in a streamed
message is found; no freshclam, no download. ``Clamd.kill()`` stops it for the
scanner-down tests and ``start()`` brings it back.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

# The EICAR anti-virus test file (www.eicar.org): 68 printable characters, harmless.
EICAR = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
SIGNATURE = "Postroom-Test-Eicar"
CLAMD = shutil.which("clamd") or ("/usr/sbin/clamd" if os.path.exists("/usr/sbin/clamd") else None)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class Clamd:
    def __init__(self, root: Path, stream_max: str = "100K") -> None:
        if CLAMD is None:
            pytest.skip("clamd is not installed (Debian package clamav-daemon; scripts/install-test-deps.sh)")
        self.root = root
        self.db = root / "db"
        self.db.mkdir(parents=True, exist_ok=True)
        (self.db / "postroom-test.hdb").write_text(f"{hashlib.md5(EICAR).hexdigest()}:{len(EICAR)}:{SIGNATURE}\n")
        self.unix_path = root / "clamd.sock"
        self.port = free_port()
        self.log = root / "clamd.log"
        self.conf = root / "clamd.conf"
        lines = [
            f"DatabaseDirectory {self.db}",
            f"LocalSocket {self.unix_path}",
            "LocalSocketMode 600",
            "FixStaleSocket true",
            "TCPAddr 127.0.0.1",
            f"TCPSocket {self.port}",
            "Foreground true",
            f"LogFile {self.log}",
            f"PidFile {root / 'clamd.pid'}",
            f"TemporaryDirectory {root}",
            "MaxThreads 4",
            "SelfCheck 0",
            f"StreamMaxLength {stream_max}",  # small, so that the size-limit reply is testable
        ]  # no User line: clamd runs as whoever runs the tests
        self.conf.write_text("\n".join(lines) + "\n")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def unix(self) -> str:
        return f"unix:{self.unix_path}"

    @property
    def tcp(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> Clamd:
        assert CLAMD is not None
        with open(self.root / "clamd.stderr", "ab") as err_file:  # a file, never a pipe that could fill
            self.proc = subprocess.Popen([CLAMD, "--foreground", f"--config-file={self.conf}"],
                                         stdout=subprocess.DEVNULL, stderr=err_file)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = (self.root / "clamd.stderr").read_text(errors="replace")
                log = self.log.read_text(errors="replace") if self.log.exists() else ""
                raise RuntimeError(f"clamd exited ({self.proc.returncode}): {err[-2000:]} {log[-2000:]}")
            if self.ping():
                return self
            time.sleep(0.1)
        self.kill()
        raise RuntimeError("clamd did not answer PING within 60 s")

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
                s.sendall(b"zPING\0")
                return s.recv(16).startswith(b"PONG")
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL: the scanner dies as in a crash, sockets and all."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(30)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(30)
        self.proc = None

    def cpu_seconds(self) -> float:
        """User + system CPU time of the running clamd (benchmarks: time spent scanning)."""
        assert self.proc is not None
        fields = (Path("/proc") / str(self.proc.pid) / "stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
