"""A real Postroom runtime for the NNTP server tests (the fixture is in conftest.py).

The server runs in its own thread and event loop (``postroom.server.running``), so the
tests drive it with the suite's blocking client (``tests/nntpclient.py``) over real
sockets: ``nntp`` with STARTTLS and ``nntps`` with implicit TLS, both on free ports.
Groups are made through the server's own News service (as ``postroom group add``
would), so its caches see them at once. Each test makes its own groups and accounts.
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path
from typing import Any

from threaded_runtime import ThreadedRuntime

from postroom.auth import hash_password
from postroom.storage.models import Account

sys.path.append(str(Path(__file__).resolve().parents[2]))  # tests/: nntpclient
sys.path.append(str(Path(__file__).resolve().parents[3] / "bench"))  # the Postroom peer, shared with the benches
from nntpclient import NNTPClient
from postroom_peer import DOMAIN, write_test_config

_names = itertools.count(1)


def write_config(d: Path, nntp: str = "", extra_listeners: tuple[str, ...] = ("smtp",)) -> Path:
    return write_test_config(d, "nntp", nntp, extra_listeners)


def unique(prefix: str) -> str:
    """A name no other test of the module uses (groups, message-ids)."""
    return f"{prefix}{next(_names)}"


class Harness(ThreadedRuntime):
    def __init__(self, cfg_path: Path) -> None:
        super().__init__(cfg_path)

    @property
    def news(self) -> Any:
        """The News service of the server process (opened by nntp.server.start_services)."""
        from postroom.nntp import server as nntp_server

        assert self.server.ctx is not None
        return self.call(nntp_server.news_for(self.server.ctx))

    # -- data ------------------------------------------------------------------
    def new_user(self, password: str = "secret") -> Account:
        address = f"{unique('reader')}@{DOMAIN}"
        return self.call(self.store.create_account(address, hash_password(password)))

    def add_group(self, name: str | None = None, **settings: Any) -> str:
        """A new group (``read``/``post`` default to "anyone" so anonymous tests can use it)."""
        name = name or unique("test.group")
        settings.setdefault("read", "anyone")
        settings.setdefault("post", "anyone")
        self.call(self.news.add_group(name, **settings))
        return name

    def post_direct(self, raw: bytes, user: str | None = None) -> Any:
        """Post through the News API (fills a group without a client)."""
        return self.call(self.news.post(raw, user=user))

    # -- clients ---------------------------------------------------------------
    def client(self, tls: str = "starttls") -> NNTPClient:
        """``starttls``: the nntp listener after STARTTLS; ``implicit``: nntps; ``none``: plain."""
        if tls == "implicit":
            return NNTPClient.connect("127.0.0.1", self.ports["nntps"], tls=True)
        c = NNTPClient.connect("127.0.0.1", self.ports["nntp"])
        if tls == "starttls":
            code, text = c.starttls()
            assert code == 382, text
        return c

    def login(self, acc: Account, password: str = "secret", tls: str = "starttls") -> NNTPClient:
        c = self.client(tls)
        code, text = c.authinfo(acc.address, password)
        assert code == 281, text
        return c


def article(group: str, n: int | str = 0, *, body: bytes = b"", mid: str | None = None,
            extra: str = "", subject: str | None = None) -> bytes:
    """A complete article for ``group`` (commas allowed: a crosspost)."""
    mid = mid or f"<{unique('art')}.{n}@client.test>"
    subject = subject if subject is not None else f"article {n}"
    head = (f"From: Poster <poster@client.test>\r\nNewsgroups: {group}\r\nSubject: {subject}\r\n"
            f"Message-ID: {mid}\r\nDate: Sun, 06 Dec 2026 10:00:00 +0000\r\n{extra}")
    return head.encode() + b"\r\n" + (body or f"body of {n}\r\n".encode())
