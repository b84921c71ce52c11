"""The :class:`~postroom.sieve.api.Host` that delivery gives the engine.

The engine is synchronous and runs on a worker thread (``postroom.sieve.delivery``), so a
slow script never stalls the event loop; the store is asynchronous and lives on the loop.
What the engine asks is answered in two ways:

- from facts gathered before the run (the account's mailboxes and their special uses, the
  environment items, the spam and virus headers): no round trip at all;
- by handing a coroutine to the loop and waiting for it (included scripts, duplicate
  tracking, metadata): only for scripts that use those extensions.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email.message import Message
from email.parser import BytesHeaderParser
from email.policy import compat32
from pathlib import Path
from typing import Any, TypeVar

from .. import __version__
from ..storage.models import Mailbox
from .api import SieveRuntimeError

T = TypeVar("T")

#: How long one store question from a running script may take before the run fails
#: (and the message is kept in INBOX).
BRIDGE_TIMEOUT = 10.0

# RFC 6609 §2.2: script names are plain names; anything that could leave the global
# directory or name a hidden file is refused.
_GLOBAL_NAME = re.compile(r"^[^/\\\x00-\x1f.][^/\\\x00-\x1f]{0,254}$")

# RFC 5235 §3.1: the score "as the spam scanner set it". SpamAssassin writes ``X-Spam-Score: 5.3``
# or ``X-Spam-Status: Yes, score=5.3 required=5.0``, rspamd ``X-Spamd-Result: default: True
# [7.10 / 15.00]``.
_SA_SCORE = re.compile(r"score=(-?\d+(?:\.\d+)?)", re.IGNORECASE)
_RSPAMD_SCORE = re.compile(r"\[\s*(-?\d+(?:\.\d+)?)\s*/")


def spam_score_of(headers: Message) -> str | None:
    """The spam score the first scanner header present gives, as a decimal string."""
    value = headers.get("X-Spam-Score")
    if value is not None and str(value).strip():
        return str(value).strip()
    status = headers.get("X-Spam-Status")
    if status is not None:
        m = _SA_SCORE.search(str(status))
        if m:
            return m.group(1)
    result = headers.get("X-Spamd-Result")
    if result is not None:
        m = _RSPAMD_SCORE.search(str(result))
        if m:
            return m.group(1)
    return None


def virus_score_of(headers: Message) -> str | None:
    """``X-Virus-Score`` as set, else ``X-Virus-Status`` (ClamAV milters: "Clean"/"Infected")."""
    for name in ("X-Virus-Score", "X-Virus-Status"):
        value = headers.get(name)
        if value is not None and str(value).strip():
            return str(value).strip()
    return None


class NeedsWorker(SieveRuntimeError):
    """A store question asked on the event loop thread, where waiting for the answer
    would deadlock. Delivery, which tries cheap scripts on the loop first, then runs the
    script again on a worker thread (the run had no side effects)."""


@dataclass(slots=True)
class DeliveryHost:
    """One account's view of the world for one run of its scripts."""

    loop: asyncio.AbstractEventLoop
    store: Any
    account_id: int
    #: None: fetched from the store on the first mailbox question (only a script with
    #: ``mailboxexists``, ``metadata`` or ``specialuse_exists`` asks; delivery fetches the
    #: list before the run for those, so most runs never read it).
    mailboxes: Sequence[Mailbox] | None
    environment_items: dict[str, str]
    #: The header fields the scanners' scores are read from; None: parsed from ``raw`` on
    #: the first ``spamtest``/``virustest`` (most scripts never ask, and parsing costs).
    headers: Message | None = None
    global_dir: Path | None = None
    clock: datetime | None = None  # fixed "now" for the whole run (tests may set it)
    _loop_thread: int | None = field(default=None)
    # key → handle of each ``duplicate`` test asked, so the marks the result carries (key and
    # seconds only) are recorded under the handle they were tested with.
    asked: dict[str, str] = field(default_factory=dict)
    raw: bytes = b""  # the message, for ``headers`` when not given

    def _wait(self, coro: Coroutine[Any, Any, T]) -> T:
        if threading.get_ident() == self._loop_thread:
            coro.close()
            # Waiting here would deadlock the loop: delivery runs such scripts on a worker
            # (and runs a script it tried on the loop again there when this is raised).
            raise NeedsWorker("store lookups need the script to run off the event loop")
        try:
            return asyncio.run_coroutine_threadsafe(coro, self.loop).result(BRIDGE_TIMEOUT)
        except TimeoutError:
            raise SieveRuntimeError("the store did not answer in time") from None

    # -- mailboxes (RFC 5490, RFC 8579) ------------------------------------------
    def _boxes(self) -> Sequence[Mailbox]:
        if self.mailboxes is None:
            self.mailboxes = self._wait(self.store.list_mailboxes(self.account_id))
        return self.mailboxes

    def _find(self, name: str) -> Mailbox | None:
        if name.upper() == "INBOX":
            name = "INBOX"
        return next((m for m in self._boxes() if m.name == name), None)

    def mailbox_exists(self, name: str) -> bool:
        return self._find(name) is not None

    def special_use_exists(self, mailbox: str | None, uses: Sequence[str]) -> bool:
        wanted = {u.lower() for u in uses}
        if mailbox is None:
            have = {(m.special_use or "").lower() for m in self._boxes()}
            return wanted <= have
        box = self._find(mailbox)
        return box is not None and wanted <= {(box.special_use or "").lower()}

    def special_use_mailbox(self, use: str) -> str | None:
        """The name of the mailbox with special use ``use`` (for ``fileinto :specialuse``)."""
        return next((m.name for m in self._boxes() if (m.special_use or "").lower() == use.lower()), None)

    # -- metadata (RFC 5490 §3) --------------------------------------------------
    def metadata(self, mailbox: str | None, entry: str) -> str | None:
        get = getattr(self.store, "get_metadata", None)
        if get is None:  # a store without IMAP METADATA: every entry is absent
            return None
        from ..storage.api import metadata_name_problem

        if metadata_name_problem(entry):
            return None
        box = None
        if mailbox is not None:
            box = self._find(mailbox)
            if box is None:
                return None
            if entry.lower() == "/private/specialuse":
                # RFC 6154 §4: computed, never stored (as IMAP GETMETADATA answers it).
                return box.special_use
        found = self._wait(get(self.account_id, box.id if box is not None else None, [entry]))
        for name, value in found:
            if name == entry.lower():
                return bytes(value).decode("utf-8", "replace")
        return None

    # -- include (RFC 6609) ------------------------------------------------------
    def include(self, name: str, global_: bool) -> str | None:
        if not global_:
            return self._wait(self.store.get_sieve_script(self.account_id, name))
        if self.global_dir is None or not _GLOBAL_NAME.match(name):
            return None
        path = self.global_dir / f"{name}.sieve"
        try:
            return path.read_text("utf-8")
        except (OSError, UnicodeDecodeError):
            return None

    # -- duplicate (RFC 7352) ----------------------------------------------------
    def duplicate_seen(self, key: str, seconds: int, handle: str) -> bool:
        self.asked[key] = handle
        when = self._wait(self.store.sieve_tracked(self.account_id, "duplicate", duplicate_key(handle, key),
                                                   self.now().timestamp()))
        return when is not None

    # -- environment (RFC 5183), clock, scores -----------------------------------
    def environment(self, name: str) -> str | None:
        return self.environment_items.get(name.lower())

    def now(self) -> datetime:
        return self.clock or datetime.now().astimezone()

    def _headers(self) -> Message:
        if self.headers is None:
            end = self.raw.find(b"\r\n\r\n")
            block = self.raw[:end + 4] if end >= 0 else self.raw
            self.headers = BytesHeaderParser(policy=compat32).parsebytes(block)
        return self.headers

    def spam_score(self) -> str | None:
        return spam_score_of(self._headers())

    def virus_score(self) -> str | None:
        return virus_score_of(self._headers())


def duplicate_key(handle: str, key: str) -> str:
    """The tracking key of RFC 7352 §3: the handle keeps different tests' keys apart."""
    return f"{handle}\x00{key}"


def environment_items(*, domain: str, host: str, remote_host: str, remote_ip: str) -> dict[str, str]:
    """The RFC 5183 §4 standard items at local delivery."""
    items = {"domain": domain, "host": host, "location": "MDA", "name": "Postroom", "phase": "during",
             "version": __version__}
    if remote_host:
        items["remote-host"] = remote_host
    if remote_ip:
        items["remote-ip"] = remote_ip
    return items
