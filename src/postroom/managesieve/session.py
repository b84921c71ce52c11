"""Per-connection state of a ManageSieve session; handlers read and change it.

Nothing here touches the socket: the connection's facts that matter (peer IP, whether
TLS is active or may be started) are copied in by the server glue.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..sieve.settings import SieveSettings
from ..wire.sasl import Mechanism
from .proto import State
from .settings import ManageSieveSettings

if TYPE_CHECKING:
    from ..context import ServerContext
    from ..storage.models import Account


@dataclass(slots=True)
class Session:
    ctx: ServerContext
    settings: ManageSieveSettings
    sieve: SieveSettings
    peer_ip: str
    #: ``managesieve[SID] 127.0.0.1``: starts every log line of this connection.
    tag: str = ""
    tls_active: bool = False
    tls_available: bool = False
    state: State = State.NONAUTH
    account: Account | None = None
    sasl: Mechanism | None = None  # an AUTHENTICATE exchange waiting for the client's next string
    bad_commands: int = 0
    auth_failures: int = 0

    @property
    def plaintext_allowed(self) -> bool:
        """RFC 5804 §2.1 / §5: PLAIN and LOGIN send the password as is: only over TLS."""
        return self.tls_active or self.settings.allow_plaintext_auth

    def tls_started(self) -> None:
        # RFC 5804 §2.2: nothing learnt before the handshake carries over.
        self.tls_active = True
        self.sasl = None

    def logout(self) -> None:
        """UNAUTHENTICATE (RFC 5804 §2.14.1): back to the non-authenticated state."""
        self.state = State.NONAUTH
        self.account = None
        self.sasl = None
