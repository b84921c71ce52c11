"""The generated form of a validated script: one Python function per script, made once
with :func:`compile` from the tree, that runs the if/elsif/else chains and the common
tests as straight-line Python.

Why: after :mod:`postroom.sieve.compiled` a rule still cost 0.7-1.9 µs, mostly the
machinery around the match: a closure call for the chain, one for the test, one for the
matcher, the step count and the clock per node, the memo lookup through a helper. Here a
rule like ``if header :contains "subject" ["a", "b"] { … }`` is a few lines in one frame:
count the step, look up the folded values in the message's memo, loop over them with the
keys as constants.

What is generated: blocks, if/elsif/else chains, ``allof``/``anyof``/``not``/``true``/
``false`` (short-circuiting, flat: each operand guarded by the result so far), and
``header``, ``address``, ``exists`` with the constant names, keys and plain match that
:mod:`~postroom.sieve.compiled` resolves itself (``:is``/``:contains`` with at most 16
keys inline; ``:matches`` through its matcher), ``header :value`` with constant names
and keys, ``envelope`` and ``string`` with constant keys, and ``size``. Commands with
constant arguments whose registered run is the one known here (``fileinto`` without
``:specialuse``, ``setflag``/``addflag``/``removeflag`` on the internal variable) are the
few lines that run would execute, with what does not change between runs made once.
Every other test and every command calls what the closures call (``spec.run``, or the
closure :mod:`~postroom.sieve.compiled` makes for the test), so extensions and their
state are untouched.

Safety: no text from the script is ever part of the generated source. Names, keys,
nodes and helpers are passed in the function's namespace under names made here
(``_k0``, ``_k1``…); the source holds only those names, integers, and fixed code, and
runs with no builtins.

Semantics are the interpreter's (``Context.run_block``), as for the closures: the same
steps (each command and test, and each elsif or else passed over), errors at the same
node, match variables set the same way. The step count lives in a local while the code
runs and is handed to ``ctx.steps`` around every call out. The clock
(``Limits.max_cpu_seconds``) is read at each command and each if/elsif/else clause, and
inside ``:matches`` and long key lists as before; a test does not read it itself, nor per
header value: its work is a comparison of octets per value, linear in the header block
like indexing it. Scripts deeper than :data:`_MAX_DEPTH` nested blocks or tests run their
deeper parts as closures (CPython's compiler has nesting limits; a script may nest
hundreds of tests), and scripts past :data:`_MAX_LINES` run as closures altogether.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from time import monotonic
from typing import Any

# Modules, not names: core and interp are still being made when this is imported (core →
# interp → here); what the code needs of them is looked up at generation and run time.
from . import core as _core
from . import interp as _interp
from .api import FileInto
from .ast import Node, NumberArg, StringArg
from .compiled import (
    Program,
    _block,
    _constants,
    _matcher,
    _plain_match,
    _test,
    address_parts,
    split_chains,
)
from .compiled import compile_program as compile_closures
from .match import _BYTES_UPPER, casemap_key, octet_key
from .registry import Registry

__all__ = ["compile_program", "generate", "source"]

#: Indentation levels the generated code may use before a nested block or test is left to
#: its closure (CPython refuses about 100; tests and blocks add one or two each).
_MAX_DEPTH = 24

#: Generated lines past which a script keeps its closures: CPython compiles about 6 µs of
#: CPU a line (thirty rules: 600 lines, 4 ms, once per script and process), so a script
#: of thousands of rules would take seconds; its closures take a tenth of that.
_MAX_LINES = 10_000

#: More keys than this and ``:is``/``:contains`` go through the closure's matcher, which
#: reads the clock per key as ``Context.match`` does.
_MAX_INLINE_KEYS = 16


def compile_program(commands: Sequence[Node], reg: Registry) -> Program:
    """The generated function for ``commands`` (a script's top level), or the closures of
    :mod:`postroom.sieve.compiled` for a script too large to be worth compiling
    (:data:`_MAX_LINES`) or if generation fails (it should not for a validated script,
    and a failure here must not change what runs)."""
    try:
        made = generate(commands, reg)
    except Exception:  # noqa: BLE001 - any failure: the closures run the script as before
        made = None
    return made if made is not None else compile_closures(commands, reg)


def generate(commands: Sequence[Node], reg: Registry) -> Program | None:
    """The script's function, compiled from :func:`source`; None past :data:`_MAX_LINES`."""
    text, namespace = source(commands, reg)
    if text.count("\n") > _MAX_LINES:
        return None
    exec(compile(text, "<sieve script>", "exec"), namespace)  # noqa: S102 - no script text in it, see above
    program: Program = namespace["_program"]
    return program


def source(commands: Sequence[Node], reg: Registry) -> tuple[str, dict[str, Any]]:
    """The generated source and the namespace it runs in (every constant it names)."""
    gen = _Gen(reg)
    gen.emit(1, "max_steps = ctx.max_steps")
    gen.emit(1, "deadline = ctx.deadline")
    gen.emit(1, "steps = ctx.steps")
    gen.emit(1, "msg = ctx.msg")
    gen.emit(1, "memo = msg.memo")
    gen.block(list(commands), 1)
    gen.emit(1, "ctx.steps = steps")
    namespace: dict[str, Any] = dict(gen.consts)
    namespace["monotonic"] = monotonic
    namespace["__builtins__"] = {}  # the code needs none: nothing to reach from it
    return "def _program(ctx):\n" + "\n".join(gen.lines) + "\n", namespace


# ------------------------------------------------------------------- helpers the code calls


def _folded_header(msg: Any, low: str, memo_key: tuple[Any, ...], key: Callable[[str], Any]) -> list[Any]:
    """The values of the fields named ``low`` in comparator form, made once per message.

    Under i;octet and i;ascii-casemap a value of printable-ASCII-only octets on one line
    without an encoded word is its own decoded text, so its comparator form is made from
    the raw octets (stripped, letters upper-cased) without decoding to text and encoding
    back: ``key(decode_value(v))`` in fewer steps."""
    got: list[Any] | None = None
    if key is casemap_key or key is octet_key:
        got = []
        for raw in msg.index().get(low, ()):
            if not raw.isascii() or raw.find(b"\n") >= 0 or raw.find(b"\r") >= 0 or raw.find(b"=?") >= 0:
                got = None
                break
            raw = raw.strip(b" \t")
            got.append(raw.translate(_BYTES_UPPER) if key is casemap_key else raw)
    if got is None:
        got = [key(v) for v in msg.values_of(low)]
    msg.memo[memo_key] = got
    return got


def _envelope_values(ctx: Any, lows: tuple[str, ...], part: Any) -> list[str]:
    """The address part of the envelope's ``lows`` ("from", "to", "auth": the validator
    refuses other constant names), as ``core._envelope`` collects them without ``:index``."""
    got: list[str] = []
    for p in lows:
        addrs = _core.envelope_addresses(ctx.envelope, p)
        if addrs is None:
            got.append("")  # the null reverse-path
            continue
        for a in addrs:
            v = part(a.local, a.domain)
            if v is not None:
                got.append(v)
    return got


def _flagged(ctx: Any, node: Node, made: FileInto) -> FileInto:
    """A direct ``fileinto``'s action when the internal flag variable is not empty."""
    return dataclasses.replace(made, flags=_core.action_flags(ctx, node))


def _constant_strings(arg: Any) -> list[str] | None:
    """The values of a string or string list that holds no variable, else None."""
    if isinstance(arg, StringArg):
        return None if arg.expand else [arg.value]
    return _constants(arg)


def _setflag(ctx: Any, new: tuple[str, ...]) -> None:
    ctx.flags = list(new)


def _addflag(ctx: Any, new: tuple[str, ...]) -> None:
    ctx.flags = _core.normalize_flags([" ".join([*ctx.flags, *new])])


def _removeflag(ctx: Any, new: tuple[str, ...]) -> None:
    drop = {f.lower() for f in new}
    ctx.flags = [f for f in ctx.flags if f.lower() not in drop]


#: What ``_flag_command`` does on the internal variable, by command, its flags normalized.
_FLAG_OPS = {"setflag": _setflag, "addflag": _addflag, "removeflag": _removeflag}


def _folded_address(msg: Any, low: str, parts_key: tuple[Any, ...], folded_key: tuple[Any, ...],
                    part: Any, key: Callable[[str], Any]) -> list[Any]:
    got: list[Any] = [key(v) for v in address_parts(msg, low, parts_key, part)]
    msg.memo[folded_key] = got
    return got


def _over_budget(ctx: Any, nodes: tuple[Node, ...]) -> None:
    """The slow path of several steps counted at once: raises at the first node whose own
    step is past the budget (or at the first, for the clock), as one check per step would."""
    total = ctx.steps
    for i, node in enumerate(nodes):
        ctx.steps = total - (len(nodes) - 1 - i)
        ctx.over_budget(node)
    ctx.steps = total


# ------------------------------------------------------------------- the generator


class _Gen:
    def __init__(self, reg: Registry) -> None:
        self.reg = reg
        self.lines: list[str] = []
        self.consts: dict[str, Any] = {
            "_folded_header": _folded_header, "_address_parts": address_parts,
            "_folded_address": _folded_address, "_over_budget": _over_budget, "_flagged": _flagged,
            "_envelope_values": _envelope_values}
        self.chains = 0
        self.nest = 0  # tests being generated inside each other
        #: Steps counted but not yet emitted (:meth:`step`), all at ``pending_depth``.
        self.pending: list[Node] = []
        self.pending_depth = 0
        self.pending_clock = False

    def const(self, value: Any) -> str:
        """A name for ``value`` in the function's namespace: the only way anything from the
        script reaches the generated code."""
        name = f"_k{len(self.consts)}"
        self.consts[name] = value
        return name

    def emit(self, depth: int, line: str) -> None:
        self.flush()
        self.lines.append("    " * depth + line)

    def step(self, depth: int, node: Node, clock: bool) -> None:
        """A step for ``node``, raising as ``Context.step`` does when over the budget.
        Consecutive steps with nothing between them (an if, its ``not``, the test under it)
        are emitted as one addition and one check (:meth:`flush`)."""
        if self.pending and self.pending_depth != depth:
            self.flush()
        self.pending.append(node)
        self.pending_depth = depth
        self.pending_clock = self.pending_clock or clock

    def flush(self) -> None:
        nodes, depth = self.pending, self.pending_depth
        if not nodes:
            return
        pad = "    " * depth
        cond = "steps > max_steps or monotonic() > deadline" if self.pending_clock else "steps > max_steps"
        self.lines.append(f"{pad}steps += {len(nodes)}")
        if len(nodes) == 1:
            self.lines.append(f"{pad}if {cond}: ctx.steps = steps; ctx.over_budget({self.const(nodes[0])})")
        else:
            self.lines.append(f"{pad}if {cond}: ctx.steps = steps; _over_budget(ctx, {self.const(tuple(nodes))})")
        self.pending = []
        self.pending_clock = False

    def call(self, depth: int, line: str, test: bool = False) -> None:
        """A call out of the generated code (a command, a closure), which counts its own
        steps on ``ctx`` and may change the message: ``steps`` handed over and taken back,
        ``msg``/``memo`` read again after a command."""
        self.emit(depth, "ctx.steps = steps")
        self.emit(depth, line)
        self.emit(depth, "steps = ctx.steps")
        if not test:
            self.emit(depth, "msg = ctx.msg")
            self.emit(depth, "memo = msg.memo")

    # -------------------------------------------------------------- commands and blocks

    def block(self, nodes: list[Node], depth: int) -> None:
        units = split_chains([n for n in nodes if n.runnable])
        if depth > _MAX_DEPTH or units is None:
            # Too deep, or an elsif/else after no if (the validator refuses this): the
            # closures, which leave such a block to the interpreter.
            self.call(depth, f"{self.const(_block(nodes, self.reg))}(ctx)")
            return
        for unit in units:
            node = unit[0]
            if node.name == "if":
                self.chain(unit, depth)
            else:
                self.step(depth, node, clock=True)
                assert node.spec is not None
                if node.spec.run is _core._noop:
                    continue  # require (its work is done at compile time): only the step
                make = _COMMANDS.get(node.name)
                if make is None or node.spec is not self.reg.commands.get(node.name) or not make(self, node, depth):
                    self.call(depth, f"{self.const(self.bare(node.spec.run, node))}(ctx, {self.const(node)})")
        if not units:
            self.emit(depth, "pass")

    def chain(self, nodes: list[Node], depth: int) -> None:
        """An if with its elsif and else clauses, flat: each later clause counts its step
        and runs only while no earlier one was taken."""
        def body(node: Node, at: int) -> None:
            if node.data.get("unvalidated_block") or node.block is None:
                self.emit(at, "pass")
            else:
                self.block(node.block, at)

        if len(nodes) == 1:
            node = nodes[0]
            self.step(depth, node, clock=True)
            self.test(node.tests[0], depth)
            self.emit(depth, "if t:")
            body(node, depth + 1)
            return
        self.chains += 1
        taken = f"taken{self.chains}"
        self.emit(depth, f"{taken} = False")
        for k, node in enumerate(nodes):
            self.step(depth, node, clock=True)
            at = depth
            if k:
                self.emit(depth, f"if not {taken}:")
                at = depth + 1
            if node.name == "else":
                body(node, at)
                continue
            self.test(node.tests[0], at)
            self.emit(at, "if t:")
            self.emit(at + 1, f"{taken} = True")
            body(node, at + 1)

    def bare(self, run: Any, node: Node) -> Any:
        """``run`` without fcc's wrapper when the node has no ``:fcc`` (the wrapper would
        only call it: one frame less per vacation)."""
        from .ext.fcc import BARE_RUN  # here: the extensions import this package

        inner = BARE_RUN.get(run)
        return inner if inner is not None and ":fcc" not in node.tags else run

    # -------------------------------------------------------------- direct commands
    #
    # A command with constant arguments, whose registered run is the one known here, as
    # the few lines that run does for it, with what does not change between runs made
    # once (the action, the flag list). Each returns False, having emitted nothing, for
    # anything else; the generic call then runs it.

    def fileinto(self, node: Node, depth: int) -> bool:
        """``fileinto`` with a constant mailbox and constant ``:flags`` (or none), without
        ``:specialuse``: the ``FileInto`` made once (frozen), added with ``add_action``
        as ``_fileinto`` adds it (the same duplicate, conflict and limit checks)."""
        from .ext import fileinto as fileinto_ext
        from .ext import special_use

        arg = node.positional[0]
        if (special_use.WRAPPED_FILEINTO != (node.spec.run if node.spec else None, fileinto_ext._fileinto)
                or not isinstance(arg, StringArg) or arg.expand
                or any(tag not in (":copy", ":create", ":flags") for tag in node.tags)):
            return False
        copy = ":copy" in node.tags
        made = FileInto(arg.value, flags=(), copy=copy, create=":create" in node.tags, special_use=None)
        add = f"{self.const(node)}, cancels_keep={not copy}"
        if ":flags" not in node.tags:
            # No :flags: the internal variable's flags (action_flags), usually none.
            self.emit(depth, "ctx.steps = steps")
            self.emit(depth, f"ctx.add_action({self.const(made)} if not ctx.flags else "
                             f"_flagged(ctx, {self.const(node)}, {self.const(made)}), {add})")
            return True
        words = _constant_strings(node.tags[":flags"])
        if words is None:
            return False
        flags = _core.normalize_flags(words)
        good = [f for f in flags if _interp.IMAP_FLAG.fullmatch(f)]
        self.emit(depth, "ctx.steps = steps")
        if len(good) != len(flags):  # action_flags' note, made once
            note = f"{node.name}: ignoring invalid flags {[f for f in flags if f not in good]}"
            self.emit(depth, f"ctx.result.log.append({self.const(note)})")
        self.emit(depth, f"ctx.add_action({self.const(dataclasses.replace(made, flags=tuple(good)))}, {add})")
        return True

    def flag_command(self, node: Node, depth: int) -> bool:
        """``setflag``/``addflag``/``removeflag`` on the internal variable with constant
        flags: the flag list normalized once."""
        from .ext.imap4flags import _flag_command

        if node.spec is None or node.spec.run is not _flag_command or node.positional[0] is not None:
            return False
        words = _constant_strings(node.positional[1])
        if words is None:
            return False
        new = self.const(tuple(_core.normalize_flags(words)))
        self.emit(depth, f"{self.const(_FLAG_OPS[node.name])}(ctx, {new})")
        return True

    # -------------------------------------------------------------- tests

    def test(self, node: Node, depth: int) -> None:
        """Code that sets ``t`` to the test's value, counting its steps."""
        spec = node.spec
        assert spec is not None
        if depth <= _MAX_DEPTH and self.nest < _MAX_DEPTH and spec is self.reg.tests.get(node.name):
            make = _TESTS.get(node.name)
            self.nest += 1  # a not or a first operand adds no indentation, but recursion here
            try:
                if make is not None and make(self, node, depth):
                    return
            finally:
                self.nest -= 1
        # Anything else: the closure, which counts its own step and reads the clock.
        self.call(depth, f"t = {self.const(_test(node, self.reg))}(ctx)", test=True)

    def logical(self, node: Node, depth: int) -> bool:
        self.step(depth, node, clock=False)
        name = node.name
        if name == "not":
            self.test(node.tests[0], depth)
            self.emit(depth, "t = not t")
            return True
        # allof/anyof: the first operand, then each next one only while the result is open.
        self.test(node.tests[0], depth)
        guard = "if t:" if name == "allof" else "if not t:"
        for kid in node.tests[1:]:
            self.emit(depth, guard)
            self.test(kid, depth + 1)
        return True

    def constant(self, node: Node, depth: int) -> bool:
        self.step(depth, node, clock=False)
        self.emit(depth, f"t = {node.name == 'true'}")
        return True

    def exists(self, node: Node, depth: int) -> bool:
        names = _constants(node.positional[0])
        if names is None or node.tags:
            return False
        self.step(depth, node, clock=False)
        if not names:
            self.emit(depth, "t = True")  # all of no names exist
            return True
        self.emit(depth, "index = msg.index()")
        self.emit(depth, "t = " + " and ".join(f"{self.const(n.lower())} in index" for n in names))
        return True

    def size(self, node: Node, depth: int) -> bool:
        """``size :over``/``:under`` a number: ``_size`` written out."""
        limit = node.positional[0]
        if node.spec is None or node.spec.run is not _core._size or not isinstance(limit, NumberArg):
            return False
        self.step(depth, node, clock=False)
        self.emit(depth, f"t = msg.size {'>' if ':over' in node.tags else '<'} {self.const(limit.value)}")
        return True

    def envelope(self, node: Node, depth: int) -> bool:
        """``envelope`` with constant parts and keys and a plain match: the envelope's
        address parts (:func:`_envelope_values`, what ``_envelope`` collects), matched as
        ``header``'s values are."""
        got = self._plain(node)
        if got is None or node.spec is None or node.spec.run is not _core._envelope:
            return False
        mt, comp, names, keys = got
        part = self.reg.address_parts[node.data.get("address_part", "all")].fn
        self.step(depth, node, clock=False)
        values = f"_envelope_values(ctx, {self.const(tuple(n.lower() for n in names))}, {self.const(part)})"
        self.values(node, mt, comp, keys, values, depth)
        return True

    def string(self, node: Node, depth: int) -> bool:
        """``string`` (RFC 5229 §5) with constant keys and a plain match: the sources
        expanded as ``_string`` expands them (``ctx.strings``), matched as ``header``'s
        values are."""
        from .ext.variables import _string

        got = _plain_match(node, self.reg)
        keys = _constants(node.positional[1])
        if got is None or keys is None or node.spec is None or node.spec.run is not _string:
            return False
        self.step(depth, node, clock=False)
        self.values(node, got[0], got[1], keys, f"ctx.strings({self.const(node.positional[0])})", depth)
        return True

    def values(self, node: Node, mt: str, comp: Any, keys: list[str], values: str, depth: int) -> None:
        """``t`` = any of the values the expression ``values`` makes matches any key."""
        if mt == "matches":
            self.emit(depth, f"t = {self.const(_matcher(node, mt, comp, keys))}(ctx, {values})")
            return
        self.emit(depth, f"v0 = [{self.const(comp.key)}(v) for v in {values}]")
        self.match(node, mt, comp, keys, 1, depth)

    def _plain(self, node: Node) -> tuple[str, Any, list[str], list[str]] | None:
        plain = _plain_match(node, self.reg)
        names = _constants(node.positional[0])
        keys = _constants(node.positional[1])
        if plain is None or names is None or keys is None:
            return None
        return plain[0], plain[1], names, keys

    def header(self, node: Node, depth: int) -> bool:
        got = self._plain(node)
        if got is None:
            return self.header_value(node, depth)
        mt, comp, names, keys = got
        lows = [n.lower() for n in names]
        self.step(depth, node, clock=False)
        if not lows:
            self.emit(depth, "t = False")  # no values: nothing matches
            return True
        if mt == "matches":
            match = self.const(_matcher(node, mt, comp, keys))
            if len(lows) == 1:
                self.emit(depth, f"t = {match}(ctx, msg.values_of({self.const(lows[0])}))")
            else:
                self.emit(depth, f"t = {match}(ctx, [v for low in {self.const(tuple(lows))} "
                                 "for v in msg.values_of(low)])")
            return True
        key = comp.key
        key_name = self.const(key)
        for i, low in enumerate(lows):
            mk = self.const(("header", low, key))
            self.folded(depth, i, low, mk, key_name)
        self.match(node, mt, comp, keys, len(lows), depth)
        return True

    def folded(self, depth: int, i: int, low: str, mk: str, key_name: str) -> None:
        """``v<i>`` = the values of the fields named ``low`` in comparator form: the memo's,
        else made by :func:`_folded_header`, or an empty list without a call when the
        message has no such field (most tests of a script are for fields a message lacks)."""
        self.emit(depth, f"v{i} = memo.get({mk})")
        self.emit(depth, f"if v{i} is None:")
        self.emit(depth + 1, "index = msg._index")
        self.emit(depth + 1, "if index is None: index = msg.index()")
        low_name = self.const(low)
        self.emit(depth + 1, f"v{i} = _folded_header(msg, {low_name}, {mk}, {key_name}) if {low_name} in index else []")

    def header_value(self, node: Node, depth: int) -> bool:
        """``header :value "op"`` (RFC 5231) with constant names and keys: each value in
        comparator form (once per message, the memo entry ``:is`` uses) against each key
        put in that form here; anything else (``:count``, ``:regex``, ``:mime``…) is
        left to the closures."""
        if node.data.get("match") != "value" or any(tag not in (":value", ":comparator") for tag in node.tags):
            return False
        comp = self.reg.comparators.get(node.data.get("comparator", "i;ascii-casemap"))
        op = _RELOPS.get(node.data.get("relop", ""))
        names = _constants(node.positional[0])
        keys = _constants(node.positional[1])
        if comp is None or op is None or names is None or keys is None or len(keys) > _MAX_INLINE_KEYS:
            return False
        key = comp.key
        key_name = self.const(key)
        self.step(depth, node, clock=False)
        if not names or not keys:
            self.emit(depth, "t = False")
            return True
        for i, low in enumerate(n.lower() for n in names):
            mk = self.const(("header", low, key))
            self.folded(depth, i, low, mk, key_name)
        cond = " or ".join(f"kv {op} {self.const(key(k))}" for k in keys)
        self.emit(depth, "t = False")
        self.emit(depth, f"for kv in {' + '.join(f'v{i}' for i in range(len(names)))}:")
        self.emit(depth + 1, f"if {cond}:")
        self.emit(depth + 2, "t = True")
        self.emit(depth + 2, "break")
        return True

    def address(self, node: Node, depth: int) -> bool:
        got = self._plain(node)
        if got is None:
            return False
        mt, comp, names, keys = got
        lows = [n.lower() for n in names]
        part = self.reg.address_parts[node.data.get("address_part", "all")].fn
        self.step(depth, node, clock=False)
        if not lows:
            self.emit(depth, "t = False")
            return True
        part_name = self.const(part)
        if mt == "matches":
            match = self.const(_matcher(node, mt, comp, keys))
            parts = [f"_address_parts(msg, {self.const(low)}, {self.const(('address', low, part))}, {part_name})"
                     for low in lows]
            self.emit(depth, f"t = {match}(ctx, {' + '.join(parts) if len(parts) > 1 else parts[0]})")
            return True
        key = comp.key
        key_name = self.const(key)
        for i, low in enumerate(lows):
            pk = self.const(("address", low, part))
            fk = self.const(("address-key", low, part, key))
            self.emit(depth, f"v{i} = memo.get({fk})")
            self.emit(depth, f"if v{i} is None: v{i} = _folded_address(msg, {self.const(low)}, {pk}, {fk}, "
                             f"{part_name}, {key_name})")
        self.match(node, mt, comp, keys, len(lows), depth)
        return True

    def match(self, node: Node, mt: str, comp: Any, keys: list[str], lists: int, depth: int) -> None:
        """``t`` = any value of ``v0``…``v<lists-1>`` (already in comparator form) matches
        any key, for ``:is`` or ``:contains``: the keys put in comparator form here, once,
        as constants."""
        values = " + ".join(f"v{i}" for i in range(lists))
        if len(keys) > _MAX_INLINE_KEYS:
            self.emit(depth, f"t = {self.const(_matcher(node, mt, comp, keys))}(ctx, {values})")
            return
        prepared = [self.const(comp.key(k)) for k in keys]
        if mt == "contains":
            # ``kv.find(k) >= 0``, not ``k in kv``: bytes' ``in`` first tries the key as an
            # integer (``b"a" in b"abc"`` may ask for a byte value) and builds and drops a
            # formatted TypeError for every bytes key: twice the cost of the find.
            cond = " or ".join(f"kv.find({k}) >= 0" for k in prepared)
        else:
            cond = " or ".join(f"kv == {k}" for k in prepared)
        if not prepared:
            cond = "False"
        # No clock read per value: the loop is a comparison of octets per value, linear in
        # the header block like indexing it (which reads no clock either); the clock is read
        # again at the next command or clause.
        self.emit(depth, "t = False")
        self.emit(depth, f"for kv in {values}:")
        self.emit(depth + 1, f"if {cond}:")
        self.emit(depth + 2, "t = True")
        self.emit(depth + 2, "break")


#: RFC 5231 §4.3 relational operators as Python's (fixed text: the relop is one of these
#: names, checked by the validator, and only this table's values reach the source).
_RELOPS = {"eq": "==", "ne": "!=", "gt": ">", "ge": ">=", "lt": "<", "le": "<="}

_TESTS: dict[str, Callable[[_Gen, Node, int], bool]] = {
    "allof": _Gen.logical, "anyof": _Gen.logical, "not": _Gen.logical,
    "true": _Gen.constant, "false": _Gen.constant,
    "header": _Gen.header, "address": _Gen.address, "exists": _Gen.exists, "size": _Gen.size,
    "envelope": _Gen.envelope, "string": _Gen.string,
}

_COMMANDS: dict[str, Callable[[_Gen, Node, int], bool]] = {
    "fileinto": _Gen.fileinto, "setflag": _Gen.flag_command, "addflag": _Gen.flag_command,
    "removeflag": _Gen.flag_command,
}

