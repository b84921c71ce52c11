"""A real rspamd (Debian's ``rspamd`` 3.4) for tests and benches, offline and deterministic.

Use from anywhere (tests, bench/smtp.py)::

    from rspamdpeer import Rspamd, start_rspamd, GTUBE, SPAM_MARKER
    r = start_rspamd(root: Path) -> Rspamd   # started; raises RspamdMissing when not installed
    r = start_or_skip(root)                  # the same in a pytest fixture: skips without rspamd
    r.url            # "http://127.0.0.1:PORT"  the normal worker ([rspamd] url)
    r.controller_url # "http://127.0.0.1:PORT"  the controller ([rspamd] controller_url)
    r.password       # the controller's password ([rspamd] password)
    r.learns()       # learns so far (sum of the statfiles' revisions from /stat)
    r.kill(); r.start(); r.stop()
    with hung_http() as url: ...  # "http://127.0.0.1:PORT" that accepts and never answers

It runs as a child process with its own configuration in ``root`` and none of Debian's
(``/etc/rspamd`` is never read, so no module that asks DNS, RBLs, fuzzy storage or the
network is loaded), a normal worker and a controller on ephemeral loopback ports. The only
rules are the few in ``rules.lua`` here, so scores are exact:

- a subject containing :data:`SPAM_MARKER` scores 8 → "add header" (threshold 6);
- :data:`REWRITE_MARKER` scores 11 → "rewrite subject" (threshold 10, "***SPAM*** %s");
- :data:`HAM_MARKER` scores -2 → "no action";
- :data:`SOFT_MARKER` → "soft reject" (a prefilter's pre-result);
- GTUBE in the body → "reject" (rspamd's built-in test pattern, threshold 15).

Bayes learning uses the sqlite3 statistics backend in ``root`` (no Redis needed), so
``/learnspam`` and ``/learnham`` work and are counted by :meth:`Rspamd.learns`.
Startup takes 5–20 s (rspamd compiles its URL suffix list): start once per module.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

RSPAMD = shutil.which("rspamd") or ("/usr/bin/rspamd" if os.path.exists("/usr/bin/rspamd") else None)
GTUBE = b"XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
SPAM_MARKER = "[spam-test]"
REWRITE_MARKER = "[rewrite-test]"
HAM_MARKER = "[ham-test]"
SOFT_MARKER = "[softreject-test]"
PASSWORD = "postroom-test"

_RULES = """
local function subject_has(marker)
  return function(task)
    local s = task:get_subject()
    return s ~= nil and s:find(marker, 1, true) ~= nil
  end
end
rspamd_config.POSTROOM_TEST_SPAM = { callback = subject_has('%(spam)s'), score = 8.0,
  description = 'postroom test spam marker' }
rspamd_config.POSTROOM_TEST_REWRITE = { callback = subject_has('%(rewrite)s'), score = 11.0,
  description = 'postroom test rewrite marker' }
rspamd_config.POSTROOM_TEST_HAM = { callback = subject_has('%(ham)s'), score = -2.0,
  description = 'postroom test ham marker' }
rspamd_config:register_symbol({ name = 'POSTROOM_TEST_SOFT', type = 'prefilter', priority = 10,
  callback = function(task)
    local s = task:get_subject()
    if s and s:find('%(soft)s', 1, true) then task:set_pre_result('soft reject', 'test soft reject') end
  end })
"""


class RspamdMissing(RuntimeError):
    """rspamd is not installed (Debian package rspamd; scripts/install-test-deps.sh)."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class Rspamd:
    def __init__(self, root: Path) -> None:
        if RSPAMD is None:
            raise RspamdMissing("rspamd is not installed (Debian package rspamd; scripts/install-test-deps.sh)")
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.controller_port = free_port()
        self.password = PASSWORD
        self.log = root / "rspamd.log"
        (root / "rules.lua").write_text(_RULES % {"spam": SPAM_MARKER, "rewrite": REWRITE_MARKER,
                                                   "ham": HAM_MARKER, "soft": SOFT_MARKER})
        self.conf = root / "rspamd.conf"
        self.conf.write_text(f"""
options {{
  pidfile = "{root}/rspamd.pid";
  # Nothing may leave the machine: DNS goes to a closed loopback port.
  dns {{ nameserver = ["127.0.0.1:9"]; timeout = 0.2s; retransmits = 0; }}
  filters = "";
  enable_test_patterns = true;
  gtube_patterns = "all";
  local_addrs = [];
  hs_cache_dir = "{root}/hs";
  stats_file = "{root}/stats.ucl";
  lua_path = "/usr/share/rspamd/lualib/?.lua";
}}
logging {{ type = "file"; filename = "{self.log}"; level = "info"; }}
lua = "{root}/rules.lua";
worker "normal" {{ bind_socket = "127.0.0.1:{self.port}"; count = 1; task_timeout = 8s; }}
worker "controller" {{
  bind_socket = "127.0.0.1:{self.controller_port}"; count = 1;
  password = "{PASSWORD}"; enable_password = "{PASSWORD}";
  static_dir = "/usr/share/rspamd/www";
}}
actions {{ reject = 15; "rewrite subject" = 10; "add header" = 6; greylist = null; subject = "***SPAM*** %s"; }}
classifier "bayes" {{
  tokenizer {{ name = "osb"; }}
  backend = "sqlite3";
  min_tokens = 11;
  min_learns = 1;
  # The learn cache ("already learned") would default to /var/lib/rspamd, shared by every run.
  cache {{ type = "sqlite3"; path = "{root}/learn_cache.sqlite"; }}
  statfile {{ symbol = "BAYES_HAM"; spam = false; path = "{root}/bayes.ham.sqlite"; }}
  statfile {{ symbol = "BAYES_SPAM"; spam = true; path = "{root}/bayes.spam.sqlite"; }}
}}
""")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def controller_url(self) -> str:
        return f"http://127.0.0.1:{self.controller_port}"

    def start(self, timeout: float = 120.0) -> Rspamd:
        """Start and wait until both workers answer /ping."""
        assert RSPAMD is not None
        var = [f"--var=DBDIR={self.root}", f"--var=RUNDIR={self.root}", f"--var=LOGDIR={self.root}"]
        # -i: tests may run as root; rspamd refuses that without it (no user switch here).
        self.proc = subprocess.Popen([RSPAMD, "-f", "-i", "-c", str(self.conf), *var],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
                raise RuntimeError(f"rspamd exited with {self.proc.returncode}: {err[-2000:]}\n{log}")
            if self._pings(self.url) and self._pings(self.controller_url):
                return self
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"rspamd did not answer within {timeout:g}s")

    @staticmethod
    def _pings(url: str) -> bool:
        try:
            with urllib.request.urlopen(url + "/ping", timeout=2) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    def kill(self) -> None:
        """Stop at once (SIGKILL to the whole process group: main process and workers)."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.proc = None

    def stat(self) -> dict[str, object]:
        req = urllib.request.Request(self.controller_url + "/stat", headers={"Password": self.password})
        with urllib.request.urlopen(req, timeout=10) as resp:
            data = json.loads(resp.read())
        assert isinstance(data, dict)
        return data

    def learns(self) -> dict[str, int]:
        """Learns per statfile symbol ("BAYES_SPAM", "BAYES_HAM"), from /stat's revisions."""
        out: dict[str, int] = {}
        for sf in self.stat().get("statfiles", []):  # type: ignore[attr-defined]
            out[str(sf["symbol"])] = out.get(str(sf["symbol"]), 0) + int(sf.get("revision", 0))
        return out


def start_rspamd(root: Path) -> Rspamd:
    """A started rspamd under ``root``; :class:`RspamdMissing` when it is not installed."""
    return Rspamd(root).start()


def start_or_skip(root: Path) -> Rspamd:
    """For a pytest fixture: :func:`start_rspamd`, or the test skipped with the reason."""
    import pytest

    try:
        return start_rspamd(root)
    except RspamdMissing as exc:
        pytest.skip(str(exc))


@contextmanager
def hung_http() -> Iterator[str]:
    """An HTTP URL whose port accepts connections and never answers (a wedged rspamd)."""
    lsn = socket.socket()
    lsn.bind(("127.0.0.1", 0))
    lsn.listen(8)
    lsn.settimeout(0.2)
    held: list[socket.socket] = []
    done = threading.Event()

    def accept() -> None:
        while not done.is_set():
            try:
                held.append(lsn.accept()[0])
            except OSError:
                continue
    t = threading.Thread(target=accept, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{lsn.getsockname()[1]}"
    finally:
        done.set()
        t.join(5)
        for c in held:
            c.close()
        lsn.close()
