"""Running scripts with no server and no store: ``postroom sieve test`` and the
``vnd.dovecot.testsuite`` runner (``postroom sieve testsuite``).

:class:`OfflineHost` answers the engine's questions the way Pigeonhole's ``sieve-test``
does when it is given no mail store: every mailbox exists (so ``fileinto`` is reported,
never turned into a keep, and ``mailboxexists`` is true), no mailbox has a special use
or metadata, nothing was seen before (``duplicate``), and the clock is the local one.
``include`` reads ``NAME.sieve`` beside the script being run (personal) or from a global
directory when one is given. The test-suite runner narrows "every mailbox exists" to the
mailboxes its in-memory store holds.

:func:`describe` writes an action as one line, the output of ``sieve test``; the
differential test against Pigeonhole parses these lines.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email.message import Message
from email.parser import BytesHeaderParser
from email.policy import compat32
from pathlib import Path

from .api import (
    Action,
    AddHeader,
    DeleteHeader,
    Discard,
    FileInto,
    Keep,
    Notify,
    Redirect,
    Reject,
    Vacation,
)
from .host import duplicate_key, environment_items, spam_score_of, virus_score_of

__all__ = ["OfflineHost", "describe", "headers_of", "quote"]

# RFC 6609 §2.2: an included name never leaves its directory.
_SCRIPT_NAME = re.compile(r"^[^/\\\x00-\x1f.][^/\\\x00-\x1f]{0,254}$")


def headers_of(raw: bytes) -> Message:
    """The header section only, as the scanners' score helpers read it."""
    return BytesHeaderParser(policy=compat32).parsebytes(raw)


@dataclass(slots=True)
class OfflineHost:
    """A :class:`~postroom.sieve.api.Host` for scripts run from the shell or a test file.

    ``mailboxes`` None means every mailbox exists (``sieve-test`` without ``-l``); a set
    limits them (INBOX always exists). ``special_uses`` maps a mailbox to its use
    (``"\\\\Junk"``); ``metadata_entries`` maps (mailbox or None, entry) to a value."""

    headers: Message
    script_dir: Path | None = None
    global_dir: Path | None = None
    mailboxes: set[str] | None = None
    special_uses: dict[str, str] = field(default_factory=dict)
    metadata_entries: dict[tuple[str | None, str], str] = field(default_factory=dict)
    environment_items: dict[str, str] = field(default_factory=dict)
    seen: dict[str, float] = field(default_factory=dict)  # duplicate tracking: handle+key → when
    asked: dict[str, str] = field(default_factory=dict)  # duplicate key → the handle it was tested with
    clock: datetime | None = None

    @classmethod
    def for_message(cls, raw: bytes, *, recipient: str = "", script_dir: Path | None = None,
                    **kw: object) -> OfflineHost:
        # The RFC 5183 items delivery gives, for a delivery from nowhere in particular.
        env = environment_items(domain=recipient.rpartition("@")[2] or "localhost", host="localhost",
                                remote_host="", remote_ip="")
        return cls(headers_of(raw), script_dir=script_dir, environment_items=env, **kw)  # type: ignore[arg-type]

    def mailbox_exists(self, name: str) -> bool:
        if name.upper() == "INBOX" or self.mailboxes is None:
            return True
        return name in self.mailboxes

    def special_use_exists(self, mailbox: str | None, uses: Sequence[str]) -> bool:
        wanted = {u.lower() for u in uses}
        if mailbox is None:
            return wanted <= {u.lower() for u in self.special_uses.values()}
        use = self.special_uses.get(mailbox)
        return self.mailbox_exists(mailbox) and use is not None and wanted <= {use.lower()}

    def metadata(self, mailbox: str | None, entry: str) -> str | None:
        return self.metadata_entries.get((mailbox, entry.lower()))

    def include(self, name: str, global_: bool) -> str | None:
        where = self.global_dir if global_ else self.script_dir
        if where is None or not _SCRIPT_NAME.match(name):
            return None
        try:
            return (where / f"{name}.sieve").read_text("utf-8")
        except (OSError, UnicodeDecodeError):
            return None

    def duplicate_seen(self, key: str, seconds: int, handle: str) -> bool:
        self.asked[key] = handle
        when = self.seen.get(duplicate_key(handle, key))
        return when is not None and self.now().timestamp() - when < seconds

    def track(self, key: str, now: datetime) -> None:
        """Record a ``Result.duplicate_marks`` key after the result was carried out."""
        self.seen[duplicate_key(self.asked.get(key, ""), key)] = now.timestamp()

    def environment(self, name: str) -> str | None:
        return self.environment_items.get(name.lower())

    def now(self) -> datetime:
        return self.clock or datetime.now().astimezone()

    def spam_score(self) -> str | None:
        return spam_score_of(self.headers)

    def virus_score(self) -> str | None:
        return virus_score_of(self.headers)


def quote(text: str) -> str:
    """A Sieve quoted string (RFC 5228 §2.4.2), control characters shown as escapes so
    one action stays on one line."""
    out = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + re.sub(r"[\x00-\x1f\x7f]", lambda m: f"\\x{ord(m.group()):02x}", out) + '"'


def _flags(flags: tuple[str, ...]) -> str:
    return f" :flags {quote(' '.join(flags))}" if flags else ""


def describe(action: Action) -> str:
    """One line for one action, in Sieve-like syntax (``fileinto :flags "\\\\Seen" "Junk"``)."""
    if isinstance(action, Keep):
        return ("implicit keep" if action.implicit else "keep") + _flags(action.flags)
    if isinstance(action, FileInto):
        tags = (" :copy" if action.copy else "") + (" :create" if action.create else "")
        if action.special_use:
            tags += f" :specialuse {quote(action.special_use)}"
        return f"fileinto{tags}{_flags(action.flags)} {quote(action.mailbox)}"
    if isinstance(action, Redirect):
        return f"redirect{' :copy' if action.copy else ''} {quote(action.address)}"
    if isinstance(action, Reject):
        return f"{'ereject' if action.extended else 'reject'} {quote(action.reason)}"
    if isinstance(action, Discard):
        return "discard"
    if isinstance(action, Vacation):
        line = f"vacation to {quote(action.sender)} :subject {quote(action.subject)}"
        if action.from_:
            line += f" :from {quote(action.from_)}"
        if action.fcc:
            line += f" :fcc {quote(action.fcc)}"
        return f"{line} :seconds {action.period_seconds} {quote(action.reason)}"
    if isinstance(action, Notify):
        line = f"notify :importance {quote(action.importance)}"
        if action.message is not None:
            line += f" :message {quote(action.message)}"
        return f"{line} {quote(action.method)}"
    if isinstance(action, AddHeader):
        return f"addheader{' :last' if action.last else ''} {quote(action.name)} {quote(action.value)}"
    if isinstance(action, DeleteHeader):
        return f"deleteheader {quote(action.name)}"
    return type(action).__name__.lower()
