"""Run ``postroom serve`` as a real process on ephemeral ports, for runtime tests.

Listeners bind port 0 and the test learns the real ports from the runtime's
``listening NAME IP:PORT`` log lines, so concurrent test runs and other servers on
the machine never collide with a test's ports. The log goes to a file (a pipe that
nobody reads would block the server once full).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from postroom import protocols
from postroom.cli import main
from postroom.config import load

_LISTENING = re.compile(r"listening (\S+) (\S+):(\d+) ")


def make_server_dir(d: Path, workers: int = 1) -> Path:
    """``postroom init`` with every listener on a port of its own; returns the config path.

    One worker binds port 0 (the kernel picks). Several workers must share each port
    (SO_REUSEPORT), which port 0 would not give them: those get free ports picked now.
    """
    assert main(["init", str(d), "--domain", "example.test"]) == 0
    cfgp = d / "postroom.toml"
    text = cfgp.read_text().replace("workers = 1", f"workers = {workers}")
    # The mail these tests send is not checked (SPF, DKIM, DMARC): the outcome must not
    # depend on the machine's DNS. tests/server/mailauth checks mail, with a DNS fixture.
    text += "\n[mailauth]\ncheck_listeners = []\n"
    with contextlib.ExitStack() as held:
        # Each picked port's socket stays bound until all are picked: closed at once, the kernel
        # could hand the same port to two listeners (a CI run once got nntps = imap).
        cfgp.write_text(re.sub(r'address = "127\.0\.0\.1:\d+"',
                               lambda _: f'address = "127.0.0.1:{0 if workers == 1 else _free_port(held)}"', text))
    return cfgp


def _free_port(held: contextlib.ExitStack | None = None) -> int:
    """A port free now; with ``held``, its socket stays bound until ``held`` closes."""
    s = socket.socket()
    if held is None:
        with s:
            s.bind(("127.0.0.1", 0))
            return int(s.getsockname()[1])
    held.enter_context(s)
    s.bind(("127.0.0.1", 0))
    return int(s.getsockname()[1])


class Serving:
    def __init__(self, cfgp: Path, workers: int = 1) -> None:
        self.log_path = cfgp.parent / "serve.log"
        self.workers = workers
        # Listeners whose protocol this version has (the others are logged and skipped).
        self.expected = {lst.name for lst in load(cfgp).listeners if protocols.module_for(lst.protocol) is not None}
        self._log = open(self.log_path, "w")
        # Its own process group, so that a test can kill the supervisor and its workers at once.
        self.proc = subprocess.Popen([sys.executable, "-m", "postroom.cli", "-c", str(cfgp), "serve"],
                                     stdout=subprocess.DEVNULL, stderr=self._log, start_new_session=True)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_listening(self, timeout: float = 60) -> dict[str, int]:
        """Ports by listener name, once every worker listens on every listener."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"serve exited with {self.proc.returncode}:\n{self.log()}"
            found = _LISTENING.findall(self.log())
            # Every worker logs each of its listeners; wait for all of them, not the first few.
            if all(sum(n == name for n, _, _ in found) >= self.workers for name in self.expected):
                return {n: int(p) for n, _, p in found}
            time.sleep(0.1)
        raise AssertionError(f"serve did not start listening:\n{self.log()}")

    def kill_all(self) -> None:
        """SIGKILL to the supervisor and every worker at the same moment, as a power cut."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.kill()
        code = self.proc.wait()
        try:  # workers a test left behind (their supervisor gone)
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self._log.close()
        return code
