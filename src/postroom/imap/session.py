"""Per-connection IMAP state (RFC 3501 §3) and the settings it runs with."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from ..storage.models import Account

if TYPE_CHECKING:
    from ..context import ServerContext
    from .selected import SelectedMailbox


class State(enum.Enum):
    NOT_AUTHENTICATED = "not authenticated"
    AUTHENTICATED = "authenticated"
    SELECTED = "selected"
    LOGOUT = "logout"


@dataclass(frozen=True, slots=True)
class ImapSettings:
    # RFC 3501 §6.2.3 / §11.1: no cleartext passwords before TLS unless allowed.
    allow_plaintext_auth: bool = False
    # RFC 3501 §5.4: autologout after at least 30 minutes of inactivity.
    autologout: float = 1800.0
    # Before login: short timeout and small literals, so idle or hostile peers cost little.
    preauth_timeout: float = 60.0
    preauth_literal: int = 8192
    # Literal budget of one command other than APPEND (search strings, header lists).
    max_command: int = 1024 * 1024
    # Messages per batch in FETCH/SEARCH, so memory stays flat on big mailboxes.
    batch: int = 500
    # RFC 5464 §3.2.1.1 /shared/admin: a URI to reach the administrator ("": none).
    admin_contact: str = ""


class Interaction(Protocol):
    """What the glue gives handlers that talk with the client mid-command
    (AUTHENTICATE challenges, IDLE)."""

    async def send(self, data: bytes) -> None: ...
    async def read_line(self, timeout: float | None) -> bytes: ...


@dataclass(slots=True)
class Session:
    ctx: "ServerContext"
    settings: ImapSettings
    io: Interaction
    peer_ip: str = ""
    tls_active: bool = False
    starttls_available: bool = False
    state: State = State.NOT_AUTHENTICATED
    account: Account | None = None
    selected: "SelectedMailbox | None" = None
    session_id: str = ""
    #: ``imaps[SID] 127.0.0.1``: starts every log line of this connection.
    tag: str = ""
    # The store's change notification for the selected mailbox (see :meth:`changed`).
    watch: Any = None
    watched_id: int | None = None
    # RFC 5161 ENABLE / RFC 7162 §3.1: extensions switched on for the rest of the connection.
    enabled: set[str] = field(default_factory=set)
    # The tag of the command being run (RFC 4731 §3.1: ESEARCH names it in ``(TAG "…")``).
    command_tag: bytes = b""
    # RFC 4978 COMPRESS: the connection's deflate layer is on (it stays until the end).
    compressed: bool = False
    # RFC 5465 NOTIFY SET in force (handlers/notify.Notifier), None before it and after NOTIFY NONE.
    notify: Any = None

    @property
    def store(self):  # type: ignore[no-untyped-def]
        return self.ctx.store

    @property
    def login_allowed(self) -> bool:
        return self.tls_active or self.settings.allow_plaintext_auth

    @property
    def account_id(self) -> int:
        assert self.account is not None
        return self.account.id

    def changed(self) -> bool:
        """Did the selected mailbox change since we last asked (cheap, no query)?

        A watch per selected mailbox is woken by the store after every commit that
        touched it (at once in this process, within a poll interval from others).
        """
        box = self.selected
        if box is None:
            self.close_watch()
            return False
        if self.watched_id != box.id:
            self.close_watch()
            self.watch = self.store.watch(box.id)
            self.watched_id = box.id
            return True
        return bool(self.watch.pending())

    def stop_notify(self) -> None:
        """NOTIFY NONE, LOGOUT, UNAUTHENTICATE, the connection's end: close NOTIFY's watch."""
        if self.notify is not None:
            self.notify.close()
            self.notify = None

    def close_watch(self) -> None:
        if self.watch is not None:
            self.watch.close()
            self.watch = None
            self.watched_id = None
