"""The one async interface between protocol code and storage.

SMTP, POP3, IMAP, the CLI and import/export use only this Protocol and the records
in :mod:`postroom.storage.models`; the SQLite backend (default) and a future
PostgreSQL backend implement it, and ``tests/storage`` runs one contract suite over
every backend. Methods raise the :mod:`postroom.errors` store errors
(``MailboxNotFound``, ``MailboxExists`` …) for refusals.

Durability contract: ``deliver`` and ``append`` return only after the message bytes
are fsynced and the metadata transaction is committed; a crash at any moment leaves
either the whole message or nothing visible.
"""

from __future__ import annotations

import enum
import unicodedata
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Protocol, Sequence

from ..errors import NotFound, StoreError
from .models import (
    Account,
    Alias,
    CopyResult,
    Credential,
    Delivered,
    DeliveryTarget,
    FlagOp,
    Mailbox,
    MailboxChanges,
    MailboxStatus,
    MessageInfo,
    NewMessage,
    Quota,
    StoreFlagsResult,
)

if TYPE_CHECKING:
    from ..mime import ParsedMessage

#: A write of ``size`` bytes is refused ahead (SMTP MAIL, IMAP APPEND before its literal) while
#: the store's disk has less than this many times ``size`` free: Postfix's rule (its
#: queue_minfree defaults to 1.5 times message_size_limit), which keeps room for SQLite's own
#: writes and refuses a message before the client has sent it rather than after.
ROOM_FACTOR = 1.5


def has_room(free: int | None, size: int) -> bool:
    """Whether ``free`` bytes (from :meth:`Store.free_space`; None: unknown) leave room for ``size``."""
    return free is None or free >= ROOM_FACTOR * size


class Unset(enum.Enum):
    """The type of :data:`UNSET`: "leave as it is" where None is a value (no TOTP secret)."""

    UNSET = "unset"


UNSET = Unset.UNSET


class CredentialExists(StoreError):
    """The account already has an app password or API token of that name."""


class MailboxWatch(Protocol):
    """A subscription to one mailbox's changes (IMAP IDLE, NOOP)."""

    async def wait(self, timeout: float | None = None) -> bool:
        """Return True when the mailbox changed since the last wait (or the watch began),
        also for changes made by other processes; False on timeout."""
        ...

    def pending(self) -> bool:
        """``wait(0)`` without awaiting: True (and reset) if a change was signalled since the
        last wait. What a session checks after every command."""
        ...

    def close(self) -> None: ...


class SelectView(Protocol):
    """What SELECT reads of a mailbox (:meth:`Store.select_view`): a :class:`MessageIndex`, or
    the same four things without the message records when the index is not in memory yet."""

    mailbox: Mailbox
    recent_uid: int
    uids: Sequence[int]  # every UID, ascending; do not mutate

    def status(self) -> MailboxStatus: ...


class MessageIndex(Protocol):
    """All messages of one mailbox as of one HIGHESTMODSEQ, from a per-process cache shared by
    every session (see :meth:`Store.message_index`). Immutable: later changes give a new index."""

    mailbox: Mailbox  # the mailbox row at that moment (UIDNEXT, HIGHESTMODSEQ …)
    recent_uid: int  # the first UID no session has claimed as \\Recent yet (see claim_recent)
    uids: Sequence[int]  # every UID, ascending; do not mutate

    def __len__(self) -> int: ...
    def __contains__(self, uid: object) -> bool: ...

    def get(self, uid: int) -> MessageInfo | None: ...

    def messages(self, uids: Iterable[int]) -> list[MessageInfo]:
        """Records of those of ``uids`` that exist, in the order given."""
        ...

    def with_flag(self, flag: str) -> frozenset[int]:
        """UIDs of the messages carrying ``flag`` (system flag or keyword); computed once per index."""
        ...

    def uid_set(self) -> frozenset[int]:
        """Every UID, as a set (computed once per index)."""
        ...

    def size_of(self, uid: int) -> int | None: ...

    def status(self) -> MailboxStatus:
        """The counts of :meth:`Store.mailbox_status`, at this index's moment."""
        ...


class Store(Protocol):
    # -- lifecycle ---------------------------------------------------------------
    async def open(self) -> None:
        """Create or migrate the schema, start background threads."""
        ...

    async def close(self) -> None: ...

    # -- domains -----------------------------------------------------------------
    async def add_domain(self, domain: str) -> None: ...
    async def delete_domain(self, domain: str) -> None: ...
    async def list_domains(self) -> list[str]: ...
    async def has_domain(self, domain: str) -> bool: ...

    # -- accounts ----------------------------------------------------------------
    async def create_account(self, address: str, password_hash: str) -> Account:
        """Create the account with its special-use mailboxes (INBOX, Sent, Drafts, Trash,
        Junk, Archive), all subscribed. Raises AccountExists, DomainNotFound."""
        ...

    async def get_account(self, address: str) -> Account | None: ...
    async def get_account_by_id(self, account_id: int) -> Account | None: ...
    async def list_accounts(self) -> list[Account]: ...
    async def delete_account(self, address: str) -> None:
        """Remove the account and all its mail. Raises AccountNotFound."""
        ...

    async def set_password_hash(self, address: str, password_hash: str) -> None: ...
    async def set_apop_secret(self, address: str, secret: str | None) -> None: ...

    # -- account attributes and credentials (postroom.accounts is the API over these) --
    async def set_account_attributes(self, address: str, *, admin: bool | None = None,
                                     disabled: bool | None = None, totp_secret: str | None | Unset = UNSET,
                                     bump_epoch: bool = False) -> Account:
        """Change the given attributes (None/UNSET: keep) and, with ``bump_epoch``, add one to
        the session epoch, in one transaction; return the account as now stored.
        Raises AccountNotFound."""
        ...

    async def claim_totp_step(self, account_id: int, secret: str, step: int) -> bool:
        """Count the account's TOTP code of time step ``step`` as used: True only if the
        account's secret is still ``secret`` and no code of this or a later step was
        accepted before. One compare-and-set UPDATE, so of two requests (or nodes) racing
        with one code exactly one gets True (RFC 6238 §5.2)."""
        ...

    async def enable_totp(self, account_id: int, secret: str, step: int) -> bool:
        """Turn the second factor on with ``secret``, the confirming code's ``step`` counted
        as used, and bump the session epoch (sessions opened with the password alone end);
        False (nothing changed) when the account has a secret already or is gone."""
        ...

    async def end_web_session(self, account_id: int, digest: bytes, expires: float) -> None:
        """Remember that the web session whose nonce hashes to ``digest`` logged out, until
        ``expires`` (past it the cookie is refused anyway); forgets those past their time.
        A no-op for an account that is gone."""
        ...

    async def web_session_ended(self, digest: bytes) -> bool:
        """Whether that web session logged out (one primary-key probe)."""
        ...

    async def add_credential(self, account_id: int, kind: str, name: str, digest: bytes) -> Credential:
        """Keep an app password or API token (``kind`` "app"/"token") by the SHA-256 of its
        secret. Raises CredentialExists (the account has one of that kind and name),
        AccountNotFound."""
        ...

    async def list_credentials(self, account_id: int, kind: str) -> list[Credential]:
        """The account's credentials of ``kind`` ordered by name."""
        ...

    async def delete_credential(self, account_id: int, kind: str, name: str) -> bool:
        """Revoke one; False when the account had none of that kind and name."""
        ...

    async def find_credential(self, kind: str, digest: bytes) -> Credential | None:
        """The credential whose secret hashes to ``digest`` (one unique-index probe)."""
        ...

    async def touch_credential(self, credential_id: int, when: float) -> None:
        """Record a use (``last_used``); a no-op for a credential revoked meanwhile."""
        ...

    async def get_quota(self, account_id: int, with_usage: bool = False) -> Quota | None:
        """The account's quota (None: no such account). Usage (the sum of its messages'
        sizes and their count, over all its mailboxes) is computed when the account has a
        limit or ``with_usage`` asks for it; otherwise it reads as zero."""
        ...

    async def set_quota(self, address: str, storage: int | None, messages: int | None) -> None:
        """Set both limits (None: unlimited). Raises AccountNotFound."""
        ...

    # -- aliases -----------------------------------------------------------------
    async def set_alias(self, source: str, targets: Sequence[str]) -> None:
        """Create or replace; ``source`` is ``local@domain`` or ``@domain`` (catch-all)."""
        ...

    async def get_alias(self, source: str) -> Alias | None: ...
    async def list_aliases(self) -> list[Alias]: ...
    async def delete_alias(self, source: str) -> None: ...

    # -- mailboxes ---------------------------------------------------------------
    async def list_mailboxes(self, account_id: int) -> list[Mailbox]: ...
    async def get_mailbox(self, account_id: int, name: str) -> Mailbox | None:
        """``name`` is matched exactly, except that INBOX is case-insensitive (RFC 3501 §5.1)."""
        ...

    async def get_mailbox_by_id(self, mailbox_id: int) -> Mailbox | None: ...
    async def create_mailbox(self, account_id: int, name: str, special_use: str | None = None) -> Mailbox:
        """Raises MailboxExists. Parents are not created implicitly (IMAP's CREATE does that)."""
        ...

    async def delete_mailbox(self, account_id: int, name: str) -> None:
        """Delete the mailbox and its messages (not its children). Raises MailboxNotFound."""
        ...

    async def rename_mailbox(self, account_id: int, old: str, new: str) -> None:
        """Rename with all children (``old/x`` → ``new/x``), keeping UIDVALIDITY and messages.
        Raises MailboxNotFound, MailboxExists. INBOX's special rename is the caller's job."""
        ...

    async def mailbox_status(self, mailbox_id: int) -> MailboxStatus: ...

    async def list_subscriptions(self, account_id: int) -> list[str]: ...
    async def subscribe(self, account_id: int, name: str) -> None: ...
    async def unsubscribe(self, account_id: int, name: str) -> None: ...

    # -- messages ----------------------------------------------------------------
    async def deliver(self, raw: bytes, targets: Sequence[DeliveryTarget],
                      internaldate: datetime | None = None, *, crlf: bool = False,
                      newlines: int | None = None) -> list[Delivered]:
        """Store one message for several recipients atomically and durably.

        The bytes are stored once and shared. A target whose mailbox does not exist
        falls back to that account's INBOX (mail is never dropped for a filing error).
        Concurrent callers share fsyncs (group commit).

        Stored mail has CRLF line ends; a bare LF is turned into CRLF. ``crlf=True``
        says the caller already made sure of that (SMTP normalises line ends as it
        reads DATA), which spares a second scan of the bytes on the delivery path.
        With ``crlf=True``, ``newlines`` may give ``raw.count(b"\\n")`` when the caller
        counted them already (that check counts them): the MIME parse then skips
        its own count of a single-part body's lines (about 4 us per 10 KB). It must
        be the count of these very bytes (BODYSTRUCTURE's line counts come from it).
        """
        ...

    async def append(self, account_id: int, mailbox: str, raw: bytes,
                     flags: frozenset[str] = frozenset(),
                     internaldate: datetime | None = None) -> Delivered:
        """IMAP APPEND: like deliver for one target, but MailboxNotFound if it is absent."""
        ...

    async def append_many(self, account_id: int, mailbox: str, messages: Sequence[NewMessage]) -> list[Delivered]:
        """IMAP MULTIAPPEND (RFC 3502 §3): every message or none, in one transaction, durably.
        The messages get consecutive UIDs in the order given. MailboxNotFound if it is absent."""
        ...

    async def list_messages(self, mailbox_id: int) -> list[MessageInfo]:
        """Every message, ordered by UID (the IMAP sequence order)."""
        ...

    async def get_messages(self, mailbox_id: int, uids: Sequence[int]) -> list[MessageInfo]:
        """Those of ``uids`` that exist, ordered by UID."""
        ...

    async def message_index(self, mailbox_id: int) -> MessageIndex:
        """Every message of the mailbox, current as of the call, for SELECT, SEARCH and FETCH.

        Served from an in-process cache shared by all sessions and brought up to date at
        each call with one query: O(changes since the cached index), whichever process
        made them. On PostgreSQL, another node's change is in the first call made after its
        notification arrived (milliseconds after its commit; docs/storage.md, PostgreSQL backend),
        this process's own at once. Raises MailboxNotFound.
        """
        ...

    async def mailbox_index(self, account_id: int, name: str) -> MessageIndex | None:
        """``message_index`` of the mailbox called ``name`` (matched as by ``get_mailbox``), or
        None when there is none: what SELECT needs, in one round trip to the database."""
        ...

    async def select_view(self, account_id: int, name: str) -> SelectView | None:
        """What SELECT needs of the mailbox called ``name`` (None when there is none): its
        ``mailbox_index``, or, when that index is not in memory, the UIDs and counts from
        aggregate queries while the index is built in the background (the first SELECT of a
        100,000-message mailbox after a start then takes tens of milliseconds, not hundreds)."""
        ...

    async def read_message(self, msg: MessageInfo) -> bytes: ...

    async def read_messages(self, msgs: Sequence[MessageInfo]) -> "list[bytes | None]":
        """The bytes of several messages in one go (one thread hop), in the order given;
        None for a message whose bytes are gone (expunged and purged meanwhile)."""
        ...

    async def read_structure(self, msg: MessageInfo) -> "ParsedMessage":
        """The MIME structure computed once at delivery (postroom.mime.parse)."""
        ...

    async def read_structures(self, msgs: Sequence[MessageInfo]) -> "list[ParsedMessage | None]":
        """:meth:`read_structure` of several messages with one query for those not cached,
        in the order given; None for a message that is gone."""
        ...

    async def store_flags(self, mailbox_id: int, uids: Sequence[int], op: FlagOp,
                          flags: frozenset[str], unchangedsince: int | None = None) -> StoreFlagsResult:
        """Change flags; each message whose flags really change gets a new MODSEQ.
        ``updated`` lists those changed; RFC 7162 UNCHANGEDSINCE failures go to ``failed``."""
        ...

    async def expunge(self, mailbox_id: int, uids: Sequence[int] | None = None) -> list[int]:
        """Remove messages flagged \\Deleted (only among ``uids`` when given); return their UIDs."""
        ...

    async def copy_messages(self, src_mailbox_id: int, uids: Sequence[int],
                            dst_mailbox_id: int) -> CopyResult:
        """Copy keeping flags and internal dates (bytes are shared, not duplicated); the
        copies' save date (RFC 8514, ``MessageInfo.savedate``) is now, as for every message
        delivered or appended."""
        ...

    async def move_messages(self, src_mailbox_id: int, uids: Sequence[int],
                            dst_mailbox_id: int) -> CopyResult:
        """Copy then expunge the sources, in one transaction (RFC 6851)."""
        ...

    async def claim_recent(self, mailbox_id: int) -> int:
        """Make this session the one that sees the current \\Recent messages (RFC 3501 §2.3.2):
        return the lowest UID that counts as recent for it; later callers get uidnext."""
        ...

    # -- changes -----------------------------------------------------------------
    async def changes_since(self, mailbox_id: int, modseq: int) -> MailboxChanges:
        """Messages changed and UIDs expunged after ``modseq``. The expunge log is kept for the
        life of the mailbox unless pruned; ``MailboxChanges.log_floor`` says up to where it was."""
        ...

    async def prune_expunge_log(self, mailbox_id: int, upto_modseq: int) -> int:
        """Forget the UIDs expunged at or below ``upto_modseq`` (return how many) and raise the
        log's floor to it. Readers past the floor compare UIDs instead (QRESYNC, NOOP)."""
        ...

    def watch(self, mailbox_id: int) -> MailboxWatch: ...

    def watch_account(self, account_id: int) -> MailboxWatch:
        """A watch woken by any change in the account, whichever process made it: a message
        added, changed or expunged in any of its mailboxes, a mailbox created, deleted or
        renamed, a subscription added or removed, a metadata entry set or removed (IMAP
        NOTIFY, RFC 5465). One watch however many mailboxes the account has; the watcher
        lists the mailboxes (and ``metadata_changes``) to see what changed."""
        ...

    # -- maintenance -------------------------------------------------------------
    async def free_space(self) -> int | None:
        """Bytes free for new messages where the store keeps them (None: not known here)."""
        ...

    async def backup(self, dest: Path) -> Any:
        """Write a consistent copy of the store to the directory ``dest`` while it serves;
        a later backup to the same place copies only what changed. Returns a summary."""
        ...

    async def purge(self) -> tuple[int, int]:
        """Reclaim the space of expunged messages; return (files removed, bytes freed).
        Safe to run while serving; the runtime runs it hourly, ``postroom purge`` on demand."""
        ...

    # -- locks -------------------------------------------------------------------
    def lock_maildrop(self, account_id: int) -> AbstractAsyncContextManager[None]:
        """Exclusive per-account lock across processes for POP3 (RFC 1939 §8);
        raises MaildropLocked at once when another session holds it."""
        ...

    # --- sieve scripts (RFC 5804 §1.6, §2.5-§2.11: per account, at most one active) -----
    async def list_sieve_scripts(self, account_id: int) -> "list[SieveScriptInfo]":
        """The account's scripts ordered by name."""
        ...

    async def get_sieve_script(self, account_id: int, name: str) -> str | None:
        """The script's text, or None when the account has no script of that name."""
        ...

    async def put_sieve_script(self, account_id: int, name: str, content: str, *,
                               max_scripts: int | None = None, activate: bool = False) -> None:
        """Create or replace a script, durably. A replaced script keeps its active flag;
        ``activate`` also makes it the active one in the same transaction. Raises
        InvalidSieveScriptName, SieveScriptQuota when a new script would make more than
        ``max_scripts``, AccountNotFound."""
        ...

    async def delete_sieve_script(self, account_id: int, name: str) -> None:
        """Raises SieveScriptNotFound, SieveScriptActive (RFC 5804 §2.10: not the active one)."""
        ...

    async def rename_sieve_script(self, account_id: int, old: str, new: str) -> None:
        """Keeps the active flag. Raises SieveScriptNotFound, SieveScriptExists,
        InvalidSieveScriptName."""
        ...

    async def set_active_sieve_script(self, account_id: int, name: str | None) -> None:
        """Make ``name`` the only active script; None deactivates all (RFC 5804 §2.8).
        Raises SieveScriptNotFound."""
        ...

    async def get_active_sieve_script(self, account_id: int) -> tuple[str, str] | None:
        """(name, text) of the active script or None: one indexed lookup."""
        ...

    async def get_sieve_delivery(self, account_id: int) -> SieveDelivery | None:
        """What delivery asks for every local recipient, in one indexed lookup: the account's
        address and its active script, if any. None when there is no such account."""
        ...

    # --- sieve tracking (RFC 5230 §4.2 vacation, RFC 7352 duplicate) --------------------
    async def sieve_tracked(self, account_id: int, kind: str, key: str, now: float) -> float | None:
        """When ``key`` of ``kind`` ("vacation", "duplicate") was recorded for the account, if
        its entry has not expired at ``now`` (Unix seconds); None otherwise."""
        ...

    async def sieve_track(self, account_id: int, kind: str, key: str, now: float, expires: float,
                          unless_since: float | None = None) -> bool:
        """Record ``key`` at ``now`` until ``expires``, durably; return True. With
        ``unless_since``, atomically do nothing and return False when the key was recorded
        after that moment and has not expired (two deliveries racing for one vacation
        reply: one wins). Prunes the account's expired entries in the same transaction."""
        ...

    async def prune_sieve_tracking(self, now: float) -> int:
        """Forget every entry expired at ``now``; return how many."""
        ...
    # --- end sieve tracking

    # --- metadata (RFC 5464): IMAP METADATA entries, also read by Sieve (RFC 5490) ------------
    async def get_metadata(self, account_id: int, mailbox_id: int | None, names: Sequence[str],
                           depth: int | None = 0) -> list[tuple[str, bytes]]:
        """The stored entries of the account's mailbox ``mailbox_id`` (None: the account's
        server entries) called ``names``, as (name, value) sorted by name, each once.

        ``names`` are entry names as :func:`metadata_name_problem` accepts them; they are
        compared case-insensitively and returned lower-case. ``depth`` 0 gives just those
        entries, 1 also their children one level down, None (DEPTH infinity) every entry
        below them (RFC 5464 §4.2.2). Entries the server computes (``/shared/admin``,
        ``/private/specialuse``) are not stored: imap/handlers/metadata.py adds them.
        A mailbox that is not the account's has no entries.
        """
        ...

    async def set_metadata(self, account_id: int, mailbox_id: int | None, entries: dict[str, bytes | None],
                           limits: MetadataLimits | None = None) -> int:
        """Set (bytes) or remove (None) entries of a mailbox (None: the server), all of them
        or none, durably (committed before it returns). Raises MetadataTooLarge (a value
        over ``limits.value_size``), MetadataTooMany (the mailbox's or the account's entries
        would be over their limits), MailboxNotFound (not the account's), AccountNotFound.

        Returns the account's metadata change number of this write (watchers read it in
        :meth:`metadata_changes`), or 0 when it changed nothing (values set as they were,
        entries removed that were not there): IMAP NOTIFY leaves a session's own change out.
        A write that changes something wakes the account's watches (``watch_account``)."""
        ...

    async def metadata_changes(self, account_id: int, since: int | None) -> MetadataChanges:
        """The account's metadata writes numbered after ``since`` (None: only the latest
        number), for IMAP NOTIFY (RFC 5465 §5.6, §5.7). Only the last METADATA_LOG_KEEP
        writes are kept: ``complete`` says whether all of those after ``since`` still are.
        Entries of a mailbox deleted since are not listed."""
        ...
    # --- end metadata


# --- sieve scripts: records, name rules and refusals of the Store methods above ----------

MAX_SIEVE_NAME = 255  # RFC 5804 §1.6: servers MUST allow at least 128 characters


@dataclass(frozen=True, slots=True)
class SieveScriptInfo:
    """One stored script as LISTSCRIPTS shows it."""

    name: str
    active: bool
    size: int  # octets of its UTF-8 text


@dataclass(frozen=True, slots=True)
class SieveDelivery:
    """An account as local delivery needs it (``Store.get_sieve_delivery``)."""

    address: str
    script: tuple[str, str] | None  # (name, text) of the active script


def sieve_script_name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a script (RFC 5804 §1.6), or None when it can."""
    if not name:
        return "Script name is empty"
    if len(name) > MAX_SIEVE_NAME:
        return f"Script name is longer than {MAX_SIEVE_NAME} characters"
    for ch in name:
        o = ord(ch)
        # RFC 5804 §1.6: no controls (0000-001F, 007F-009F) and no line/paragraph separators.
        if o < 0x20 or 0x7F <= o <= 0x9F or o in (0x2028, 0x2029) or 0xD800 <= o <= 0xDFFF:
            return "Script name contains a forbidden character"
    if unicodedata.normalize("NFC", name) != name:
        return "Script name is not in Unicode normalization form C (RFC 5198)"
    return None


class InvalidSieveScriptName(StoreError):
    """The name breaks RFC 5804 §1.6; ``str(exc)`` says why."""


class SieveScriptNotFound(NotFound):
    """ManageSieve ``NO (NONEXISTENT)``."""


class SieveScriptExists(StoreError):
    """ManageSieve ``NO (ALREADYEXISTS)``."""


class SieveScriptActive(StoreError):
    """Deleting the active script: ManageSieve ``NO (ACTIVE)``."""


class SieveScriptQuota(StoreError):
    """The account already has ``max_scripts`` scripts: ``NO (QUOTA/MAXSCRIPTS)``."""


# --- metadata (RFC 5464): limits, name rules and refusals of the Store methods above ------

MAX_METADATA_NAME = 1024  # octets of an entry name ("bounded length", RFC 5464 §3.2)


@dataclass(frozen=True, slots=True)
class MetadataLimits:
    """What one account may store. Removing entries is always allowed, even when over."""

    value_size: int = 64 * 1024  # octets of one value: SETMETADATA's NO [METADATA MAXSIZE n]
    entries: int = 1000  # entries on one mailbox, or on the server
    account_entries: int = 10_000  # entries of the account on all its mailboxes and the server
    account_size: int = 4 * 1024 * 1024  # octets of their names and values together


def metadata_name_problem(name: str) -> str | None:
    """Why ``name`` is not an entry name (RFC 5464 §3.2), or None when it is.

    A name is "/private" or "/shared" (any case) alone or followed by "/"-separated
    components: no "*" or "%" (they are LIST wildcards), no empty component ("//"), no
    trailing "/", US-ASCII without 0x00-0x19, at most MAX_METADATA_NAME octets. (The
    roots alone are accepted as what GETMETADATA asks for with DEPTH; an entry that holds
    a value has more components, which IMAP's SETMETADATA checks.)
    """
    if len(name) > MAX_METADATA_NAME:
        return "Entry name too long"
    if not name.isascii() or any(c < " " for c in name):
        return "Entry name must be US-ASCII without control characters"
    if "*" in name or "%" in name:
        return "Entry name must not contain * or %"
    low = name.lower()
    if not (low in ("/private", "/shared") or low.startswith(("/private/", "/shared/"))):
        return "Entry name must begin with /private or /shared"
    if "//" in name:
        return "Entry name must not contain //"
    if name.endswith("/"):
        return "Entry name must not end with /"
    return None


METADATA_LOG_KEEP = 1000  # metadata writes of an account that metadata_changes can still list


@dataclass(frozen=True, slots=True)
class MetadataChanges:
    """What :meth:`Store.metadata_changes` found: the latest change number, and the entries
    changed after the number asked about as (change number, mailbox id or None for a
    server entry, lower-case entry name), in the order they changed."""

    last: int
    complete: bool = True
    changes: tuple[tuple[int, int | None, str], ...] = ()


class MetadataTooLarge(StoreError):
    """A value is over ``limit`` octets: IMAP ``NO [METADATA MAXSIZE limit]``."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"metadata value over {limit} octets")
        self.limit = limit


class MetadataTooMany(StoreError):
    """The entries of the mailbox or of the account would be over their limit (count or
    total size): IMAP ``NO [METADATA TOOMANY]``."""
