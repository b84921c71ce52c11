"""Pigeonhole's ``vnd.dovecot.testsuite`` extension and the runner behind
``postroom sieve testsuite FILE.svtest`` (docs/sieve.md, "Test suites").

A ``.svtest`` file is a Sieve script that requires ``vnd.dovecot.testsuite``. It sets a
message and an envelope (``test_set``), then runs named tests::

    test "Spam goes to Junk" {
        if not test_script_compile "junk.sieve" { test_fail "does not compile"; }
        if not test_script_run { test_fail "run failed"; }
        if not test_result_action :index 1 "store" { test_fail "not filed"; }
    }

Commands and tests of the extension:

- ``test NAME { … }``: a named test; ``test_fail REASON`` fails it. A runtime error in
  the block fails it too. The result (actions) is reset when each test starts.
- ``test_set "message" | "envelope.from" | "envelope.to" | "envelope.orig_to" |
  "envelope.auth" VALUE``: the message (LF line ends become CRLF) and envelope that
  scripts see from now on; ``"<>"`` is the null sender.
- ``test_script_compile PATH`` (test): compiles a script (relative to the ``.svtest``
  file) with every supported extension; ``test_script_run [:append_result]`` (test)
  runs it over the current message; its actions become the result. Its ``include``
  names are ``NAME.sieve`` files in the compiled script's directory.
- ``test_error [COMPARATOR] [MATCH-TYPE] [:index N] KEYS`` (test): the messages of the
  last compile or run failure (Postroom stops at the first error, so there is at most one).
- ``test_result_action [COMPARATOR] [MATCH-TYPE] [:index N] [:describe] KEYS`` (test):
  the result's action names (``keep``, ``store`` for fileinto, ``redirect``, ``reject``,
  ``ereject``, ``discard``, ``vacation``, ``notify``, ``addheader``, ``deleteheader``),
  the implicit keep left out, as Pigeonhole's result holds only explicit actions.
  ``:describe`` (a Postroom addition) matches whole action lines as ``postroom sieve
  test`` prints them (``fileinto :flags "\\\\Seen" "Junk"``), so a test can check the
  mailbox, flags and addresses too.
- ``test_result_reset`` (also clears the outbox); ``test_result_execute`` (test): carries
  the result out into an in-memory mail store (mailboxes, with Postroom's delivery rules:
  a missing mailbox without ``:create`` means INBOX; mailboxes persist for the whole file)
  and an outbox (redirects, vacation replies, notifications, rejection notices), then
  clears the result.
- ``test_message :smtp N`` / ``test_message :folder NAME N`` (command or test): makes
  the N-th (from 0) message sent, or stored in NAME, the current message (and, for
  ``:smtp``, its envelope the current envelope); as a test, false when there is none.
- ``test_mailbox_create [:specialuse USE] NAME`` (``:specialuse`` is a Postroom addition:
  RFC 6154 use of the new mailbox); ``test_imap_metadata_set [:mailbox NAME] ENTRY VALUE``
  (server or mailbox metadata for RFC 5490 tests); ``test_message_print``.
- ``test_config_set KEY VALUE``, ``test_config_unset KEY``, ``test_config_reload``: the
  engine limits a run gets (``sieve_max_actions``, ``sieve_max_redirects``,
  ``sieve_variables_max_variable_size``, ``sieve_max_cpu_time``); other keys are an error.

The extension exists only here: it is registered in a copy of the engine's registry, so
no stored script can ever require it.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

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
    SieveRuntimeError,
    SieveSyntaxError,
    Vacation,
)
from .ast import Node, Script
from .engine import SUPPORTED_EXTENSIONS, compile_script, evaluate
from .interp import _START_HOOKS, Context, Stop
from .message import MessageView
from .offline import OfflineHost, describe, headers_of
from .parser import parse
from .registry import NUMBER, REGISTRY, STRING, STRINGS, Registry, Spec, TagSpec
from .vacation import notification, parse_mailto, rejection_mdn, vacation_reply
from .validator import Checker

__all__ = ["EXTENSION", "Outcome", "SuiteReport", "action_name", "run_file", "run_suite"]

EXTENSION = "vnd.dovecot.testsuite"
HOSTNAME = "testsuite.invalid"

#: The test file itself may run long loops of tests; the scripts it runs get the
#: ordinary limits (or what test_config_set asks for).
SUITE_LIMITS = Limits(max_script_size=16 << 20, max_actions=10_000, max_redirects=10_000,
                      max_cpu_seconds=120.0, max_steps=10_000_000)

_CONFIG_KEYS = {
    "sieve_max_actions": "max_actions",
    "sieve_max_redirects": "max_redirects",
    "sieve_variables_max_variable_size": "max_variable_size",
    "sieve_max_cpu_time": "max_cpu_seconds",
}


class TestFailed(Exception):
    """``test_fail``: ends the current test."""


@dataclass(frozen=True, slots=True)
class Outcome:
    name: str
    passed: bool
    reason: str = ""


@dataclass(slots=True)
class SuiteReport:
    path: str
    outcomes: list[Outcome] = field(default_factory=list)
    error: str = ""  # the file did not compile, or failed outside any test

    @property
    def passed(self) -> bool:
        return not self.error and bool(self.outcomes) and all(o.passed for o in self.outcomes)


@dataclass(slots=True)
class Stored:
    raw: bytes
    flags: tuple[str, ...]


@dataclass(slots=True)
class Sent:
    sender: str
    recipient: str
    raw: bytes


@dataclass(slots=True)
class Suite:
    """One file's state (``ctx.state[EXTENSION]``)."""

    base: Path
    report: SuiteReport
    out: TextIO
    raw: bytes = b""
    sender: str = ""
    recipient: str = "recipient@example.org"
    orig_to: str = ""
    auth: str = ""
    limits: Limits = field(default_factory=Limits)
    config: dict[str, str] = field(default_factory=dict)
    compiled: Script | None = None
    script_dir: Path | None = None  # where the compiled script's ``include`` names are looked up
    errors: list[str] = field(default_factory=list)
    edited: bytes | None = None  # the last run's editheader result
    folders: dict[str, list[Stored]] = field(default_factory=lambda: {"INBOX": []})
    outbox: list[Sent] = field(default_factory=list)
    current: str = ""  # the test running

    def envelope(self) -> Envelope:
        return Envelope(self.sender, self.recipient, self.orig_to or self.recipient, self.auth)


def _suite(ctx: Context) -> Suite:
    return ctx.state[EXTENSION]  # type: ignore[no-any-return]


def _set_message(ctx: Context, raw: bytes) -> None:
    suite = _suite(ctx)
    suite.raw = raw
    ctx.msg = MessageView(raw, None)
    host = ctx.host
    if isinstance(host, OfflineHost):
        host.headers = headers_of(raw)


def _crlf(text: str) -> bytes:
    data = text.encode("utf-8")
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def _reset_result(ctx: Context, *, outbox: bool = True) -> None:
    """Clears the actions (and, unless executing, the messages sent so far: each test's
    ``test_message :smtp 0`` is the first message *it* sent). Mailboxes persist."""
    if outbox:
        _suite(ctx).outbox.clear()
    ctx.actions.clear()
    ctx.implicit_keep = True
    ctx.redirects = 0
    ctx.result.duplicate_marks.clear()
    # The duplicate extension answers one (handle, ID) once per run; a reset or an
    # execution starts the next delivery, which must ask the host again.
    ctx.state.pop("duplicate", None)
    _suite(ctx).edited = None


def action_name(action: Action) -> str:
    """The name ``test_result_action`` matches (Pigeonhole's, ``store`` for fileinto)."""
    if isinstance(action, FileInto):
        return "store"
    if isinstance(action, Reject):
        return "ereject" if action.extended else "reject"
    return {Keep: "keep", Redirect: "redirect", Discard: "discard", Vacation: "vacation", Notify: "notify",
            AddHeader: "addheader", DeleteHeader: "deleteheader"}.get(type(action), type(action).__name__.lower())


def _explicit(ctx: Context) -> list[Action]:
    return [a for a in ctx.actions if not (isinstance(a, Keep) and a.implicit)]


def _pick(ctx: Context, node: Node, values: list[str]) -> list[str]:
    index = node.tags.get(":index")
    if index is None:
        return values
    n = ctx.number(index)
    return values[n - 1:n] if 1 <= n <= len(values) else []


# ---------------------------------------------------------------- test / test_fail


def _test(ctx: Context, node: Node) -> None:
    suite = _suite(ctx)
    name = ctx.string(node.positional[0])
    suite.current = name
    _reset_result(ctx)
    outcome = Outcome(name, True)
    try:
        assert node.block is not None
        ctx.run_block(node.block)
    except TestFailed as exc:
        outcome = Outcome(name, False, str(exc))
    except Stop:
        pass  # stop ends the test's block, not the suite
    except SieveError as exc:
        outcome = Outcome(name, False, f"error: {exc}")
    except Exception as exc:  # noqa: BLE001 - a bug in the engine or here: this test fails, the others run
        outcome = Outcome(name, False, f"internal error: {type(exc).__name__}: {exc}")
    suite.current = ""
    suite.report.outcomes.append(outcome)
    print(f"{name}: {'PASS' if outcome.passed else 'FAIL: ' + outcome.reason}", file=suite.out)


def _test_fail(ctx: Context, node: Node) -> None:
    reason = ctx.string(node.positional[0])
    if not _suite(ctx).current:
        raise ctx.error(f"test_fail outside a test: {reason}", node)
    raise TestFailed(reason)


# ---------------------------------------------------------------- message and envelope


def _test_set(ctx: Context, node: Node) -> None:
    suite = _suite(ctx)
    what = ctx.string(node.positional[0]).lower()
    value = ctx.string(node.positional[1])
    if what == "message":
        _set_message(ctx, _crlf(value))
        return
    address = "" if value.strip() in ("", "<>") else value.strip().strip("<>")
    if what == "envelope.from":
        suite.sender = address
    elif what == "envelope.to":
        suite.recipient = address
    elif what == "envelope.orig_to":
        suite.orig_to = address
    elif what == "envelope.auth":
        suite.auth = address
    else:
        raise ctx.error(f"test_set: unknown item {what!r}", node)
    ctx.envelope = suite.envelope()


def _check_test_set(checker: Checker, node: Node) -> None:
    what = checker.constant(node.positional[0])
    if what is not None and what.lower() not in (
            "message", "envelope.from", "envelope.to", "envelope.orig_to", "envelope.auth"):
        raise checker.error(f"test_set: unknown item {what!r}", node)


def _test_message(ctx: Context, node: Node) -> bool:
    suite = _suite(ctx)
    n = ctx.number(node.positional[0])
    if ":smtp" in node.tags:
        if not 0 <= n < len(suite.outbox):
            return _missing(ctx, node, f"no message {n} was sent")
        sent = suite.outbox[n]
        _set_message(ctx, sent.raw)
        suite.sender, suite.recipient, suite.orig_to = sent.sender, sent.recipient, ""
        ctx.envelope = suite.envelope()
        return True
    folder = ctx.string(node.tags[":folder"])
    box = suite.folders.get("INBOX" if folder.upper() == "INBOX" else folder)
    if box is None or not 0 <= n < len(box):
        return _missing(ctx, node, f"mailbox {folder!r} has no message {n}")
    _set_message(ctx, box[n].raw)
    return True


def _missing(ctx: Context, node: Node, why: str) -> bool:
    if node.is_test:
        return False
    raise ctx.error(f"test_message: {why}", node)


def _check_test_message(checker: Checker, node: Node) -> None:
    if (":smtp" in node.tags) == (":folder" in node.tags):
        raise checker.error("test_message needs exactly one of :smtp and :folder", node)


def _test_message_print(ctx: Context, node: Node) -> None:
    suite = _suite(ctx)
    raw = ctx.msg.edited() if ctx.msg.changed else suite.raw
    print(raw.decode("utf-8", "replace").replace("\r\n", "\n"), file=suite.out)


def _test_mailbox_create(ctx: Context, node: Node) -> None:
    suite = _suite(ctx)
    name = ctx.string(node.positional[0])
    suite.folders.setdefault(name, [])
    use = node.tags.get(":specialuse")
    if use is not None and isinstance(ctx.host, OfflineHost):
        ctx.host.special_uses[name] = ctx.string(use)
    _sync_mailboxes(ctx)


def _metadata_set(ctx: Context, node: Node) -> None:
    """Pigeonhole's ``test_imap_metadata_set [:mailbox NAME] ENTRY VALUE``."""
    box = node.tags.get(":mailbox")
    mailbox = ctx.string(box) if box is not None else None
    if isinstance(ctx.host, OfflineHost):
        ctx.host.metadata_entries[(mailbox, ctx.string(node.positional[0]).lower())] = ctx.string(
            node.positional[1])


def _sync_mailboxes(ctx: Context) -> None:
    host = ctx.host
    if isinstance(host, OfflineHost):
        host.mailboxes = set(_suite(ctx).folders)


# ---------------------------------------------------------------- configuration


def _config_set(ctx: Context, node: Node) -> None:
    key = ctx.string(node.positional[0]).strip()
    if key not in _CONFIG_KEYS:
        raise ctx.error(f"test_config_set: {key!r} is not a setting Postroom's engine has", node)
    _suite(ctx).config[key] = ctx.string(node.positional[1]).strip()


def _config_unset(ctx: Context, node: Node) -> None:
    _suite(ctx).config.pop(ctx.string(node.positional[0]).strip(), None)


def _config_reload(ctx: Context, node: Node) -> None:
    suite = _suite(ctx)
    values: dict[str, Any] = {}
    for key, value in suite.config.items():
        attr = _CONFIG_KEYS[key]
        try:
            values[attr] = float(value) if attr == "max_cpu_seconds" else int(value)
        except ValueError:
            raise ctx.error(f"test_config_reload: {key} = {value!r} is not a number", node) from None
    suite.limits = replace(Limits(), **values)


# ---------------------------------------------------------------- compiling and running


def _script_compile(ctx: Context, node: Node) -> bool:
    suite = _suite(ctx)
    name = ctx.string(node.positional[0])
    suite.compiled, suite.errors = None, []
    path = suite.base / name
    try:
        text = path.read_bytes()
    except OSError as exc:
        suite.errors = [f"{name}: cannot read: {exc.strerror or exc}"]
        return False
    suite.script_dir = path.parent
    try:
        suite.compiled = compile_script(text, limits=suite.limits)
    except SieveError as exc:
        suite.errors = [str(exc)]
        return False
    return True


def _script_run(ctx: Context, node: Node) -> bool:
    suite = _suite(ctx)
    if suite.compiled is None:
        suite.errors = ["test_script_run: no script was compiled"]
        return False
    if ":append_result" not in node.tags:
        _reset_result(ctx, outbox=False)
    host = ctx.host
    assert isinstance(host, OfflineHost)
    host.script_dir = suite.script_dir or suite.base
    try:
        result = evaluate(suite.compiled, suite.raw, suite.envelope(), host, limits=suite.limits)
    except SieveError as exc:
        suite.errors = [str(exc)]
        return False
    suite.errors = []
    keep = next((a for a in result.actions if isinstance(a, Keep) and a.implicit), None)
    ctx.actions.extend(a for a in result.actions if a is not keep)
    ctx.implicit_keep = keep is not None and ctx.implicit_keep
    if keep is not None:
        ctx.flags = list(keep.flags)
    ctx.result.duplicate_marks.extend(result.duplicate_marks)
    suite.edited = result.edited
    return True


def _test_error(ctx: Context, node: Node) -> bool:
    errors = _pick(ctx, node, list(_suite(ctx).errors))
    return ctx.match(node, errors, ctx.strings(node.positional[0]))


def _result_action(ctx: Context, node: Node) -> bool:
    acts = _explicit(ctx)
    values = [describe(a) for a in acts] if ":describe" in node.tags else [action_name(a) for a in acts]
    return ctx.match(node, _pick(ctx, node, values), ctx.strings(node.positional[0]))


def _result_reset(ctx: Context, node: Node) -> None:
    _reset_result(ctx)


def _result_execute(ctx: Context, node: Node) -> bool:
    """Carries the result out as delivery would, into the in-memory store and outbox."""
    suite = _suite(ctx)
    host = ctx.host
    assert isinstance(host, OfflineHost)
    raw = suite.edited or (ctx.msg.edited() if ctx.msg.changed else suite.raw)
    headers = headers_of(suite.raw)
    now: datetime = host.now()
    todo = list(ctx.actions)
    if ctx.implicit_keep and not any(isinstance(a, Keep) and a.implicit for a in todo):
        todo.append(Keep(flags=tuple(ctx.flags), implicit=True))
    try:
        for a in todo:
            _execute(suite, host, a, raw, headers, now)
    except SieveError as exc:
        suite.errors = [str(exc)]
        return False
    for key, _seconds in ctx.result.duplicate_marks:
        host.track(key, now)
    _sync_mailboxes(ctx)
    _reset_result(ctx, outbox=False)
    return True


def _store(suite: Suite, mailbox: str, raw: bytes, flags: tuple[str, ...]) -> None:
    suite.folders.setdefault(mailbox, []).append(Stored(raw, flags))


def _execute(suite: Suite, host: OfflineHost, a: Action, raw: bytes, headers: Any, now: datetime) -> None:
    if isinstance(a, Keep):
        _store(suite, "INBOX", raw, a.flags)
    elif isinstance(a, FileInto):
        name = a.mailbox
        if a.special_use:
            name = next((m for m, u in host.special_uses.items() if u.lower() == a.special_use.lower()), name)
        if name.upper() == "INBOX":
            name = "INBOX"
        if name not in suite.folders and not a.create:
            name = "INBOX"  # Postroom's delivery: no :create, no such mailbox → INBOX
        _store(suite, name, raw, a.flags)
    elif isinstance(a, Redirect):
        suite.outbox.append(Sent(suite.sender, a.address, raw))
    elif isinstance(a, Reject):
        if suite.sender:
            notice = rejection_mdn(a.reason, headers=headers, original=raw, recipient=suite.recipient,
                                   sender=suite.sender, hostname=HOSTNAME, now=now)
            suite.outbox.append(Sent("", suite.sender, notice))
    elif isinstance(a, Vacation):
        reply = vacation_reply(a, headers=headers, recipient=suite.recipient, hostname=HOSTNAME, now=now)
        suite.outbox.append(Sent("", a.sender, reply))
        if a.fcc:
            _store(suite, a.fcc if a.fcc in suite.folders else "INBOX", reply, ("\\Seen",))
    elif isinstance(a, Notify):
        target = parse_mailto(a.method)
        if target is None:
            raise SieveRuntimeError(f"notify: cannot send to {a.method!r}")
        sent = notification(a, target, headers=headers, recipient=suite.recipient, hostname=HOSTNAME, now=now)
        for rcpt in target.recipients:
            suite.outbox.append(Sent("", rcpt, sent))
        if a.fcc:
            _store(suite, a.fcc if a.fcc in suite.folders else "INBOX", sent, ("\\Seen",))


# ---------------------------------------------------------------- registry


def _registry() -> Registry:
    """A copy of the engine's registry with the testsuite commands added."""
    reg = Registry(commands=dict(REGISTRY.commands), tests=dict(REGISTRY.tests),
                   match_types=dict(REGISTRY.match_types), comparators=dict(REGISTRY.comparators),
                   address_parts=dict(REGISTRY.address_parts), modifiers=dict(REGISTRY.modifiers),
                   extensions=dict(REGISTRY.extensions), silent=set(REGISTRY.silent))
    reg.extension(EXTENSION)
    ext = EXTENSION
    index = {":index": TagSpec(":index", NUMBER)}
    reg.command(Spec("test", False, _test, extension=ext, positional=(STRING,), block=True))
    reg.command(Spec("test_fail", False, _test_fail, extension=ext, positional=(STRING,)))
    reg.command(Spec("test_set", False, _test_set, extension=ext, positional=(STRING, STRING), const=(0,),
                     check=_check_test_set))
    where = {":smtp": TagSpec(":smtp", group="where"), ":folder": TagSpec(":folder", STRING, group="where")}
    for register in (reg.command, reg.test):
        register(Spec("test_message", False, _test_message, extension=ext, positional=(NUMBER,),
                      tags=dict(where), check=_check_test_message))
    reg.command(Spec("test_message_print", False, _test_message_print, extension=ext))
    reg.command(Spec("test_mailbox_create", False, _test_mailbox_create, extension=ext, positional=(STRING,),
                     tags={":specialuse": TagSpec(":specialuse", STRING)}))
    reg.command(Spec("test_imap_metadata_set", False, _metadata_set, extension=ext, positional=(STRING, STRING),
                     tags={":mailbox": TagSpec(":mailbox", STRING)}))
    reg.command(Spec("test_config_set", False, _config_set, extension=ext, positional=(STRING, STRING)))
    reg.command(Spec("test_config_unset", False, _config_unset, extension=ext, positional=(STRING,)))
    reg.command(Spec("test_config_reload", False, _config_reload, extension=ext,
                     tags={":extension": TagSpec(":extension", STRING)}))
    reg.test(Spec("test_script_compile", True, _script_compile, extension=ext, positional=(STRING,)))
    reg.test(Spec("test_script_run", True, _script_run, extension=ext,
                  tags={":append_result": TagSpec(":append_result")}))
    reg.test(Spec("test_error", True, _test_error, extension=ext, positional=(STRINGS,), match=True,
                  tags=dict(index)))
    reg.test(Spec("test_result_action", True, _result_action, extension=ext, positional=(STRINGS,), match=True,
                  tags={**index, ":describe": TagSpec(":describe")}))
    reg.command(Spec("test_result_reset", False, _result_reset, extension=ext))
    reg.test(Spec("test_result_execute", True, _result_execute, extension=ext))
    return reg


_REGISTRY: Registry | None = None


def _suite_registry() -> Registry:
    global _REGISTRY
    if _REGISTRY is None:
        _REGISTRY = _registry()
    return _REGISTRY


# ---------------------------------------------------------------- running a file


def _compile_suite(text: bytes, reg: Registry) -> Script:
    try:
        source = text.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SieveSyntaxError("test file is not valid UTF-8", text.count(b"\n", 0, exc.start) + 1) from None
    allowed = frozenset(SUPPORTED_EXTENSIONS) | {EXTENSION} | frozenset(reg.silent)
    commands = parse(source, SUITE_LIMITS.max_nesting)
    checker = Checker(reg, allowed)
    checker.check_script(commands)
    if EXTENSION not in checker.all_required:
        raise SieveSyntaxError(f'a test file must require "{EXTENSION}"', 1, 1)
    return Script(commands, frozenset(checker.all_required), len(text), allowed)


def run_suite(text: bytes, base: Path, *, label: str = "<suite>", out: TextIO | None = None,
              now: datetime | None = None) -> SuiteReport:
    """Run one test file's text; ``base`` is where ``test_script_compile`` paths start."""
    out = out or sys.stdout
    report = SuiteReport(label)
    reg = _suite_registry()
    try:
        script = _compile_suite(text, reg)
    except SieveError as exc:
        report.error = f"{label}: {exc}"
        print(f"{label}: does not compile: {exc}", file=out)
        return report
    suite = Suite(base=base, report=report, out=out)
    host = OfflineHost(headers_of(b""), script_dir=base, mailboxes={"INBOX"}, clock=now,
                       environment_items={"domain": "example.org", "host": HOSTNAME, "location": "MDA",
                                          "name": "Postroom", "phase": "during"})
    ctx = Context(script, b"", suite.envelope(), host, None, SUITE_LIMITS, registry=reg)
    ctx.state[EXTENSION] = suite
    for hook in _START_HOOKS:
        hook(ctx)
    try:
        ctx.run_block(script.commands)
    except Stop:
        pass
    except SieveError as exc:
        report.error = f"{label}: {exc}" + (f" (in test {suite.current!r})" if suite.current else "")
    except Exception as exc:  # noqa: BLE001 - outside any test: the file cannot go on
        report.error = f"{label}: internal error: {type(exc).__name__}: {exc}"
    if report.error:
        print(f"{label}: error: {report.error}", file=out)
    elif not report.outcomes:
        report.error = f"{label}: no tests"
        print(f"{label}: no tests", file=out)
    return report


def run_file(path: Path, *, out: TextIO | None = None, now: datetime | None = None) -> SuiteReport:
    """Run ``path`` (a ``.svtest`` file). Raises OSError when it cannot be read."""
    return run_suite(path.read_bytes(), path.parent, label=str(path), out=out, now=now)
