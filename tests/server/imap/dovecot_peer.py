"""Dovecot (Debian dovecot-imapd) as an IMAP peer on loopback, per /work/shared/PEERS.md.

Used by the differential tests and by bench/imap.py. Needs root (the vmail user).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

PASSWORD = "secret"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def unavailable() -> str | None:
    """None when Dovecot can run here, else why not."""
    if shutil.which("dovecot") is None or not Path("/usr/lib/dovecot/imap").exists():
        return "dovecot-imapd is not installed (scripts/install-test-deps.sh)"
    if os.geteuid() != 0:
        return "Dovecot as a peer needs root (for the vmail user)"
    return None


class DovecotImap:
    def __init__(self, users: list[str], root: Path | None = None) -> None:
        # Dovecot's auth process runs unprivileged: its directory must be world-traversable
        # (pytest's tmp dirs are 0700), so it gets its own under /tmp.
        self.own_root = root is None
        self.root = root or Path(tempfile.mkdtemp(prefix="postroom-dovecot-"))
        self.root.chmod(0o755)
        self.users = users
        self.port = free_port()
        self.conf = self.root / "dovecot.conf"

    def start(self) -> "DovecotImap":
        if subprocess.run(["id", "vmail"], capture_output=True).returncode != 0:
            subprocess.run(["groupadd", "-g", "5000", "vmail"], capture_output=True)
            subprocess.run(["useradd", "-u", "5000", "-g", "5000", "-M", "-d", "/nonexistent",
                            "-s", "/usr/sbin/nologin", "vmail"], check=True, capture_output=True)
        r = self.root
        for sub in ("run", "state", "mail", "home"):
            (r / sub).mkdir(parents=True, exist_ok=True)
        (r / "users").write_text("".join(f"{u}:{{PLAIN}}{PASSWORD}::::::\n" for u in self.users))
        self.conf.write_text(f"""
instance_name = peer-dovecot-imap-{os.getpid()}-{self.port}
base_dir = {r}/run
state_dir = {r}/state
log_path = {r}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_fsync = always
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {r}/users
}}
userdb {{
  driver = static
  args = uid=vmail gid=vmail home={r}/home/%u
}}
mail_location = maildir:{r}/mail/%u
first_valid_uid = 5000
last_valid_uid = 5000
namespace inbox {{
  inbox = yes
  separator = /
}}
protocol imap {{
  mail_max_userip_connections = 200
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {self.port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
""")
        subprocess.run(["chown", "-R", "5000:5000", str(r / "mail"), str(r / "home")], check=True)
        subprocess.run(["dovecot", "-c", str(self.conf)], check=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("dovecot did not start: " + (r / "dovecot.log").read_text(errors="replace")[-2000:])

    def fill(self, user: str, messages: list[bytes]) -> None:
        """Write messages straight into the user's Maildir INBOX (before or after start)."""
        md = self.root / "mail" / user
        for sub in ("cur", "new", "tmp"):
            (md / sub).mkdir(parents=True, exist_ok=True)
        now = int(time.time())
        for i, m in enumerate(messages):
            lf = m.replace(b"\r\n", b"\n")  # Maildir files have LF line ends
            (md / "cur" / f"{now}.M{i}P1.peer,S={len(lf)},W={len(m)}:2,").write_bytes(lf)
        subprocess.run(["chown", "-R", "5000:5000", str(self.root / "mail")], check=True)

    def stop(self) -> None:
        subprocess.run(["doveadm", "-c", str(self.conf), "stop"], capture_output=True)
        if self.own_root:
            shutil.rmtree(self.root, ignore_errors=True)
