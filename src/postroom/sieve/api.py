"""The Sieve engine's contract with the rest of Postroom.

The engine is pure: :func:`postroom.sieve.compile_script` turns script text into a
:class:`Script` (or raises :class:`SieveSyntaxError` naming line and column), and
:func:`postroom.sieve.evaluate` runs a compiled script over one message and its envelope
and returns a :class:`Result` (a list of actions). It never touches the store, the
network or the clock except through :class:`Host`, which the delivery stage, the CLI's
``sieve test`` and the test-suite runner each implement. Carrying actions out (filing,
redirecting, answering) belongs to the delivery stage (``postroom.sieve.delivery``).

This module holds only the shared types so that the engine, ManageSieve, the CLI and
delivery can be written against one interface.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, Sequence

__all__ = [
    "SieveError", "SieveSyntaxError", "SieveRuntimeError", "SieveLimitError",
    "Envelope", "Limits", "Host", "Action", "Keep", "FileInto", "Redirect", "Reject",
    "Discard", "Vacation", "Notify", "AddHeader", "DeleteHeader", "Result",
]


class SieveError(Exception):
    """Any problem with a script. ``line`` and ``column`` are 1-based (0 when unknown)."""

    def __init__(self, message: str, line: int = 0, column: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.column = column

    def __str__(self) -> str:
        if self.line:
            return f"line {self.line}, column {self.column}: {self.message}"
        return self.message


class SieveSyntaxError(SieveError):
    """Found at compile time: syntax, unknown command or test, missing ``require``, bad
    arguments. ManageSieve answers PUTSCRIPT/CHECKSCRIPT with ``NO`` and this text."""


class SieveRuntimeError(SieveError):
    """Raised while running (a failed ``include``, a ``:create``-less fileinto into a missing
    mailbox found by the host…). Delivery falls back to implicit keep."""


class SieveLimitError(SieveRuntimeError):
    """A CPU, action, redirect, variable-size or nesting limit was reached."""


@dataclass(frozen=True, slots=True)
class Envelope:
    """The SMTP envelope as the script sees it (RFC 5228 §5.4, RFC 5233)."""

    sender: str  # "" for the null reverse-path
    recipient: str  # the address this copy is delivered for (after alias expansion: the account's)
    original_recipient: str = ""  # the RCPT TO the client gave (``envelope "orig_to"``-style uses)
    auth: str = ""  # the authenticated submitter, if any


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds that keep a hostile or buggy script from hurting delivery."""

    max_script_size: int = 1 << 20  # octets
    max_nesting: int = 64  # block/test nesting depth
    max_actions: int = 32
    max_redirects: int = 4
    max_variable_size: int = 4000  # octets per variable value (RFC 5229 §6 minimum: 1000)
    max_variables: int = 255
    max_include_depth: int = 10
    max_cpu_seconds: float = 1.0  # wall time budget for one evaluation
    max_steps: int = 100_000  # commands + tests executed


class Host(Protocol):
    """What the engine may ask of the world while it runs. Every method may be called
    only for extensions the script required."""

    def mailbox_exists(self, name: str) -> bool: ...  # RFC 5490 mailboxexists, fileinto checks

    def special_use_exists(self, mailbox: str | None, uses: Sequence[str]) -> bool: ...  # RFC 8579

    def metadata(self, mailbox: str | None, entry: str) -> str | None: ...  # RFC 5490 (mailbox None: server)

    def include(self, name: str, global_: bool) -> str | None: ...  # RFC 6609: script text or None

    def duplicate_seen(self, key: str, seconds: int, handle: str) -> bool:  # RFC 7352
        """True if ``key`` was tracked within ``seconds``; tracking the key is done by the
        delivery stage after the script succeeded (``Result.duplicate_marks``)."""
        ...

    def environment(self, name: str) -> str | None: ...  # RFC 5183 items

    def now(self) -> datetime: ...  # ``currentdate``, vacation periods

    def spam_score(self) -> str | None: ...  # RFC 5235: the header value the scanners set

    def virus_score(self) -> str | None: ...


# ----------------------------------------------------------------------- actions


@dataclass(frozen=True, slots=True)
class Action:
    """One thing to do with the message. ``flags`` are IMAP flags (imap4flags)."""


@dataclass(frozen=True, slots=True)
class Keep(Action):
    flags: tuple[str, ...] = ()
    implicit: bool = False  # True for RFC 5228 §2.10.2 implicit keep


@dataclass(frozen=True, slots=True)
class FileInto(Action):
    mailbox: str
    flags: tuple[str, ...] = ()
    create: bool = False  # RFC 5490 :create
    copy: bool = False  # RFC 3894 :copy (does not cancel implicit keep)
    special_use: str | None = None  # RFC 8579 :specialuse


@dataclass(frozen=True, slots=True)
class Redirect(Action):
    address: str
    copy: bool = False


@dataclass(frozen=True, slots=True)
class Reject(Action):
    reason: str
    extended: bool = False  # ereject: answer at SMTP time when possible (RFC 5429 §2.1)


@dataclass(frozen=True, slots=True)
class Discard(Action):
    pass


@dataclass(frozen=True, slots=True)
class Vacation(Action):
    """A reply to send (RFC 5230). The engine has already decided it *may* answer (not a
    list, not bulk, not an auto-reply, sender not ourselves); the delivery stage applies the
    once-per-``period_seconds`` tracking keyed by (recipient, sender, handle)."""

    sender: str  # who gets the reply
    subject: str
    reason: str  # body text, or a whole MIME entity when ``mime``
    from_: str | None = None
    handle: str = ""
    period_seconds: int = 7 * 86400
    mime: bool = False
    addresses: tuple[str, ...] = ()
    fcc: str | None = None  # RFC 8580
    in_reply_to: str | None = None
    # RFC 8580 §4: the :fcc copy's :flags, :create and :specialuse.
    fcc_flags: tuple[str, ...] = ()
    fcc_create: bool = False
    fcc_special_use: str | None = None


@dataclass(frozen=True, slots=True)
class Notify(Action):
    """RFC 5435 enotify (mailto only, RFC 5436)."""

    method: str
    from_: str | None = None
    importance: str = "2"
    options: tuple[str, ...] = ()
    message: str | None = None
    fcc: str | None = None
    fcc_flags: tuple[str, ...] = ()  # RFC 8580 §4, as on Vacation
    fcc_create: bool = False
    fcc_special_use: str | None = None


@dataclass(frozen=True, slots=True)
class AddHeader(Action):
    """RFC 5293 editheader; kept in the result so the delivery stage stores the edited
    message. ``Result.edited`` is the message after all edits."""

    name: str
    value: str
    last: bool = False


@dataclass(frozen=True, slots=True)
class DeleteHeader(Action):
    name: str
    index: int | None = None
    last: bool = False
    value_patterns: tuple[str, ...] = ()


@dataclass(slots=True)
class Result:
    """What a script decided. ``actions`` are in execution order; an implicit keep, when
    the script did not cancel it, is the last action (``Keep(implicit=True)``)."""

    actions: list[Action] = field(default_factory=list)
    edited: bytes | None = None  # the message after editheader, if it changed
    duplicate_marks: list[tuple[str, int]] = field(default_factory=list)  # (key, seconds) to track
    log: list[str] = field(default_factory=list)  # what the script asked to log / warnings
    # The script ran ``stop`` (RFC 5228 §3.3): delivery then skips the scripts after it in
    # the before / personal / after sequence (docs/sieve.md "# Delivery").
    stopped: bool = False
