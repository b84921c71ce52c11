"""Dovecot (Debian dovecot-imapd / dovecot-pop3d) as an IMAP and POP3 peer on loopback.

The one place that knows how to run a standalone Dovecot (/work/shared/PEERS.md): its own
dovecot.conf, a ``{PLAIN}`` passwd-file, Maildir under the ``vmail`` user (uid/gid 5000),
plaintext logins on 127.0.0.1. Used by bench/imap.py, bench/pop3.py and
tests/server/imap/test_imap_differential.py. Needs root (for the vmail user and chown)::

    if unavailable("imap") is None:
        with DovecotPeer(users=["alice"], imap_port=0) as peer:   # 0: any free port
            peer.fill("alice", [b"Subject: hi\\r\\n\\r\\nhello\\r\\n"])
            ...  # IMAP on 127.0.0.1:peer.imap_port, login alice / PASSWORD

Bench scripts import it as ``dovecot_peer`` (``python bench/x.py`` puts bench/ on sys.path);
tests add bench/ to sys.path first.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

PASSWORD = "secret"
VMAIL = 5000  # uid and gid of the vmail user that owns the mail files (PEERS.md)
_PACKAGES = {"imap": "dovecot-imapd", "pop3": "dovecot-pop3d"}


def free_port() -> int:
    """A loopback TCP port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def unavailable(*protocols: str) -> str | None:
    """None when Dovecot can serve ``protocols`` (default: imap) here, else why not."""
    for proto in protocols or ("imap",):
        if shutil.which("dovecot") is None or not Path(f"/usr/lib/dovecot/{proto}").exists():
            return f"{_PACKAGES[proto]} is not installed (scripts/install-test-deps.sh)"
    if os.geteuid() != 0:
        return "Dovecot as a peer needs root (for the vmail user)"
    return None


def ensure_vmail_user() -> None:
    if subprocess.run(["id", "vmail"], check=False, capture_output=True).returncode != 0:
        subprocess.run(["groupadd", "-g", str(VMAIL), "vmail"], check=False, capture_output=True)
        subprocess.run(["useradd", "-u", str(VMAIL), "-g", str(VMAIL), "-M", "-d", "/nonexistent",
                        "-s", "/usr/sbin/nologin", "vmail"], check=True, capture_output=True)


def _listener(name: str, port: int | None) -> str:
    if port is None:  # the package's default listener (143, 110 …) would clash: switch it off
        return f"  inet_listener {name} {{\n    port = 0\n  }}\n"
    return f"  inet_listener {name} {{\n    address = 127.0.0.1\n    port = {port}\n  }}\n"


class DovecotPeer:
    """A standalone Dovecot instance under ``root``.

    ``imap_port`` / ``pop3_port``: None leaves the protocol off, 0 picks a free port (read it back
    from the attribute). Without ``root`` the instance gets a fresh directory under /tmp (its auth
    process runs unprivileged, so the path must be world-traversable, which pytest's tmp dirs are
    not), removed again by ``stop()``. ``mail_fsync``: ``always`` so that its writes are as durable
    as Postroom's; the POP3 bench keeps Dovecot's default, ``optimized``. ``mailboxes``: name →
    special-use attribute (or None), each created and subscribed at a user's first login, as Postroom
    makes an account's mailboxes (``storage.models.DEFAULT_MAILBOXES``). ``quota``: (storage in KiB,
    messages), either None for no limit, as one quota root "User quota" for every user (Dovecot's
    ``count`` backend with virtual sizes, so usage is the sum of RFC822.SIZE, as Postroom counts it).
    ``metadata``: RFC 5464 METADATA on (``imap_metadata``, entries in a file dict in each user's home).
    """

    def __init__(self, root: Path | None = None, *, users: Iterable[str] = (), imap_port: int | None = None,
                 pop3_port: int | None = None, password: str = PASSWORD, mail_fsync: str = "always",
                 mailboxes: Mapping[str, str | None] | None = None,
                 quota: tuple[int | None, int | None] | None = None, metadata: bool = False) -> None:
        if imap_port is None and pop3_port is None:
            raise ValueError("DovecotPeer needs imap_port or pop3_port (0: any free port)")
        self.own_root = root is None
        self.root = root if root is not None else Path(tempfile.mkdtemp(prefix="postroom-dovecot-"))
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o755)
        self.users: list[str] = list(users)
        self.password = password
        self.mail_fsync = mail_fsync
        self.mailboxes = dict(mailboxes or {})
        self.quota = quota
        self.metadata = metadata  # RFC 5464 METADATA on (tests/server/imap/test_imap_metadata.py)
        self.imap_port = free_port() if imap_port == 0 else imap_port
        self.pop3_port = free_port() if pop3_port == 0 else pop3_port
        self.conf = self.root / "dovecot.conf"

    @property
    def ports(self) -> list[int]:
        return [p for p in (self.imap_port, self.pop3_port) if p is not None]

    def config(self) -> str:
        r = self.root
        protocols = " ".join(p for p, port in (("imap", self.imap_port), ("pop3", self.pop3_port)) if port)
        return f"""
instance_name = peer-dovecot-{os.getpid()}-{self.ports[0]}
base_dir = {r}/run
state_dir = {r}/state
log_path = {r}/dovecot.log
protocols = {protocols}
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_fsync = {self.mail_fsync}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {r}/users
}}
userdb {{
  driver = static
  args = uid=vmail gid=vmail home={r}/home/%u
}}
mail_location = maildir:{r}/mail/%u
first_valid_uid = {VMAIL}
last_valid_uid = {VMAIL}
namespace inbox {{
  inbox = yes
  separator = /
{self._mailbox_config()}}}
{self._quota_config()}{self._metadata_config()[0]}protocol imap {{
  mail_max_userip_connections = 200
{self._imap_plugins()}{self._metadata_config()[1]}}}
service imap-login {{
{_listener("imap", self.imap_port)}{_listener("imaps", None)}}}
service pop3-login {{
{_listener("pop3", self.pop3_port)}{_listener("pop3s", None)}}}
"""

    def _mailbox_config(self) -> str:
        out = []
        for name, use in self.mailboxes.items():
            special = f"\n    special_use = {use}" if use else ""
            out.append(f'  mailbox "{name}" {{\n    auto = subscribe{special}\n  }}\n')
        return "".join(out)

    def _quota_config(self) -> str:
        if self.quota is None:
            return ""
        storage, messages = self.quota
        rule = "*" + (f":storage={storage}k" if storage is not None else "") + (
            f":messages={messages}" if messages is not None else "")
        return ("mail_plugins = $mail_plugins quota\n"
                f"plugin {{\n  quota = count:User quota\n  quota_rule = {rule}\n  quota_vsizes = yes\n}}\n")

    def _metadata_config(self) -> tuple[str, str]:
        """(global, protocol imap) lines switching RFC 5464 METADATA on, or empty ones."""
        if not self.metadata:
            return "", ""
        return "mail_attribute_dict = file:%h/dovecot-attributes\n", "  imap_metadata = yes\n"

    def _imap_plugins(self) -> str:
        return "  mail_plugins = $mail_plugins imap_quota\n" if self.quota else ""

    def _write_users(self) -> None:
        (self.root / "users").write_text("".join(f"{u}:{{PLAIN}}{self.password}::::::\n" for u in self.users))

    def fill(self, user: str, messages: Sequence[bytes]) -> None:
        """Write ``messages`` straight into ``user``'s Maildir INBOX (before or after start);
        a user not named yet is added."""
        if user not in self.users:
            self.users.append(user)
            self._write_users()  # passwd-file: Dovecot re-reads it when it changes
        md = self.root / "mail" / user
        for sub in ("cur", "new", "tmp"):
            (md / sub).mkdir(parents=True, exist_ok=True)
        now = int(time.time())
        for i, m in enumerate(messages):
            lf = m.replace(b"\r\n", b"\n")  # Maildir files have LF line ends
            (md / "cur" / f"{now}.M{i}P1.peer,S={len(lf)},W={len(m)}:2,").write_bytes(lf)
        subprocess.run(["chown", "-R", f"{VMAIL}:{VMAIL}", str(self.root / "mail")], check=True)

    def start(self) -> DovecotPeer:
        """Write the config and start Dovecot; returns once every listener greets."""
        ensure_vmail_user()
        r = self.root
        for sub in ("run", "state", "mail", "home"):
            (r / sub).mkdir(parents=True, exist_ok=True)
        self._write_users()
        self.conf.write_text(self.config())
        subprocess.run(["chown", "-R", f"{VMAIL}:{VMAIL}", str(r / "mail"), str(r / "home")], check=True)
        subprocess.run(["dovecot", "-c", str(self.conf)], check=True)
        deadline = time.monotonic() + 30
        waiting = self.ports
        while waiting and time.monotonic() < deadline:
            if _greets(waiting[0]):
                waiting.pop(0)
            else:
                time.sleep(0.05)
        if waiting:
            log = (r / "dovecot.log").read_text(errors="replace")[-2000:] if (r / "dovecot.log").exists() else ""
            self.stop()
            raise RuntimeError(f"dovecot did not start (port {waiting[0]}): {log}")
        return self

    def master_pid(self) -> int | None:
        """The master process (its children are the login, imap/pop3 and auth processes)."""
        try:
            return int((self.root / "run" / "master.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def stop(self) -> None:
        subprocess.run(["doveadm", "-c", str(self.conf), "stop"], check=False, capture_output=True)
        if self.own_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, typ: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


class BenchDovecot(DovecotPeer):
    """The peer as the benches drive their servers: ``name``, ``port``, ``setup(mailboxes)``,
    ``login(user)``, ``start()``, ``stop()`` (one protocol served)."""

    name = "dovecot"

    @property
    def port(self) -> int:
        (port,) = self.ports
        return port

    def setup(self, mailboxes: Mapping[str, Sequence[bytes]]) -> None:
        for user, msgs in mailboxes.items():
            self.fill(user, msgs)

    def login(self, user: str) -> str:
        return user  # the passwd-file has bare user names


def _greets(port: int) -> bool:
    """True once the server on ``port`` sends its greeting (``* OK`` or ``+OK``)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            return s.recv(100)[:1] in (b"*", b"+")
    except OSError:
        return False
