"""Sieve at local delivery: run each recipient's scripts, then carry out what they decided.

Every local delivery (SMTP, ``postroom sendmail``, notices for local senders, mail a
script redirects to a local address) goes through :func:`deliver_local`. Per recipient
account it runs the admin "before" script, the account's active script and the admin
"after" script (docs/sieve.md "# Delivery" says exactly how they combine), on a worker
thread so a slow script never stalls other sessions. Then:

- keep / fileinto copies of one message are stored with one ``Store.deliver`` call for
  all accounts that store the same bytes (atomic, fsynced before SMTP's 250);
- redirect, vacation, notify and rejection notices go to the outbound queue (or, for
  local addresses, through this same function) after the copies are safe;
- a reject for the only recipient of an SMTP transaction becomes the SMTP reply.

Nothing here may lose a message: any failure of a script (syntax, runtime, limits, a
bug) ends in the implicit keep, with one log line naming account, script and error.
Accounts without scripts cost one indexed lookup and nothing else.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime
from email.message import Message
from email.parser import BytesHeaderParser
from email.policy import compat32
from pathlib import Path
from typing import Any

from .. import log
from ..storage.models import HIERARCHY_SEPARATOR, DeliveryTarget, Mailbox
from .api import (
    Action,
    AddHeader,
    DeleteHeader,
    Discard,
    Envelope,
    FileInto,
    Keep,
    Limits,
    Notify,
    Redirect,
    Reject,
    SieveError,
    Vacation,
)
from .host import DeliveryHost, NeedsWorker, duplicate_key, environment_items
from .interp import BudgetExceeded
from .outcap import WINDOW as OUTCAP_WINDOW
from .outcap import cap_for
from .settings import SieveSettings, settings_for
from .vacation import (
    likely_forged,
    notification,
    parse_mailto,
    rejection_mdn,
    vacation_reply,
)

logger = log.get("sieve")

#: The header that marks a copy Postroom redirected for an account: a message that already
#: carries it for an account is never redirected by that account again (loop protection,
#: like Postfix's Delivered-To check).
REDIRECTED_BY = "X-Postroom-Redirected-By"
#: A message with more Received fields than this is looping somewhere: not redirected again
#: (RFC 5321 §6.3; Postfix's hopcount_limit is 50).
MAX_HOPS = 50
#: Redirects to local addresses are delivered through :func:`deliver_local` again; this
#: bounds how deep such chains go.
MAX_LOCAL_DEPTH = 5
#: Compiled scripts kept per process (keyed by the text's hash and the limits).
CACHE_SIZE = 512
#: Longest reject reason put in an SMTP reply line.
REJECT_TEXT_MAX = 400

_executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="postroom-sieve")

#: Scripts that use only these capabilities never wait for the store (include, duplicate
#: and metadata do) and do only header-sized work per step (body, mime/foreverypart and
#: regex may do much more), so they are first run on the event loop itself, with the time
#: budget cut to :data:`INLINE_SECONDS`. Running out of it there is no error: the run is
#: thrown away (it had no side effects) and done again on a worker thread with the full
#: budget, so the event loop is blocked at most this long per script and a runaway
#: script still gets ``Limits.max_cpu_seconds`` on a worker, as before. A thread hop costs
#: about as much CPU as evaluating a 30-rule script, so most scripts stay on the loop.
INLINE_EXTENSIONS = frozenset({
    "comparator-i;octet", "comparator-i;ascii-casemap", "comparator-i;ascii-numeric", "copy", "date",
    "editheader", "encoded-character", "enotify", "envelope", "environment", "ereject", "fcc", "fileinto",
    "ihave", "imap4flags", "index", "mailbox", "reject", "relational", "spamtest", "spamtestplus",
    "special-use", "subaddress", "vacation", "vacation-seconds", "variables", "virustest",
})
INLINE_SECONDS = 0.01
#: The tests that ask ``Host`` about the account's mailboxes.
MAILBOX_TESTS = frozenset({"mailboxexists", "metadata", "metadataexists", "specialuse_exists"})
#: A larger header block (the unit of work of header and address tests) goes to a worker.
INLINE_HEADER_MAX = 64 * 1024


# ----------------------------------------------------------------------- inputs / outputs


@dataclass(frozen=True, slots=True)
class LocalRecipient:
    account_id: int
    mailbox: str = "INBOX"  # where keep puts it (mail authentication may say the Junk mailbox)
    address: str = ""  # the RCPT TO that led here ("" when unknown: notices)


@dataclass(slots=True)
class Incoming:
    """One message for one or more local accounts."""

    raw: bytes  # Return-Path + trace fields + message, CRLF line ends
    sender: str  # "" for the null reverse-path
    recipients: Sequence[LocalRecipient]
    queue_id: str = ""
    session_id: str = ""
    remote_ip: str = ""
    remote_host: str = ""
    auth: str = ""  # the authenticated submitter
    refuse_single: bool = False  # the SMTP reply speaks for this one recipient alone
    body_8bit: bool = False
    crlf: bool = True  # ``raw`` has CRLF line ends only (Store.deliver need not check)
    #: ``raw.count(b"\n")`` when the caller knows it (SMTP's DATA reader counted): passed to
    #: ``Store.deliver`` with ``crlf`` for the copies stored as ``raw``.
    newlines: int | None = None
    # Turns (data, message) into what enters the outbound queue: DKIM-signed or ARC-sealed as
    # SMTP does for mail that leaves (postroom.smtp.mailauth.outgoing).
    seal: Callable[[bytes, bytes], Awaitable[bytes]] | None = None
    depth: int = 0


@dataclass(slots=True)
class Outcome:
    refusal: str | None = None  # the reason of a reject to answer at SMTP time (550 5.7.1)
    filtered: int = 0  # accounts whose scripts ran
    notes: list[str] = field(default_factory=list)  # short words for the delivery log line

    @property
    def summary(self) -> str:
        return " ".join(self.notes)


# ----------------------------------------------------------------------- scripts and cache


@dataclass(frozen=True, slots=True)
class _Source:
    label: str  # "before", "after", or the user's script name
    text: str
    admin: bool


_compiled: OrderedDict[tuple[str, Limits], tuple[Any, frozenset[str]]] = OrderedDict()
_admin_files: dict[Path, tuple[int, int, str | None]] = {}


_engine_fns: list[tuple[Callable[..., Any], Callable[..., Any]]] = []


def _engine() -> tuple[Callable[..., Any], Callable[..., Any]]:
    if not _engine_fns:  # imported on first use: the engine imports this package's modules
        from . import compile_script, evaluate  # type: ignore[attr-defined]

        _engine_fns.append((compile_script, evaluate))
    return _engine_fns[0]


def compiled(text: str, limits: Limits) -> Any:
    """The compiled script for ``text``: compiled once per process and reused while the
    text is unchanged (the key is the text itself, so an edited script compiles anew)."""
    return _compiled_entry(text, limits)[0]


def _compiled_entry(text: str, limits: Limits) -> tuple[Any, frozenset[str]]:
    """The compiled script and the names of every command and test in it (what delivery
    must prepare for the run: the mailbox list, the include directory)."""
    # Keyed by the text, not a digest of it: the dict's string hash never releases the GIL
    # (hashlib does, for a few KB, and then waits to get it back behind the store's
    # threads), and the text is small beside the compiled tree kept with it.
    key = (text, limits)
    entry = _compiled.get(key)
    if entry is not None:
        _compiled.move_to_end(key)
        return entry
    compile_script, _ = _engine()
    script = compile_script(text, limits=limits)
    names: set[str] = set()
    stack = list(script.commands)
    while stack:
        node = stack.pop()
        names.add(node.name)
        stack += node.tests
        stack += node.block or ()
    entry = _compiled[key] = (script, frozenset(names))
    if len(_compiled) > CACHE_SIZE:
        _compiled.popitem(last=False)
    return entry


def _admin_script(path: Path | None) -> str | None:
    """The text of an admin script, re-read only when the file changes (mtime, size)."""
    if path is None:
        return None
    try:
        st = path.stat()
    except OSError:
        logger.error("sieve admin script %s cannot be read; it is skipped", path)
        return None
    cached = _admin_files.get(path)
    if cached is not None and cached[:2] == (st.st_mtime_ns, st.st_size):
        return cached[2]
    try:
        text: str | None = path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        logger.error("sieve admin script %s cannot be read (%s); it is skipped", path, exc)
        text = None
    _admin_files[path] = (st.st_mtime_ns, st.st_size, text)
    return text


def global_dir(ctx: Any, settings: SieveSettings) -> Path:
    """Where ``include :global`` finds scripts: ``[sieve] global_dir`` when the section has it,
    else ``sieve/global`` beside the config file."""
    configured = getattr(settings, "global_dir", None)
    if configured:
        return Path(configured)
    return Path(ctx.config.path).parent / "sieve" / "global"


_limits_memo: list[tuple[SieveSettings, Limits]] = []


def limits_of(settings: SieveSettings) -> Limits:
    # The same Limits object for the same settings: it is part of the compile cache's key.
    memo = _limits_memo[0] if _limits_memo else None
    if memo is not None and memo[0] is settings:
        return memo[1]
    limits = settings.limits()
    _limits_memo[:] = [(settings, limits)]
    return limits


# ----------------------------------------------------------------------- the run


@dataclass(slots=True)
class Decision:
    """What the script sequence decided for one account (all scripts together)."""

    actions: list[Action] = field(default_factory=list)  # explicit actions, in order
    implicit_keep: bool = True
    keep_flags: tuple[str, ...] = ()
    edited: bytes | None = None
    # (tracking key, seconds): ``host.duplicate_key`` of the handle and the value
    duplicate_marks: list[tuple[str, int]] = field(default_factory=list)
    ran: list[str] = field(default_factory=list)
    # What _decide looked up for the run, reused when planning (one lookup per delivery).
    address: str = ""
    mailboxes: list[Mailbox] | None = None


def run_sequence(sources: Sequence[tuple[_Source, Any]], raw: bytes, envelope: Envelope, host: DeliveryHost,
                 limits: Limits, *, inline: bool = False) -> Decision:
    """Evaluate the scripts in order (on a worker thread, or on the loop for cheap scripts:
    see :data:`INLINE_EXTENSIONS`). Pigeonhole's rules: explicit
    actions accumulate; once a script cancels the implicit keep it stays cancelled; a
    ``stop`` ends the sequence; "after" scripts run only while the implicit keep is in
    effect; each script sees the message as the previous one's editheader left it.

    ``inline``: a first try on the event loop; when it runs out of budget or asks the store
    the notes are not logged (the run is done again on a worker, which logs them)."""
    _, evaluate = _engine()
    d = Decision()
    notes: list[tuple[str, str]] = []
    try:
        _run_scripts(evaluate, d, notes, sources, raw, envelope, host, limits)
    except (BudgetExceeded, NeedsWorker):
        if inline:
            raise
        _log_notes(notes)
        raise
    except BaseException:
        _log_notes(notes)
        raise
    _log_notes(notes)
    return d


def _log_notes(notes: list[tuple[str, str]]) -> None:
    for label, line in notes:
        logger.info("sieve script %s: %s", label, line[:500])


def _run_scripts(evaluate: Callable[..., Any], d: Decision, notes: list[tuple[str, str]],
                 sources: Sequence[tuple[_Source, Any]], raw: bytes, envelope: Envelope, host: DeliveryHost,
                 limits: Limits) -> None:
    current = raw
    for src, script in sources:
        if src.label == "after" and not d.implicit_keep:
            break
        res = evaluate(script, current, envelope, host, limits=limits)
        d.ran.append(src.label)
        implicit = None  # the last implicit keep (the flags it carries), if the run kept it
        for a in res.actions:
            if isinstance(a, Keep) and a.implicit:
                implicit = a
            else:
                d.actions.append(a)
        if implicit is not None:
            d.keep_flags = implicit.flags
        else:
            d.implicit_keep = False
        if res.edited is not None:
            current = d.edited = res.edited
        if res.duplicate_marks:
            d.duplicate_marks += [(duplicate_key(host.asked.get(key, ""), key), seconds)
                                  for key, seconds in res.duplicate_marks]
        if res.log:
            notes += [(src.label, line) for line in res.log]
        if getattr(res, "stopped", False):
            break


@dataclass(slots=True)
class _Plan:
    """What to do for one account, after its scripts ran."""

    rcpt: LocalRecipient
    address: str  # the account's address
    raw: bytes  # the bytes to store (edited by editheader or not)
    copies: dict[str, frozenset[str]] = field(default_factory=dict)  # mailbox -> flags
    redirects: list[Redirect] = field(default_factory=list)
    vacations: list[Vacation] = field(default_factory=list)
    notifies: list[Notify] = field(default_factory=list)
    reject: Reject | None = None
    marks: list[tuple[str, int]] = field(default_factory=list)
    words: list[str] = field(default_factory=list)

    def keep(self, mailbox: str, flags: Sequence[str] = ()) -> None:
        # RFC 5228 §4.2 / RFC 5232 §3: one copy per mailbox, with the flags of every request.
        had = self.copies.get(mailbox)
        self.copies[mailbox] = frozenset(flags) if had is None else had | frozenset(flags)


def _headers(raw: bytes) -> Message:
    end = raw.find(b"\r\n\r\n")
    return BytesHeaderParser(policy=compat32).parsebytes(raw[: end + 4] if end >= 0 else raw)


#: The scripts that run for one account, as :func:`_sources` finds them: the text of the
#: admin "before" script, the account's active script (name, text) and the text of the admin
#: "after" script, each None when absent. It is also the key of :data:`_runs`.
_Scripts = tuple[str | None, tuple[str, str] | None, str | None]


async def _sources(ctx: Any, settings: SieveSettings, account_id: int) -> tuple[_Scripts | None, str]:
    """The scripts to run for the account (None: none), and its address ("" when the store
    did not say)."""
    # An empty admin script does nothing: skipped, so mail for accounts without scripts of
    # their own stays on the cheap path.
    before = _admin_script(settings.before) if settings.before is not None else None
    if before is not None and not before.strip():
        before = None
    # One lookup gives the script and the address the run needs (Store.get_sieve_delivery).
    address = ""
    get = getattr(ctx.store, "get_sieve_delivery", None)
    if get is not None:
        info = await get(account_id)
        active = info.script if info is not None else None
        address = info.address if info is not None else ""
    else:
        get = getattr(ctx.store, "get_active_sieve_script", None)
        active = await get(account_id) if get is not None else None
    after = _admin_script(settings.after) if settings.after is not None else None
    if after is not None and not after.strip():
        after = None
    if before is None and active is None and after is None:
        return None, address
    return (before, active, after), address


async def deliver_local(ctx: Any, msg: Incoming) -> Outcome:
    """Run the scripts of every recipient and carry out their actions (see the module doc).

    Raises only when a copy could not be stored or a redirect could not be queued: the
    caller then answers with a temporary failure and nothing was acknowledged.
    """
    settings = settings_for(ctx)
    plain: list[DeliveryTarget] = []
    decided: list[tuple[LocalRecipient, Decision | Exception, str]] = []
    for rcpt in {r.account_id: r for r in msg.recipients}.values():
        scripts, address = await _sources(ctx, settings, rcpt.account_id)
        if scripts is None:
            plain.append(DeliveryTarget(rcpt.account_id, rcpt.mailbox))
            continue
        decided.append((rcpt, *await _decide(ctx, settings, msg, rcpt, scripts, address)))
    return await _carry_out(ctx, settings, msg, plain, decided)


async def carry_out(ctx: Any, msg: Incoming, decisions: Sequence[tuple[LocalRecipient, Decision]]) -> Outcome:
    """Carry out decisions made elsewhere (``postroom sieve test``, the tests): what
    :func:`deliver_local` does once the scripts have run."""
    return await _carry_out(ctx, settings_for(ctx), msg, [], [(r, d, "test") for r, d in decisions])


async def _carry_out(ctx: Any, settings: SieveSettings, msg: Incoming, plain: list[DeliveryTarget],
                     decided: Sequence[tuple[LocalRecipient, Decision | Exception, str]]) -> Outcome:
    outcome = Outcome(filtered=len(decided))
    plans = []
    for rcpt, d, label in decided:
        plans.append(await _plan_or_keep(ctx, settings, msg, rcpt, d, label))
    if msg.refuse_single and not plain and len(plans) == 1 and _refused(plans[0]):
        plan = plans[0]
        assert plan.reject is not None
        logger.info("%s id=%s sieve account=%s rejected at SMTP time", msg.session_id, msg.queue_id, plan.address)
        outcome.refusal = smtp_text(plan.reject.reason)
        outcome.notes.append("sieve=rejected")
        return outcome
    await _store(ctx, msg, plain, plans)
    for plan in plans:
        if plan.marks:
            await _mark_duplicates(ctx, plan)
        for r in plan.redirects:
            await _redirect(ctx, msg, plan, r)  # raises: the copy must leave or the client retries
        if plan.vacations or plan.notifies or plan.reject is not None:
            await _after_effects(ctx, settings, msg, plan)
        outcome.notes.append(f"sieve[{plan.address}]={','.join(plan.words) or 'keep'}")
    return outcome


def _refused(plan: _Plan) -> bool:
    """A reject that is the whole outcome: nothing stored, nothing redirected."""
    return plan.reject is not None and not plan.copies and not plan.redirects


def smtp_text(reason: str) -> str:
    """A script's reason as one line of printable ASCII for a 550 reply (RFC 5321 §4.2)."""
    text = " ".join(reason.split())
    text = "".join(ch if " " <= ch <= "~" else "?" for ch in text)
    return text[:REJECT_TEXT_MAX] or "Message rejected"


class _Run:
    """What a delivery needs to run one account's scripts that does not depend on the
    message: made once per combination of script texts and limits (:func:`_prepared`), so a
    delivery does not compile-check, label and inspect the scripts again each time."""

    __slots__ = ("include", "inline", "label", "limits", "mailbox_tests", "scripts")

    def __init__(self, scripts: list[tuple[_Source, Any]], limits: Limits, names: frozenset[str]) -> None:
        self.scripts = scripts
        self.label = "+".join(src.label for src, _ in scripts)
        self.limits = limits
        # The message's header size is checked per delivery (_small_header).
        self.inline = _cheap([script for _, script in scripts])
        # Only these tests ask the host about mailboxes; otherwise the list is read only
        # when a fileinto needs it (_plan_or_keep).
        self.mailbox_tests = bool(names & MAILBOX_TESTS)
        self.include = "include" in names


class _CompileFailed(Exception):
    """A script of the sequence did not compile: ``error``, in the script ``label``."""

    def __init__(self, label: str, error: Exception) -> None:
        super().__init__(label, error)
        self.label = label
        self.error = error


#: Prepared runs, keyed by the scripts' texts (:data:`_Scripts`) and the limits' identity
#: (``limits_of`` gives the same object for the same settings; the entry keeps it alive and
#: is used only while it is that object).
_runs: OrderedDict[tuple[_Scripts, int], _Run] = OrderedDict()


def _prepared(scripts: _Scripts, limits: Limits) -> _Run:
    """The run for these scripts under these limits: each compiled once per process (the
    compile cache), and what delivery must know about them worked out once too. A script
    that does not compile raises :class:`_CompileFailed` every time (nothing is kept)."""
    key = (scripts, id(limits))
    run = _runs.get(key)
    if run is not None and run.limits is limits:
        _runs.move_to_end(key)
        return run
    before, active, after = scripts
    sources = [_Source("before", before, True)] if before is not None else []
    if active is not None:
        sources.append(_Source(active[0], active[1], False))
    if after is not None:
        sources.append(_Source("after", after, True))
    compiled_scripts = []
    names: frozenset[str] = frozenset()
    for src in sources:
        try:
            # The size limit is for users' scripts; the admin's are as large as they are.
            size = len(src.text.encode("utf-8", "surrogatepass")) if src.admin else 0
            script, used = _compiled_entry(src.text, limits if size <= limits.max_script_size else replace(
                limits, max_script_size=size))
        except Exception as exc:
            raise _CompileFailed(src.label, exc) from exc
        compiled_scripts.append((src, script))
        names |= used
    run = _runs[key] = _Run(compiled_scripts, limits, names)
    if len(_runs) > CACHE_SIZE:
        _runs.popitem(last=False)
    return run


_environment_memo: list[tuple[tuple[str, str, str, str], dict[str, str]]] = []


def _environment(ctx: Any, msg: Incoming) -> dict[str, str]:
    """The RFC 5183 items of this delivery: the same (read-only) dict while the config and
    the client stay the same, as they do for every message of an SMTP session."""
    config = ctx.config
    key = (config.domains[0] if config.domains else config.hostname, config.hostname, msg.remote_host,
           msg.remote_ip)
    memo = _environment_memo[0] if _environment_memo else None
    if memo is not None and memo[0] == key:
        return memo[1]
    items = environment_items(domain=key[0], host=key[1], remote_host=key[2], remote_ip=key[3])
    _environment_memo[:] = [(key, items)]
    return items


async def _decide(ctx: Any, settings: SieveSettings, msg: Incoming, rcpt: LocalRecipient,
                  scripts: _Scripts, address: str = "") -> tuple[Decision | Exception, str]:
    """Compile (cached) and run the scripts; the error instead of a decision when that failed,
    with the label of the script at fault. ``address``: the account's, when already known."""
    label = "before" if scripts[0] is not None else scripts[1][0] if scripts[1] is not None else "after"
    try:
        limits = limits_of(settings)
        try:
            run = _prepared(scripts, limits)
        except _CompileFailed as failed:
            return failed.error, failed.label
        label = run.label
        address = address or await _address(ctx, rcpt)
        mailboxes = await ctx.store.list_mailboxes(rcpt.account_id) if run.mailbox_tests else None
        loop = asyncio.get_running_loop()
        host = DeliveryHost(loop=loop, store=ctx.store, account_id=rcpt.account_id, mailboxes=mailboxes,
                            environment_items=_environment(ctx, msg), raw=msg.raw,
                            global_dir=global_dir(ctx, settings) if run.include else None,
                            _loop_thread=threading.get_ident())
        envelope = Envelope(sender=msg.sender, recipient=address, original_recipient=rcpt.address or address,
                            auth=msg.auth)
        decision = None
        if run.inline and _small_header(msg.raw):
            short = limits.max_cpu_seconds > INLINE_SECONDS
            try:
                decision = run_sequence(run.scripts, msg.raw, envelope, host,
                                        _inline_limits(limits) if short else limits, inline=True)
            except BudgetExceeded:
                if not short:
                    raise
                logger.debug("%s id=%s sieve account=%s: over the inline budget; run on a worker",
                             msg.session_id, msg.queue_id, address)
            except NeedsWorker:
                logger.debug("%s id=%s sieve account=%s: asks the store; run on a worker",
                             msg.session_id, msg.queue_id, address)
        if decision is None:
            decision = await loop.run_in_executor(_executor, run_sequence, run.scripts, msg.raw, envelope, host,
                                                  limits)
        decision.address = address
        decision.mailboxes = mailboxes if host.mailboxes is None else list(host.mailboxes)
        return decision, label
    except Exception as exc:  # noqa: BLE001 - SieveError, limits, a bug: logged by _plan_or_keep
        return exc, label


_inline_memo: list[tuple[Limits, float, Limits]] = []


def _inline_limits(limits: Limits) -> Limits:
    """``limits`` with the inline time budget, made once per limits (``replace`` is slow)."""
    memo = _inline_memo[0] if _inline_memo else None
    if memo is not None and memo[0] is limits and memo[1] == INLINE_SECONDS:
        return memo[2]
    short = replace(limits, max_cpu_seconds=INLINE_SECONDS)
    _inline_memo[:] = [(limits, INLINE_SECONDS, short)]
    return short


def inline_ok(scripts: Sequence[Any], raw: bytes) -> bool:
    """Whether these compiled scripts may first be tried on the event loop (see
    :data:`INLINE_EXTENSIONS`)."""
    return _cheap(scripts) and _small_header(raw)


def _cheap(scripts: Sequence[Any]) -> bool:
    """Whether these compiled scripts use only extensions that may run on the loop
    (:data:`INLINE_EXTENSIONS`)."""
    return all(script.required <= INLINE_EXTENSIONS for script in scripts)


def _small_header(raw: bytes) -> bool:
    """Whether the message's header block is small enough for a run on the loop."""
    if len(raw) <= INLINE_HEADER_MAX:
        return True
    end = raw.find(b"\r\n\r\n", 0, INLINE_HEADER_MAX + 1)
    return 0 <= end <= INLINE_HEADER_MAX


async def _address(ctx: Any, rcpt: LocalRecipient) -> str:
    account = await ctx.store.get_account_by_id(rcpt.account_id)
    return account.address if account is not None else rcpt.address


async def _plan_or_keep(ctx: Any, settings: SieveSettings, msg: Incoming, rcpt: LocalRecipient,
                        d: Decision | Exception, label: str) -> _Plan:
    """The plan for one account; any failure (of the scripts or of planning: a mailbox
    that cannot be made…) gives the implicit keep and exactly one log line."""
    known = isinstance(d, Decision) and d.address
    address = d.address if known else await _address(ctx, rcpt)  # type: ignore[union-attr]
    plan = _Plan(rcpt, address, msg.raw)
    exc: Exception
    if isinstance(d, Exception):
        exc = d
    else:
        try:
            # The list _decide fetched for the run, if it did: fileinto :create adds to the names
            # as it goes. Only fileinto needs it.
            mailboxes = d.mailboxes
            names = None
            if mailboxes is None:
                files = [a for a in d.actions if isinstance(a, FileInto)]
                if not files:
                    mailboxes = []
                # The SQLite store keeps each account's mailbox names (no read per delivery).
                elif (kept_names := getattr(ctx.store, "mailbox_names", None)) is not None and not any(
                        a.special_use for a in files):
                    names, mailboxes = await kept_names(rcpt.account_id), []
                else:
                    mailboxes = await _targets(ctx, rcpt.account_id, files)
            await _plan(ctx, settings, msg, plan, d, mailboxes, names)
            return plan
        except Exception as e:  # noqa: BLE001 - a bug or a store refusal: logged below, message kept
            exc = e
    what = str(exc) if isinstance(exc, SieveError) else f"{type(exc).__name__}: {exc}"
    logger.warning("%s id=%s sieve account=%s script=%s error=%s; implicit keep", msg.session_id,
                   msg.queue_id, address, label, what[:300], exc_info=not isinstance(exc, SieveError))
    plan = _Plan(rcpt, address, msg.raw, words=["error"])
    plan.keep(rcpt.mailbox)
    return plan


async def _targets(ctx: Any, account_id: int, files: list[FileInto]) -> list[Mailbox]:
    """The mailboxes ``_plan`` must know to resolve these fileinto actions. Usually each
    named mailbox exists and is looked up alone (one indexed row, however many mailboxes
    the account has); the whole list when one is missing (``:create`` then skips the
    parents that exist) or a ``:specialuse`` must be found."""
    if not files:
        return []
    names = {"INBOX" if a.mailbox.upper() == "INBOX" else a.mailbox for a in files}
    if len(names) > 3 or any(a.special_use for a in files):
        return list(await ctx.store.list_mailboxes(account_id))
    found = []
    for name in names:
        box = await ctx.store.get_mailbox(account_id, name)
        if box is None or box.name != name:  # missing (or only matching after normalization)
            return list(await ctx.store.list_mailboxes(account_id))
        found.append(box)
    return found


async def _plan(ctx: Any, settings: SieveSettings, msg: Incoming, plan: _Plan, d: Decision,
                mailboxes: list[Mailbox], names: set[str] | frozenset[str] | None = None) -> None:
    """Turn the decision into copies and messages to send, resolving mailboxes (by the
    account's mailbox ``names`` when given, else by ``mailboxes``)."""
    if d.edited is not None:
        plan.raw = d.edited
    plan.marks = d.duplicate_marks
    # The loop checks read the header fields: parsed at the first redirect, if there is one.
    redirected_by: set[str] | None = None
    hops = 0
    default = plan.rcpt.mailbox
    keep_after = d.implicit_keep
    for a in d.actions:
        if isinstance(a, Keep):
            plan.keep(default, a.flags)
            plan.words.append("keep")
        elif isinstance(a, FileInto):
            if names is None:
                names = {m.name for m in mailboxes}
            elif a.create and isinstance(names, frozenset) and _name(a) not in names:
                names = set(names)  # the store's kept names: _create adds what it makes to a copy
            box = _name(a)
            if a.special_use or box not in names:  # else the named mailbox exists: no await
                box = await _mailbox_for(ctx, msg, plan, a, names, mailboxes)
            plan.keep(box, a.flags)
            plan.words.append(f"fileinto:{box}")
        elif isinstance(a, Redirect):
            if redirected_by is None:
                headers = _headers(plan.raw)
                redirected_by = {str(v).strip().strip("<>").lower() for v in headers.get_all(REDIRECTED_BY, [])}
                hops = sum(1 for name, _ in headers.items() if name.lower() == "received")
            refuse = None
            if plan.address.lower() in redirected_by:
                refuse = "already redirected by this account"
            elif hops > MAX_HOPS:
                refuse = f"more than {MAX_HOPS} Received fields"
            elif len(plan.redirects) >= settings.max_redirects:
                refuse = f"more than {settings.max_redirects} redirects"
            elif a.address.lower() in {r.address.lower() for r in plan.redirects}:
                continue  # RFC 5228 §4.2: one copy per address
            elif not await _take_outgoing(ctx, settings.max_outgoing_per_hour, plan.rcpt.account_id):
                refuse = f"more than {settings.max_outgoing_per_hour} Sieve messages this hour"
            if refuse is not None:
                logger.info("%s id=%s sieve account=%s redirect to <%s> not done (%s); implicit keep",
                            msg.session_id, msg.queue_id, plan.address, a.address, refuse)
                keep_after = True
                plan.words.append("redirect-refused")
                continue
            plan.redirects.append(a)
            plan.words.append(f"redirect:{a.address}")
        elif isinstance(a, Reject):
            plan.reject = a
            plan.words.append("ereject" if a.extended else "reject")
        elif isinstance(a, Discard):
            plan.words.append("discard")
        elif isinstance(a, Vacation):
            plan.vacations.append(a)
        elif isinstance(a, Notify):
            plan.notifies.append(a)
        elif isinstance(a, (AddHeader, DeleteHeader)):
            pass  # already applied: Result.edited is the message after the edits
    if keep_after:
        plan.keep(default, d.keep_flags)
    if not plan.copies and not plan.redirects and plan.reject is None:
        plan.words.append("discarded")
        logger.info("%s id=%s sieve account=%s discarded", msg.session_id, msg.queue_id, plan.address)


def _special_use(mailboxes: Sequence[Mailbox], use: str) -> str | None:
    return next((m.name for m in mailboxes if (m.special_use or "").lower() == use.lower()), None)


def _name(a: FileInto) -> str:
    return "INBOX" if a.mailbox.upper() == "INBOX" else a.mailbox


async def _mailbox_for(ctx: Any, msg: Incoming, plan: _Plan, a: FileInto, names: set[str] | frozenset[str],
                       mailboxes: Sequence[Mailbox]) -> str:
    """Where ``fileinto`` puts the copy: the special-use mailbox (RFC 8579 §4) when there is
    one, else the named mailbox; a missing one is created only with ``:create`` (RFC 5490
    §3.2), otherwise the copy goes to the default mailbox with one log line."""
    if a.special_use:
        found = _special_use(mailboxes, a.special_use)
        if found is not None:
            return found
    name = _name(a)
    if name in names:
        return name
    if a.create:
        assert isinstance(names, set)  # _plan copied the store's kept names
        try:
            await _create(ctx, plan.rcpt.account_id, name, names, a.special_use)
            return name
        except Exception as exc:
            logger.warning("%s id=%s sieve account=%s fileinto :create %r failed (%s); filed into %s",
                           msg.session_id, msg.queue_id, plan.address, name, exc, plan.rcpt.mailbox, exc_info=True)
            return plan.rcpt.mailbox
    logger.info("%s id=%s sieve account=%s fileinto %r: no such mailbox; filed into %s", msg.session_id,
                msg.queue_id, plan.address, name, plan.rcpt.mailbox)
    return plan.rcpt.mailbox


async def _create(ctx: Any, account_id: int, name: str, names: set[str], special_use: str | None) -> None:
    """Create ``name`` and its missing parents (as IMAP CREATE does), subscribed so that
    clients listing subscribed mailboxes show it."""
    from ..errors import MailboxExists

    parts = name.split(HIERARCHY_SEPARATOR)
    if any(not p for p in parts):
        raise ValueError("empty level in mailbox name")
    for i in range(1, len(parts) + 1):
        sub = HIERARCHY_SEPARATOR.join(parts[:i])
        if sub in names:
            continue
        try:
            await ctx.store.create_mailbox(account_id, sub, special_use if i == len(parts) else None)
        except MailboxExists:
            pass  # another delivery made it meanwhile
        names.add(sub)
        try:
            await ctx.store.subscribe(account_id, sub)
        except Exception:
            logger.debug("subscribing %r failed", sub, exc_info=True)


async def _store(ctx: Any, msg: Incoming, plain: list[DeliveryTarget], plans: list[_Plan]) -> None:
    """One ``Store.deliver`` per distinct message bytes: the unfiltered accounts and every
    account whose copies are the message as received share one atomic call."""
    groups: dict[int, tuple[bytes, list[DeliveryTarget]]] = {id(msg.raw): (msg.raw, list(plain))}
    for plan in plans:
        targets = [DeliveryTarget(plan.rcpt.account_id, box, flags) for box, flags in plan.copies.items()]
        if not targets:
            continue
        key = id(msg.raw) if plan.raw is msg.raw else id(plan.raw)
        groups.setdefault(key, (plan.raw, []))[1].extend(targets)
    for raw, targets in groups.values():
        if not targets:
            continue
        if raw is msg.raw and msg.crlf and msg.newlines is not None:
            await ctx.store.deliver(raw, targets, crlf=True, newlines=msg.newlines)
        else:
            await ctx.store.deliver(raw, targets, crlf=msg.crlf and raw is msg.raw)


async def _mark_duplicates(ctx: Any, plan: _Plan) -> None:
    """RFC 7352 §3: the keys are tracked once the message was delivered."""
    now = time.time()
    for key, seconds in plan.marks:
        try:
            await ctx.store.sieve_track(plan.rcpt.account_id, "duplicate", key, now, now + max(1, seconds))
        except Exception:
            logger.exception("sieve account=%s could not track a duplicate key", plan.address)


def _without_return_path(raw: bytes) -> bytes:
    # The Return-Path of the final delivery is added again where the message lands.
    if raw[:12].lower() == b"return-path:":
        end = raw.find(b"\r\n")
        while end >= 0 and raw[end + 2:end + 3] in (b" ", b"\t"):
            end = raw.find(b"\r\n", end + 2)
        if end >= 0:
            return raw[end + 2:]
    return raw


async def _redirect(ctx: Any, msg: Incoming, plan: _Plan, r: Redirect) -> None:
    """RFC 5228 §4.2: the message goes on unchanged (the original envelope sender) with our
    loop mark; local addresses are delivered here (their scripts run), others queued."""
    from ..outbound.api import Envelope as OutEnvelope
    from ..outbound.api import Recipient
    from ..outbound.local import local_accounts

    body = _without_return_path(plan.raw)
    data = f"{REDIRECTED_BY}: <{plan.address}>\r\n".encode() + body
    ids = await local_accounts(ctx, r.address)
    if ids is not None:
        if not ids:
            logger.warning("%s id=%s sieve account=%s redirect to unknown local <%s>; kept instead",
                           msg.session_id, msg.queue_id, plan.address, r.address)
            await ctx.store.deliver(plan.raw, [DeliveryTarget(plan.rcpt.account_id, plan.rcpt.mailbox)])
            return
        if msg.depth >= MAX_LOCAL_DEPTH:
            logger.warning("%s id=%s sieve account=%s redirect chain too deep at <%s>; delivered without filtering",
                           msg.session_id, msg.queue_id, plan.address, r.address)
            await ctx.store.deliver(f"Return-Path: <{msg.sender}>\r\n".encode() + data,
                                    [DeliveryTarget(i) for i in ids])
            return
        inner = Incoming(raw=f"Return-Path: <{msg.sender}>\r\n".encode() + data, sender=msg.sender,
                         recipients=[LocalRecipient(i, "INBOX", r.address) for i in ids], queue_id=msg.queue_id,
                         session_id=msg.session_id, remote_ip=msg.remote_ip, remote_host=msg.remote_host,
                         body_8bit=msg.body_8bit, seal=msg.seal, depth=msg.depth + 1)
        await deliver_local(ctx, inner)
        logger.info("%s id=%s sieve account=%s redirected to local <%s>", msg.session_id, msg.queue_id,
                    plan.address, r.address)
        return
    if ctx.outbound is None:  # e.g. ``postroom sendmail`` without a queue: keep rather than lose
        logger.warning("%s id=%s sieve account=%s redirect to <%s>: no outbound queue; kept instead",
                       msg.session_id, msg.queue_id, plan.address, r.address)
        await ctx.store.deliver(plan.raw, [DeliveryTarget(plan.rcpt.account_id, plan.rcpt.mailbox)])
        return
    out = await msg.seal(data, body) if msg.seal is not None else data
    env = OutEnvelope(sender=msg.sender, recipients=(Recipient(r.address),), body_8bit=msg.body_8bit,
                      smtputf8=not (msg.sender + r.address).isascii(), received_from="sieve redirect")
    qid = await ctx.outbound.enqueue(env, out)
    logger.info("%s id=%s sieve account=%s redirected to <%s> outbound=%s", msg.session_id, msg.queue_id,
                plan.address, r.address, qid)


async def _take_outgoing(ctx: Any, limit: int, account_id: int) -> bool:
    """Count one message made on the account's behalf against its hourly cap. Nodes sharing
    a PostgreSQL database share the count (with the login throttle's counters, so that N
    nodes do not allow N times the cap); one node, or a database briefly away, counts in
    this process (outcap.HourlyCap)."""
    if limit > 0:
        shared = await ctx.auth.failures.take_event(f"sieve-out:{account_id}", limit, OUTCAP_WINDOW)
        if shared is not None:
            return bool(shared)
    return cap_for(ctx.state, limit).take(account_id, time.time())


async def _send(ctx: Any, plan: _Plan, to: str, raw: bytes) -> str:
    from ..outbound.local import local_accounts, send_notice

    limit = settings_for(ctx).max_outgoing_per_hour
    if not await _take_outgoing(ctx, limit, plan.rcpt.account_id):
        return f"not sent (more than {limit} Sieve messages this hour)"
    if ctx.outbound is None and await local_accounts(ctx, to) is None:
        raise RuntimeError(f"no outbound queue to send to <{to}>")
    return await send_notice(ctx, ctx.outbound, to, raw, body_8bit=not raw.isascii())


async def _after_effects(ctx: Any, settings: SieveSettings, msg: Incoming, plan: _Plan) -> None:
    """Vacation replies, notifications and rejection notices: each failure is logged and
    never affects the delivered message."""
    if not plan.vacations and not plan.notifies and plan.reject is None:
        return
    hostname = ctx.config.hostname
    # Most vacation actions meet a sender already answered within the period: a read says
    # so without the write of the atomic claim (and before the header fields are parsed,
    # or the local time zone looked up for the dates of what would be sent).
    t = time.time()
    vacations = [v for v in plan.vacations if not await _answered(ctx, settings, msg, plan, v, t)]
    if not vacations and not plan.notifies and plan.reject is None:
        return
    now = datetime.fromtimestamp(t).astimezone()
    headers = _headers(plan.raw)
    forged = likely_forged(headers, hostname, quarantined=plan.rcpt.mailbox != "INBOX")
    if forged:  # RFC 5230 §4.6, RFC 3834 §2: no backscatter to a sender who is likely forged
        logger.info("%s id=%s sieve account=%s vacation/notify/reject notice not sent (%s)",
                    msg.session_id, msg.queue_id, plan.address, forged)
        return
    for v in vacations:
        try:
            await _vacation(ctx, settings, msg, plan, v, headers, now)
        except Exception:
            logger.exception("%s id=%s sieve account=%s vacation reply failed", msg.session_id, msg.queue_id,
                             plan.address)
    for n in plan.notifies:
        try:
            await _notify(ctx, msg, plan, n, headers, now)
        except Exception:
            logger.exception("%s id=%s sieve account=%s notification failed", msg.session_id, msg.queue_id,
                             plan.address)
    if plan.reject is not None:
        try:
            await _reject_notice(ctx, msg, plan, plan.reject, headers, now, hostname)
        except Exception:
            logger.exception("%s id=%s sieve account=%s rejection notice failed", msg.session_id,
                             msg.queue_id, plan.address)


async def _answered(ctx: Any, settings: SieveSettings, msg: Incoming, plan: _Plan, v: Vacation,
                   t: float) -> bool:
    """True when the store already shows a reply to this sender and handle within the
    period: the same condition as ``_vacation``'s claim (an unexpired entry recorded after
    ``now - period``), read without writing. False also when the read fails: the claim decides."""
    if not v.sender:
        return False
    period = clamp_period(settings, v.period_seconds)
    key = f"{v.sender.lower()}\x00{vacation_handle(v)}"
    try:
        when = await ctx.store.sieve_tracked(plan.rcpt.account_id, "vacation", key, t)
    except Exception:  # the claim in _vacation is the authority
        logger.debug("sieve vacation pre-check failed", exc_info=True)
        return False
    if when is None or when <= t - period:
        return False
    logger.info("%s id=%s sieve account=%s vacation to <%s>: already answered within %ds",
                msg.session_id, msg.queue_id, plan.address, v.sender, period)
    return True


def clamp_period(settings: SieveSettings, seconds: int | None) -> int:
    """RFC 5230 §4.1 / RFC 6131 §2: the site's bounds on the reply period (``:seconds 0``,
    "answer every message", becomes the minimum too)."""
    if seconds is None:
        return settings.vacation_default_period
    return max(settings.vacation_min_period, min(settings.vacation_max_period, seconds))


def vacation_handle(v: Vacation) -> str:
    """RFC 5230 §4.2: without ``:handle``, one derived from what the reply says, so a new
    vacation message is sent even to those who got the previous one."""
    if v.handle:
        return v.handle
    return _auto_handle(v.subject, v.from_ or "", "mime" if v.mime else "", v.reason)


@functools.lru_cache(maxsize=256)
def _auto_handle(subject: str, from_: str, mime: str, reason: str) -> str:
    # Per process per distinct reply: the same script's vacation asks for it with every message.
    text = f"{subject}\x00{from_}\x00{mime}\x00{reason}"
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    return f"auto:{digest[:24]}"


async def _vacation(ctx: Any, settings: SieveSettings, msg: Incoming, plan: _Plan, v: Vacation,
                    headers: Message, now: datetime) -> None:
    if not v.sender:
        return  # RFC 5230 §4.5: never to the null sender (the engine checks it too)
    period = clamp_period(settings, v.period_seconds)
    key = f"{v.sender.lower()}\x00{vacation_handle(v)}"
    t = now.timestamp()
    # RFC 5230 §4.2: at most one reply per (recipient, sender, handle) within the period;
    # claimed atomically, so two deliveries racing here send one reply.
    if not await ctx.store.sieve_track(plan.rcpt.account_id, "vacation", key, t, t + period,
                                       unless_since=t - period):
        logger.info("%s id=%s sieve account=%s vacation to <%s>: already answered within %ds",
                    msg.session_id, msg.queue_id, plan.address, v.sender, period)
        return
    raw = vacation_reply(v, headers=headers, recipient=plan.rcpt.address or plan.address,
                         hostname=ctx.config.hostname, now=now, own=(plan.address,))
    how = await _send(ctx, plan, v.sender, raw)
    logger.info("%s id=%s sieve account=%s vacation reply to <%s> %s", msg.session_id, msg.queue_id,
                plan.address, v.sender, how)
    if v.fcc:
        await _fcc(ctx, msg, plan, v, raw)


async def _notify(ctx: Any, msg: Incoming, plan: _Plan, n: Notify, headers: Message, now: datetime) -> None:
    auto = str(headers.get("Auto-Submitted", "no")).split(";")[0].strip().lower()
    if auto != "no":
        # RFC 5436 §2.7: no notification about an automatically submitted message.
        logger.info("%s id=%s sieve account=%s notify skipped (Auto-Submitted: %s)", msg.session_id,
                    msg.queue_id, plan.address, auto[:40])
        return
    target = parse_mailto(n.method)
    if target is None:
        logger.info("%s id=%s sieve account=%s notify method %r not usable", msg.session_id, msg.queue_id,
                    plan.address, n.method[:100])
        return
    raw = notification(n, target, headers=headers, recipient=plan.address, hostname=ctx.config.hostname,
                       now=now, own=(plan.rcpt.address,))
    for to in target.recipients:
        how = await _send(ctx, plan, to, raw)
        logger.info("%s id=%s sieve account=%s notification to <%s> %s", msg.session_id, msg.queue_id,
                    plan.address, to, how)
    if n.fcc:
        await _fcc(ctx, msg, plan, n, raw)


async def _fcc(ctx: Any, msg: Incoming, plan: _Plan, sent: Vacation | Notify, raw: bytes) -> None:
    """RFC 8580: a copy of what was sent in the ``:fcc`` mailbox, found and created by the
    same rules as ``fileinto`` (``:specialuse``, ``:create``, else the default mailbox), with
    the ``:flags`` given or else ``\\Seen`` (the sender has read what it sent)."""
    assert sent.fcc is not None
    mailboxes = await ctx.store.list_mailboxes(plan.rcpt.account_id)
    where = FileInto(sent.fcc, create=sent.fcc_create, special_use=sent.fcc_special_use)
    box = await _mailbox_for(ctx, msg, plan, where, {m.name for m in mailboxes}, mailboxes)
    flags = frozenset(sent.fcc_flags) if sent.fcc_flags else frozenset({"\\Seen"})
    await ctx.store.deliver(raw, [DeliveryTarget(plan.rcpt.account_id, box, flags)])


async def _reject_notice(ctx: Any, msg: Incoming, plan: _Plan, rej: Reject, headers: Message, now: datetime,
                         hostname: str) -> None:
    if not msg.sender:
        # RFC 5429 §2.1.2 / §2.2.1: nobody to tell; the message is discarded.
        logger.info("%s id=%s sieve account=%s rejected a message with the null sender: discarded",
                    msg.session_id, msg.queue_id, plan.address)
        return
    recipient = plan.rcpt.address or plan.address
    if rej.extended:
        # RFC 5429 §2.1.2: ereject that cannot refuse at SMTP time sends a DSN.
        from ..outbound.dsn import RecipientReport, build_dsn

        t = now.timestamp()
        raw = build_dsn(reporting_mta=hostname, sender=msg.sender, queue_id=msg.queue_id or "sieve", arrival=t,
                        now=t, reports=[RecipientReport(address=recipient, action="failed", status="5.7.1",
                                                        diagnostic=f"550 5.7.1 {smtp_text(rej.reason)}")],
                        original=_without_return_path(plan.raw), ret="HDRS")
    else:
        raw = rejection_mdn(rej.reason, headers=headers, original=_without_return_path(plan.raw),
                            recipient=recipient, sender=msg.sender, hostname=hostname, now=now)
    how = await _send(ctx, plan, msg.sender, raw)
    logger.info("%s id=%s sieve account=%s rejection notice to <%s> %s", msg.session_id, msg.queue_id,
                plan.address, msg.sender, how)
