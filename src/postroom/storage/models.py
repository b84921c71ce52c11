"""What the store hands to protocol code: plain frozen records, never rows or SQL."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime

# RFC 3501 §2.3.2 system flags; anything else without a backslash is a keyword.
SYSTEM_FLAGS = ("\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft")

# RFC 6154 special-use mailboxes created with every account (name, attribute).
DEFAULT_MAILBOXES: tuple[tuple[str, str | None], ...] = (
    ("INBOX", None),
    ("Sent", "\\Sent"),
    ("Drafts", "\\Drafts"),
    ("Trash", "\\Trash"),
    ("Junk", "\\Junk"),
    ("Archive", "\\Archive"),
)

HIERARCHY_SEPARATOR = "/"


class FlagOp(enum.Enum):
    """STORE FLAGS / +FLAGS / -FLAGS (RFC 3501 §6.4.6)."""

    SET = "set"
    ADD = "add"
    REMOVE = "remove"


@dataclass(frozen=True, slots=True)
class Account:
    id: int
    address: str  # lowercased local@domain: the login name
    password_hash: str
    apop_secret: str | None = None  # APOP needs a secret the server can recompute (RFC 1939 §7)
    # Web administration (docs/web.md, "Accounts: admins, app passwords"; postroom.accounts):
    admin: bool = False  # may use /admin and the JSON API
    disabled: bool = False  # may log in nowhere; mail is still delivered
    session_epoch: int = 0  # web sessions carry it; bumping it logs every session out
    totp_secret: str | None = None  # base32 RFC 6238 secret of the web second factor


@dataclass(frozen=True, slots=True)
class Credential:
    """An app password or API token of an account: only the SHA-256 of its secret is kept
    (the secret is random, so a fast hash suffices; postroom.accounts.credentials)."""

    id: int
    account_id: int
    kind: str  # "app" (app password) or "token" (API token)
    name: str
    created: float
    last_used: float | None = None


@dataclass(frozen=True, slots=True)
class Quota:
    """An account's limits (None: unlimited) and what its messages use now (RFC 9208 §5)."""

    storage_limit: int | None  # octets (RFC 9208 STORAGE counts units of 1024 octets on the wire)
    message_limit: int | None
    storage_used: int = 0  # sum of the sizes of every message in every mailbox of the account
    messages_used: int = 0

    @property
    def limited(self) -> bool:
        return self.storage_limit is not None or self.message_limit is not None

    def allows(self, size: int, count: int = 1) -> bool:
        """Whether ``count`` more messages of ``size`` octets in all fit under the limits."""
        if self.storage_limit is not None and self.storage_used + size > self.storage_limit:
            return False
        return self.message_limit is None or self.messages_used + count <= self.message_limit

    @property
    def full(self) -> bool:
        """Nothing more fits: not one octet, or not one message."""
        return not self.allows(1)


@dataclass(frozen=True, slots=True)
class Alias:
    source: str  # "local@domain", or "@domain" for a catch-all
    targets: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Mailbox:
    id: int
    account_id: int
    name: str  # full UTF-8 name, levels separated by HIERARCHY_SEPARATOR; "INBOX" is always upper case
    uidvalidity: int
    uidnext: int
    highestmodseq: int
    special_use: str | None = None

    @property
    def object_id(self) -> str:
        """RFC 8474 §4 MAILBOXID: kept by RENAME (the row and its UIDVALIDITY stay), never given
        to another mailbox (UIDVALIDITY only grows, store-wide; see SqliteStore._w_next_uidvalidity)."""
        return f"M{self.id}-{self.uidvalidity}"


@dataclass(frozen=True, slots=True)
class MailboxStatus:
    """Counts for IMAP STATUS / SELECT and POP3 STAT."""

    mailbox: Mailbox
    messages: int
    unseen: int
    recent: int
    size: int  # sum of message sizes in octets
    first_unseen_uid: int | None = None


@dataclass(frozen=True, slots=True)
class MessageInfo:
    """One message in one mailbox: everything IMAP keeps per message except the bytes."""

    mailbox_id: int
    uid: int
    modseq: int
    flags: frozenset[str]
    internaldate: datetime  # timezone-aware, the zone kept as received
    size: int  # octets of the stored message (with CRLF line ends)
    blob: str  # opaque reference for read_message / read_structure
    # RFC 8514: when the message was saved into this mailbox (UTC); None for messages stored
    # before the store kept it (schema migration 3).
    savedate: datetime | None = None

    @property
    def seen(self) -> bool:
        return "\\Seen" in self.flags

    @property
    def deleted(self) -> bool:
        return "\\Deleted" in self.flags

    @property
    def email_id(self) -> str:
        """RFC 8474 §5.1 EMAILID: the stored-bytes id, the part of ``blob`` before its first ":".
        Every message sharing those bytes (multi-recipient delivery, COPY, MOVE) shares it, and
        a store never gives that id to other bytes (see SqliteStore's _w_drop_unused_blobs)."""
        return "E" + self.blob.partition(":")[0]


@dataclass(frozen=True, slots=True)
class DeliveryTarget:
    """Where one copy of a delivered message goes."""

    account_id: int
    mailbox: str = "INBOX"
    flags: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class NewMessage:
    """One message of an IMAP MULTIAPPEND (RFC 3502), for :meth:`Store.append_many`."""

    raw: bytes
    flags: frozenset[str] = frozenset()
    internaldate: datetime | None = None


@dataclass(frozen=True, slots=True)
class Delivered:
    account_id: int
    mailbox_id: int
    uidvalidity: int
    uid: int
    modseq: int


@dataclass(frozen=True, slots=True)
class MailboxChanges:
    """What happened in a mailbox after a MODSEQ: the input of IMAP NOOP/IDLE updates.

    ``changed`` holds new and re-flagged messages (their current state); ``expunged``
    the UIDs removed since, for EXPUNGE responses and QRESYNC's VANISHED.
    """

    mailbox: Mailbox
    changed: tuple[MessageInfo, ...] = ()
    expunged: tuple[int, ...] = ()
    # The expunge log's floor: UIDs expunged at or below this MODSEQ are no longer listed
    # (see Store.prune_expunge_log). When it exceeds the MODSEQ asked about, ``expunged``
    # is incomplete and the caller must compare UIDs instead (RFC 7162 §3.2.5.2).
    log_floor: int = 0

    def complete_since(self, modseq: int) -> bool:
        """Whether ``expunged`` lists every UID expunged after ``modseq``."""
        return self.log_floor <= modseq


@dataclass(frozen=True, slots=True)
class StoreFlagsResult:
    updated: tuple[MessageInfo, ...] = ()
    # RFC 7162 §3.1.3: UIDs whose MODSEQ exceeded UNCHANGEDSINCE, left unmodified.
    failed: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class CopyResult:
    """For COPYUID (RFC 4315): source UIDs paired with the UIDs they got in the target."""

    uidvalidity: int
    pairs: tuple[tuple[int, int], ...] = field(default_factory=tuple)
