"""Postroom as the server under test: its config file, and ``postroom serve`` as a subprocess.

The benches (bench/imap.py, bench/pop3.py) and the protocol test harnesses
(tests/server/imap/imap_harness.py, tests/server/pop3/pop3_harness.py) all run a Postroom
on loopback with a self-signed certificate and its data next to its config. This is the
one place that writes that config and, for the benches, fills the store and runs and stops
the server, so that they cannot drift apart (as bench/dovecot_peer.py is for Dovecot).

Bench scripts import it as ``postroom_peer`` (``python bench/x.py`` puts bench/ on
sys.path); tests add bench/ to sys.path first.
"""

from __future__ import annotations

import asyncio
import signal
import smtplib
import subprocess
import sys
from pathlib import Path
from typing import Mapping

from dovecot_peer import PASSWORD, free_port

DOMAIN = "example.test"


def write_config(root: Path, sections: str, *, hostname: str = "localhost", head: str = "") -> Path:
    """Write a self-signed certificate for ``hostname`` and ``root/postroom.toml``: the common
    settings, the top-level lines ``head``, then the TOML ``sections``. Returns the config's path."""
    from postroom.net.tls import write_self_signed

    write_self_signed(root / "cert.pem", root / "key.pem", hostname)
    path = root / "postroom.toml"
    path.write_text(f"""
hostname = "{hostname}"
domains = ["{DOMAIN}"]
{head}[storage]
path = "data"
[tls]
cert = "cert.pem"
key = "key.pem"
""" + sections)
    return path


def write_test_config(root: Path, protocol: str, settings: str, extra_listeners: tuple[str, ...]) -> Path:
    """The config of the protocol test harnesses: ``protocol`` with STARTTLS and its implicit-TLS
    twin (``imaps``, ``pop3s``) on free ports, each of ``extra_listeners`` this build has,
    ``settings`` as the ``[protocol]`` section, and room for many failed logins."""
    from postroom import protocols

    listeners = [f'[listeners.{protocol}]\naddress = "127.0.0.1:0"\ntls = "starttls"',
                 f'[listeners.{protocol}s]\naddress = "127.0.0.1:0"\ntls = "implicit"']
    listeners += [f'[listeners.{name}]\naddress = "127.0.0.1:0"'
                  for name in extra_listeners if name in protocols.available()]
    # Mail delivered over SMTP here is test data, not mail to check: no lookups, whatever DNS the machine has.
    sections = (f"[limits]\nauth_failures_per_ip = 1000\n[mailauth]\ncheck_listeners = []\n[{protocol}]\n{settings}\n"
                + "\n".join(listeners) + "\n")
    return write_config(root, sections, hostname="mail.example.test")


def send_over_smtp(ports: Mapping[str, int], address: str, raw: bytes) -> bool:
    """Deliver ``raw`` to ``address`` over the server's SMTP listener (``ports``: listener name
    to port), as the test harnesses do; False when this build has no SMTP listener."""
    if "smtp" not in ports:
        return False
    with smtplib.SMTP("127.0.0.1", ports["smtp"], timeout=30) as s:
        s.sendmail("sender@outside.test", [address], raw)
    return True


class BenchPostroom:
    """``postroom serve`` for a bench: one plaintext ``protocol`` listener on a free loopback
    port, ``workers`` processes, its store filled by :meth:`setup` (``batch`` deliveries at a
    time: group commit). :meth:`start` only launches it: each bench waits for its greeting."""

    name = "postroom"

    def __init__(self, root: Path, protocol: str, workers: int, *, limits: str = "", batch: int = 64) -> None:
        self.root = root
        self.protocol = protocol
        self.workers = workers
        self.limits = limits
        self.batch = batch
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def setup(self, mailboxes: dict[str, list[bytes]]) -> None:
        """Write the config and create an account ``user@DOMAIN`` holding ``msgs`` for each entry."""
        from postroom.auth import hash_password
        from postroom.storage.models import DeliveryTarget
        from postroom.storage.sqlite.store import SqliteStore

        sections = (f"[limits]\n{self.limits}\n" if self.limits else "") + f"""[{self.protocol}]
allow_plaintext_auth = true   # loopback benchmark, like Dovecot's ssl = no
[listeners.{self.protocol}]
address = "127.0.0.1:{self.port}"
"""
        write_config(self.root, sections, head=f'log_level = "warning"\nworkers = {self.workers}\n')

        async def fill() -> None:
            store = SqliteStore(self.root / "data")
            await store.open()
            try:
                await store.add_domain(DOMAIN)
                pw = hash_password(PASSWORD)
                for user, msgs in mailboxes.items():
                    acc = await store.create_account(f"{user}@{DOMAIN}", pw)
                    target = [DeliveryTarget(acc.id)]
                    for i in range(0, len(msgs), self.batch):  # concurrent: group commit
                        await asyncio.gather(*(store.deliver(m, target) for m in msgs[i:i + self.batch]))
            finally:
                await store.close()

        asyncio.run(fill())

    def login(self, user: str) -> str:
        return f"{user}@{DOMAIN}"

    def start(self) -> None:
        exe = Path(sys.executable).with_name("postroom")
        cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "postroom.cli"]
        self.proc = subprocess.Popen(cmd + ["-c", str(self.root / "postroom.toml"), "serve"],
                                     stdout=subprocess.DEVNULL, stderr=open(self.root / "serve.log", "wb"))

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
