"""A throwaway PostgreSQL cluster on loopback, for the tests and for developers.

Debian's ``postgresql`` package provides the server binaries; nothing of the system
cluster is touched: ``initdb`` writes into a temporary directory, the server listens on
127.0.0.1 on an ephemeral port (and on a Unix socket inside that directory), and it runs
as an unprivileged user (``postgres`` when started as root, since PostgreSQL refuses to
run as root). Authentication is ``trust``: the cluster is reachable from loopback only
and lives as long as the test session.

From the shell (what ``scripts/pg-cluster.sh`` runs)::

    python tests/pgcluster.py start DIR     # prints the admin URL; the cluster keeps running
    python tests/pgcluster.py stop DIR
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

SUPERUSER = "postroom_admin"


def bin_dir() -> Path | None:
    """The newest installed PostgreSQL server's bin directory, or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"),
                   key=lambda p: int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0)
    return Path(found[-1]).parent if found else None


def available() -> bool:
    return bin_dir() is not None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgCluster:
    """One cluster in ``root``; :meth:`start` makes it (initdb) on first use."""

    def __init__(self, root: Path, port: int | None = None) -> None:
        self.root = Path(root).resolve()
        self.data = self.root / "pgdata"
        self.sock = self.root / "sock"
        self.port = port or _free_port()
        bd = bin_dir()
        if bd is None:
            raise RuntimeError("PostgreSQL server binaries not found (Debian package 'postgresql')")
        self.bin = bd
        self._user = "postgres" if os.geteuid() == 0 else None

    # -- running the server's tools as the unprivileged user ---------------------------------

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.bin / args[0]), *args[1:]]
        if self._user is not None:
            cmd = ["runuser", "-u", self._user, "--", *cmd]
        return subprocess.run(cmd, check=check, capture_output=True, text=True, timeout=120)

    def _own(self, path: Path) -> None:
        if self._user is not None:
            pw = pwd.getpwnam(self._user)
            os.chown(path, pw.pw_uid, pw.pw_gid)

    @property
    def admin_url(self) -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/postgres"

    def url(self, database: str) -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def start(self) -> PgCluster:
        self.root.mkdir(parents=True, exist_ok=True)
        self._own(self.root)
        if self._user is not None:
            # The unprivileged user must be able to reach the directory.
            p = self.root
            while p != p.parent:
                if os.stat(p).st_mode & 0o001 == 0 and p.parent != p:
                    os.chmod(p, os.stat(p).st_mode | 0o001)
                p = p.parent
        if not (self.data / "PG_VERSION").exists():
            self.data.mkdir(exist_ok=True)
            self._own(self.data)
            self._run("initdb", "-D", str(self.data), "-U", SUPERUSER, "--auth=trust", "-E", "UTF8",
                      "--locale=C.UTF-8", "--no-instructions")
        self.sock.mkdir(exist_ok=True)
        self._own(self.sock)
        opts = (f"-c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories={self.sock} "
                "-c fsync=on -c synchronous_commit=on -c max_connections=300 -c shared_buffers=128MB "
                "-c log_min_messages=warning -c logging_collector=off")
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"), "-o", opts,
                  "-w", "-t", "60", "start")
        self._wait_ready()
        return self

    def _wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r = self._run("pg_isready", "-h", "127.0.0.1", "-p", str(self.port), check=False)
            if r.returncode == 0:
                return
            time.sleep(0.1)
        raise RuntimeError(f"PostgreSQL did not become ready: {(self.root / 'server.log').read_text()[-2000:]}")

    def stop(self, mode: str = "fast") -> None:
        if (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop", check=False)

    def restart(self, mode: str = "fast") -> None:
        """Stop and start again on the same port (clients see their connections dropped)."""
        self.stop(mode)
        self.start()

    def psql(self, sql: str, database: str = "postgres") -> str:
        r = self._run("psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1",
                      "-p", str(self.port), "-U", SUPERUSER, "-d", database, "-c", sql)
        return r.stdout.strip()

    def create_database(self, name: str) -> str:
        """A new empty database (dropped first if it exists); returns its URL."""
        self.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.psql(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[1] not in ("start", "stop"):
        print("usage: pgcluster.py start|stop DIR", file=sys.stderr)
        return 2
    root = Path(argv[2])
    port_file = root / "port"
    port = int(port_file.read_text()) if port_file.exists() else None
    cluster = PgCluster(root, port)
    if argv[1] == "start":
        cluster.start()
        port_file.write_text(str(cluster.port))
        print(cluster.admin_url)
    else:
        cluster.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
