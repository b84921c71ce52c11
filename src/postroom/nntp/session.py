"""Per-connection state of an NNTP session; handlers read and change it.

Nothing here touches the socket: the connection's facts that matter (peer IP,
whether TLS is active) are copied in by the server glue.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..wire.sasl import Mechanism
from .proto import State
from .settings import NntpSettings

if TYPE_CHECKING:
    from ..context import ServerContext
    from ..news.service import GroupStatus, News
    from ..storage.models import Account


@dataclass(slots=True)
class Session:
    ctx: ServerContext
    settings: NntpSettings
    news: News
    peer_ip: str
    #: ``nntps[SID] 127.0.0.1``: starts every log line of this connection.
    tag: str = ""
    tls_active: bool = False
    tls_available: bool = False
    state: State = State.UNAUTHENTICATED
    account: Account | None = None
    authinfo_user: str | None = None  # AUTHINFO USER given, waiting for AUTHINFO PASS
    sasl: Mechanism | None = None  # an AUTHINFO SASL exchange waiting for the client's next line
    #: RFC 3977 §6.1.1: the currently selected group and the current article number in it.
    group: GroupStatus | None = None
    article: int | None = None
    bad_commands: int = 0
    auth_failures: int = 0
    #: RFC 4644 MODE STREAM was accepted (set by the peering handlers).
    streaming: bool = False
    #: Room for the peering handlers (N3): e.g. the configured peer this host is.
    peer: Any = None

    @property
    def user(self) -> str | None:
        """The logged-in account's address, as the News API wants it (None: anonymous)."""
        return self.account.address if self.account is not None else None

    @property
    def plaintext_allowed(self) -> bool:
        """RFC 4643 §2.2 / §4: passwords in the clear only over TLS unless configured."""
        return self.tls_active or self.settings.allow_plaintext_auth

    def tls_started(self) -> None:
        # RFC 4642 §2.2.2: nothing learnt before the handshake carries over.
        self.tls_active = True
        self.authinfo_user = None
        self.sasl = None
        self.group = None
        self.article = None
