"""The interpreter: runs a validated tree over one message and collects actions.

Nothing here performs an action: :class:`Context` records them, applies RFC 5228 §2.10
(implicit keep, cancellation, duplicate suppression §4.2/§2.10.3) and the conflict rules
of reject (RFC 5429 §2.1) and vacation, and :func:`run` returns a :class:`Result`.
:func:`run` runs the script's generated form (``postroom.sieve.codegen``, or the closures
of ``postroom.sieve.compiled``), which does what :meth:`Context.run_block` does without
dispatching each node; ``run_block`` stays for the
extensions that run a block of nodes themselves (foreverypart, include) and the test suite.

Budget: every command and test costs a step (``Limits.max_steps``); a wall-clock
watchdog (``Limits.max_cpu_seconds``, measured with ``time.monotonic``) stops a script
that is slow for any other reason. The watchdog is a budget, not a semantic clock: the
date a script sees always comes from ``Host.now``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

from .api import (
    Action,
    Discard,
    Envelope,
    FileInto,
    Host,
    Keep,
    Limits,
    Redirect,
    Reject,
    Result,
    SieveError,
    SieveLimitError,
    SieveRuntimeError,
    Vacation,
)
from .ast import Arg, Node, NumberArg, Script, StringArg, StringListArg
from .codegen import compile_program
from .compiled import Program
from .match import compare, match_contains, match_is
from .message import MessageView
from .registry import REGISTRY, Comparator, Registry

__all__ = ["BudgetExceeded", "Context", "Stop", "run"]


class Stop(Exception):
    """RFC 5228 §3.3 ``stop``."""


class BudgetExceeded(SieveLimitError):
    """The step or time budget ran out (``Limits.max_steps``, ``max_cpu_seconds``). Its own
    class so that delivery, which first tries a cheap script on the event loop with a
    small budget, can tell "retry on a worker thread with the full budget" from a
    script's real error."""


#: RFC 3501 flag: an atom, or "\\" and an atom (system flags); keywords may not hold
#: atom-specials (``(){ %*"\\]`` and controls).
IMAP_FLAG = re.compile(r"\\?[^\x00-\x20\x7f(){%*\"\\\]]+")

#: Expands ``${...}`` in a string (installed by the variables extension).
Expander = Callable[["Context", str], str]


class Context:
    """Everything one evaluation can see or change. Extensions keep their own state in
    ``state`` (keyed by extension name)."""

    def __init__(self, script: Script, raw: bytes, envelope: Envelope, host: Host,
                 parsed: Any, limits: Limits, registry: Registry = REGISTRY) -> None:
        self.script = script
        self.msg = MessageView(raw, parsed)
        self.envelope = envelope
        self.host = host
        self.limits = limits
        self.reg = registry
        self.required = script.required
        self.result = Result()
        self.actions = self.result.actions
        self.implicit_keep = True
        self.variables: dict[str, str] = {}
        self.match_vars: list[str] = []
        self.state: dict[str, Any] = {}
        self.steps = 0
        self.max_steps = limits.max_steps
        self.deadline = time.monotonic() + limits.max_cpu_seconds
        self.expander: Expander | None = None
        #: imap4flags' internal variable (RFC 5232 §3): flags for keep/fileinto without :flags.
        self.flags: list[str] = []
        self.redirects = 0

    # -------------------------------------------------------------- errors and budget

    def error(self, msg: str, at: Node | Arg | None = None) -> SieveRuntimeError:
        return SieveRuntimeError(msg, at.line if at else 0, at.column if at else 0)

    def step(self, node: Node) -> None:
        self.steps += 1
        if self.steps > self.limits.max_steps:
            raise BudgetExceeded(f"step limit reached ({self.limits.max_steps})", node.line, node.column)
        if time.monotonic() > self.deadline:  # check_time, without a call per step
            self.check_time(node)

    def over_budget(self, node: Node) -> None:
        """The slow path of a compiled step (``postroom.sieve.compiled``), taken when the
        step count or the clock may be past the budget: raises as :meth:`step` does."""
        if self.steps > self.limits.max_steps:
            raise BudgetExceeded(f"step limit reached ({self.limits.max_steps})", node.line, node.column)
        self.check_time(node)

    def check_time(self, node: Node | None = None) -> None:
        if time.monotonic() > self.deadline:
            raise BudgetExceeded(f"time limit reached ({self.limits.max_cpu_seconds}s)",
                                 node.line if node else 0, node.column if node else 0)

    # -------------------------------------------------------------- arguments

    def string(self, arg: Arg | None) -> str:
        if arg is None:
            return ""
        if isinstance(arg, StringArg):
            if arg.expand and self.expander is not None:
                return self.expander(self, arg.value)
            return arg.value
        if isinstance(arg, StringListArg):
            return " ".join(self.strings(arg))
        if isinstance(arg, NumberArg):
            return str(arg.value)
        raise self.error("expected a string", arg)

    def strings(self, arg: Arg | None) -> list[str]:
        if arg is None:
            return []
        if isinstance(arg, StringListArg):
            # What self.string does for each item, without a call per item.
            expander = self.expander
            if expander is None:  # no variables: every item is its constant value
                return [s.value for s in arg.items]
            return [expander(self, s.value) if s.expand else s.value for s in arg.items]
        return [self.string(arg)]

    def number(self, arg: Arg | None, default: int = 0) -> int:
        return arg.value if isinstance(arg, NumberArg) else default

    def pos(self, node: Node, i: int) -> Arg | None:
        return node.positional[i] if i < len(node.positional) else None

    # -------------------------------------------------------------- matching

    def match(self, node: Node, values: list[str], keys: list[str]) -> bool:
        """True if any value matches any key under the node's comparator and match type
        (RFC 5228 §2.7.1); sets match variables on a successful :matches (RFC 5229 §3.2)."""
        comp = self.reg.comparators[node.data.get("comparator", "i;ascii-casemap")]
        mt_name = node.data.get("match", "is")
        if mt_name == "count":  # RFC 5231 §4.2: the number of values, compared as a number
            n = str(len(values))
            return any(compare(comp, n, k, node.data["relop"]) for k in keys)
        if mt_name == "value":
            op = node.data["relop"]
            for v in values:
                self.check_time(node)
                if any(compare(comp, v, k, op) for k in keys):
                    return True
            return False
        mt = self.reg.match_types[mt_name]
        assert mt.fn is not None
        if mt.fn is match_is or mt.fn is match_contains:
            # The keys' comparator forms are computed once per node (constant keys: once
            # per script), each value's once per test instead of once per key.
            prepared = _prepared_keys(node, comp, keys)
            fold = comp.key
            contains = mt.fn is match_contains
            many = len(prepared) > 16  # then the clock is read per key too, as below
            for v in values:
                self.check_time(node)
                kv = fold(v)
                for k in prepared:
                    if many:
                        self.check_time(node)
                    # find, not ``k in kv``: for bytes ``in`` builds and drops a TypeError
                    # per key (it first tries the key as a byte value).
                    if (kv.find(k) >= 0) if contains else (kv == k):
                        return True
            return False
        for v in values:
            for k in keys:
                self.check_time(node)
                got = mt.fn(v, k, comp)
                if got:
                    if isinstance(got, list) and "variables" in self.required:
                        self.match_vars = got
                    return True
        return False

    # -------------------------------------------------------------- actions

    def add_action(self, action: Action, node: Node, *, cancels_keep: bool = True) -> None:
        """Record an action. Identical repeats collapse into one (RFC 5228 §2.10.3, §4.2);
        reject and vacation conflicts are runtime errors so delivery falls back to
        implicit keep."""
        if action in self.actions:
            if cancels_keep:
                self.implicit_keep = False
            return
        _check_conflicts(self, action, node)
        if isinstance(action, Redirect):
            if any(isinstance(a, Redirect) and a.address.lower() == action.address.lower() for a in self.actions):
                if not action.copy:
                    self.implicit_keep = False
                return  # RFC 5228 §4.2: a second redirect to the same address is ignored
            self.redirects += 1
            if self.redirects > self.limits.max_redirects:
                raise SieveLimitError(f"too many redirects (limit {self.limits.max_redirects})",
                                      node.line, node.column)
        if isinstance(action, (Keep, FileInto)):
            # RFC 5228 §2.10.3: keep twice (or fileinto the same mailbox twice) is one action;
            # RFC 5232 §3: the flags of the last one win.
            for i, a in enumerate(self.actions):
                if type(a) is type(action) and _same_target(a, action):
                    self.actions[i] = action
                    if cancels_keep:
                        self.implicit_keep = False
                    return
        if len([a for a in self.actions if not isinstance(a, Discard)]) >= self.limits.max_actions:
            raise SieveLimitError(f"too many actions (limit {self.limits.max_actions})", node.line, node.column)
        self.actions.append(action)
        if cancels_keep:
            self.implicit_keep = False

    # -------------------------------------------------------------- running

    def run_block(self, nodes: list[Node]) -> None:
        taken = True  # whether the if/elsif chain being walked already ran a branch
        for node in nodes:
            if not node.runnable:
                continue
            self.step(node)
            name = node.name
            if name == "if" or (name == "elsif" and not taken):
                taken = self.test(node.tests[0])
                if taken and not node.data.get("unvalidated_block"):
                    assert node.block is not None
                    self.run_block(node.block)
            elif name == "elsif":
                pass  # an earlier branch of this chain ran
            elif name == "else":
                if not taken:
                    assert node.block is not None
                    self.run_block(node.block)
                taken = True
            else:
                assert node.spec is not None
                node.spec.run(self, node)

    def test(self, node: Node) -> bool:
        self.step(node)
        assert node.spec is not None
        return bool(node.spec.run(self, node))


def _prepared_keys(node: Node, comp: Comparator, keys: list[str]) -> list[Any]:
    """``comp.key`` of each key, kept on the node with the keys it was made from. A
    compiled script is shared by threads: the entry is one tuple, replaced whole, and
    checked against the keys before use (a variable key that changed recomputes it)."""
    cached = node.data.get("_prepared_keys")
    if cached is not None and cached[0] is comp and cached[1] == keys:
        prepared: list[Any] = cached[2]
        return prepared
    prepared = [comp.key(k) for k in keys]
    node.data["_prepared_keys"] = (comp, list(keys), prepared)
    return prepared


def _same_target(a: Action, b: Action) -> bool:
    if isinstance(a, FileInto) and isinstance(b, FileInto):
        return a.mailbox == b.mailbox and a.copy == b.copy
    return True  # Keep vs Keep


def _check_conflicts(ctx: Context, action: Action, node: Node) -> None:
    """RFC 5429 §2.1: reject/ereject cannot be combined with keep, fileinto, redirect
    (without :copy as well), vacation or another reject; RFC 5230 §4.6: one vacation."""
    def conflict(msg: str) -> SieveRuntimeError:
        return SieveRuntimeError(msg, node.line, node.column)

    others = ctx.actions
    if isinstance(action, Reject):
        if any(isinstance(a, Reject) for a in others):
            raise conflict("only one reject or ereject may be executed")
        bad = next((a for a in others if isinstance(a, (Keep, FileInto, Redirect, Vacation))), None)
        if bad is not None:
            raise conflict(f"reject cannot be combined with {type(bad).__name__.lower()}")
    elif any(isinstance(a, Reject) for a in others) and isinstance(action, (Keep, FileInto, Redirect, Vacation)):
        raise conflict(f"{type(action).__name__.lower()} cannot be combined with reject")
    if isinstance(action, Vacation) and any(isinstance(a, Vacation) for a in others):
        raise conflict("only one vacation action may be executed")


def run(script: Script, raw: bytes, envelope: Envelope, host: Host, parsed: Any, limits: Limits) -> Result:
    try:
        # Before the Context, so before its clock starts: a script's first run makes its
        # generated form (a few ms for thirty rules), which is no part of this run's budget.
        program = program_of(script, REGISTRY)
    except Exception as e:
        raise SieveRuntimeError(f"internal error while compiling the script: {type(e).__name__}: {e}") from e
    ctx = Context(script, raw, envelope, host, parsed, limits)
    for hook in _START_HOOKS:
        hook(ctx)
    try:
        program(ctx)
    except Stop:
        ctx.result.stopped = True  # delivery skips the scripts after this one
    except SieveError:
        raise
    except RecursionError as e:
        raise SieveLimitError("script nesting too deep") from e
    except Exception as e:
        raise SieveRuntimeError(f"internal error while running the script: {type(e).__name__}: {e}") from e
    if ctx.implicit_keep:
        ctx.actions.append(Keep(flags=tuple(f for f in ctx.flags if IMAP_FLAG.fullmatch(f)), implicit=True))
    if ctx.msg.changed:
        ctx.result.edited = ctx.msg.edited()
    return ctx.result


def program_of(script: Script, reg: Registry = REGISTRY) -> Program:
    """The script's compiled form for ``reg``, made once and kept on the script (a race
    between threads makes it twice, and either is right)."""
    made = script.program
    if made is not None and made[0] is reg:
        return made[1]  # type: ignore[no-any-return]
    program = compile_program(script.commands, reg)
    script.program = (reg, program)
    return program


#: Called with each new Context before the script runs (extensions set up their state).
_START_HOOKS: list[Callable[[Context], None]] = []


def on_start(hook: Callable[[Context], None]) -> None:
    _START_HOOKS.append(hook)
