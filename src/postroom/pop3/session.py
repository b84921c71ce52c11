"""Per-connection state of a POP3 session; handlers read and change it.

Nothing here touches the socket: the connection's facts that matter (peer IP,
whether TLS is active) are copied in by the server glue.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..wire.sasl import Mechanism
from .maildrop import Maildrop
from .reader import MessageReader
from .proto import State
from .settings import Pop3Settings

if TYPE_CHECKING:
    from ..context import ServerContext
    from ..storage.models import Account


def apop_timestamp(hostname: str) -> str:
    """RFC 1939 §7: a msg-id-like string, unique for every greeting."""
    return f"<{os.getpid()}.{secrets.token_hex(8)}.{int(time.time())}@{hostname}>"


@dataclass(slots=True)
class Session:
    ctx: "ServerContext"
    settings: Pop3Settings
    peer_ip: str
    #: ``pop3s[SID] 127.0.0.1``: starts every log line of this connection.
    tag: str = ""
    tls_active: bool = False
    tls_available: bool = False
    state: State = State.AUTHORIZATION
    timestamp: str = ""
    user: str | None = None  # name given by USER, waiting for PASS
    account: "Account | None" = None
    maildrop: Maildrop | None = None
    reader: MessageReader | None = None
    sasl: Mechanism | None = None  # an AUTH exchange waiting for the client's next line
    utf8: bool = False  # RFC 6856 §2: UTF8 was issued
    bad_commands: int = 0
    auth_failures: int = 0
    # Holds the maildrop lock from login until the session ends, however it ends.
    resources: contextlib.AsyncExitStack = field(default_factory=contextlib.AsyncExitStack)

    def __post_init__(self) -> None:
        if not self.timestamp:
            self.timestamp = apop_timestamp(self.ctx.config.hostname)

    @property
    def plaintext_allowed(self) -> bool:
        """RFC 2595 §3.2 / RFC 1939 §13: passwords in the clear only over TLS unless configured."""
        return self.tls_active or self.settings.allow_plaintext_auth

    def tls_started(self) -> None:
        # RFC 2595 §4: nothing learnt before the handshake carries over.
        self.tls_active = True
        self.user = None
        self.sasl = None

    async def close(self) -> None:
        """End of the connection: release the maildrop lock. No UPDATE here:
        RFC 1939 §6 deletes only after QUIT, so a dropped connection changes nothing."""
        self.maildrop = None
        if self.reader is not None:
            self.reader.close()
            self.reader = None
        await self.resources.aclose()
