"""Shared helpers for the Sieve engine tests: a Host with fixed answers, a message
builder and one-call compile+evaluate."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from postroom.sieve import Envelope, Limits, compile_script, evaluate
from postroom.sieve.api import Result

NOW = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)


@dataclass
class FakeHost:
    env: dict[str, str] = field(default_factory=dict)
    mailboxes: set[str] = field(default_factory=lambda: {"INBOX"})
    clock: datetime = NOW

    def mailbox_exists(self, name: str) -> bool:
        return name in self.mailboxes

    def special_use_exists(self, mailbox: str | None, uses: Sequence[str]) -> bool:
        return False

    def metadata(self, mailbox: str | None, entry: str) -> str | None:
        return None

    def include(self, name: str, global_: bool) -> str | None:
        return None

    def duplicate_seen(self, key: str, seconds: int, handle: str) -> bool:
        return False

    def environment(self, name: str) -> str | None:
        return self.env.get(name)

    def now(self) -> datetime:
        return self.clock

    def spam_score(self) -> str | None:
        return None

    def virus_score(self) -> str | None:
        return None


def message(*headers: str, body: str = "Hello.\r\n") -> bytes:
    """A message from header lines (``"Subject: x"``) and a body, CRLF line ends."""
    return ("\r\n".join(headers) + "\r\n\r\n" + body).encode("utf-8")


DEFAULT_MSG = message(
    "From: Alice Example <alice@example.com>",
    "To: bob@example.org, Carol <carol+lists@example.net>",
    "Cc: dave@EXAMPLE.org",
    "Subject: Meeting tomorrow",
    "Date: Fri, 13 Mar 2009 19:35:00 -0700",
    "Message-ID: <m1@example.com>",
    "X-Spam-Level: ****",
)
ENVELOPE = Envelope(sender="alice@example.com", recipient="bob@example.org")


def run(script: str, msg: bytes = DEFAULT_MSG, envelope: Envelope = ENVELOPE, host: FakeHost | None = None,
        limits: Limits | None = None) -> Result:
    limits = limits or Limits()
    return evaluate(compile_script(script, limits=limits), msg, envelope, host or FakeHost(), limits=limits)


def actions(script: str, msg: bytes = DEFAULT_MSG, **kw: object) -> list[object]:
    return run(script, msg, **kw).actions  # type: ignore[arg-type]


def truth(test: str, require: str = "", msg: bytes = DEFAULT_MSG, **kw: object) -> bool:
    """Whether ``test`` is true for ``msg``: runs ``if <test> { discard; }``."""
    from postroom.sieve.api import Discard

    script = (f"require {require};\n" if require else "") + f"if {test} {{ discard; }}"
    return any(isinstance(a, Discard) for a in run(script, msg, **kw).actions)  # type: ignore[arg-type]
