"""A real Postroom runtime with the web UI, for the tests of the web pages and API.

Listeners ``https`` (implicit TLS) and ``http`` (plain) on ``127.0.0.1:0``, plus an IMAP
one (the throttling test compares counters with it), and ``http_any`` (plain HTTP on
every address: a client on a non-loopback address must find no web UI there).
"""

from __future__ import annotations

import sys
from pathlib import Path

from threaded_runtime import ThreadedRuntime

sys.path.append(str(Path(__file__).resolve().parents[3] / "bench"))  # shared with the benches
from postroom_peer import DOMAIN, write_config

HOSTNAME = "mail.example.test"


def web_config(d: Path, web: str = "", limits: str = "auth_failures_per_ip = 1000") -> Path:
    listeners = (
        '[listeners.https]\naddress = "127.0.0.1:0"\ntls = "implicit"\n'
        '[listeners.http]\naddress = "127.0.0.1:0"\ntls = "none"\n'
        '[listeners.http_any]\nprotocol = "http"\naddress = "0.0.0.0:0"\ntls = "none"\n'
        '[listeners.imap]\naddress = "127.0.0.1:0"\ntls = "starttls"\n'
    )
    sections = (f"[limits]\n{limits}\n[mailauth]\ncheck_listeners = []\n[imap]\nallow_plaintext_auth = true\n"
                f"[web]\n{web}\n" + listeners)
    return write_config(d, sections, hostname=HOSTNAME)


class WebHarness(ThreadedRuntime):
    def __init__(self, cfg_path: Path) -> None:
        super().__init__(cfg_path)
        self.cert = cfg_path.parent / "cert.pem"
        self.data = cfg_path.parent / "data"

    def add_user(self, address: str, password: str, admin: bool = False) -> None:
        """An account, made an admin when ``admin`` (what ``postroom user add --admin`` does)."""
        from postroom.accounts import attributes
        from postroom.auth import hash_password

        async def add() -> None:
            await self.store.create_account(address, hash_password(password))
            if admin:
                await attributes.set_admin(self.store, address, True)
        self.call(add())

    def api_token(self, address: str, name: str = "tests") -> str:
        from postroom.accounts import tokens

        async def create() -> str:
            account = await self.store.get_account(address)
            assert account is not None, address
            return (await tokens.create(self.store, account, name))[1]
        return str(self.call(create()))

    def account(self, address: str):
        return self.call(self.store.get_account(address))


__all__ = ["DOMAIN", "HOSTNAME", "WebHarness", "web_config"]
