"""The compiled form of a validated script: every command and test turned once into a
Python closure, so that a run calls closures instead of dispatching each node.

At delivery a script runs in its generated form (:mod:`postroom.sieve.codegen`), which
calls these closures for what it does not write out itself, and falls back to them whole
for scripts too large or too deep to generate.

Why: at delivery a 30-rule script spent more of its time in the interpreter's own
machinery (``run_block``'s dispatch by name, ``Context.test``, mime's wrapper around
header/address/exists, ``Context.strings`` rebuilding constant lists, ``Context.match``
looking up the comparator and match type per test) than in matching. Here that is
resolved once per script, and the delivery stage's compile cache keeps the compiled
:class:`~postroom.sieve.ast.Script`, and with it this form, for as long as the text is
unchanged:

- an if/elsif/else chain is one closure, a block a tuple of closures;
- ``header``, ``address`` and ``exists`` with constant names and keys (the usual case),
  an ``:is``/``:contains``/``:matches`` match and the i;ascii-casemap or i;octet
  comparator read the message's per-name caches directly; ``:is``/``:contains`` keys
  are put in comparator form at compile time and each header's values (each address
  part of an address header) folded once per message (:meth:`MessageView.memo`);
- ``header :value`` (relational) with constant names and keys compares the values in
  comparator form against keys put in that form once;
- ``allof``/``anyof``/``not``/``true``/``false`` call their compiled children;
- every other command and test runs its registered function, as the interpreter does.

The semantics are the interpreter's (``Context.run_block``), which stays for extensions
that run a block of nodes themselves (foreverypart, include, the test suite): the same
steps are counted (each command and test, and an elsif or else passed over), the clock
is read at least as often, match variables are set the same way, and errors name the
same node.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from time import monotonic
from typing import Any

from .ast import Node, StringListArg
from .match import _matches, glob_match
from .registry import Registry

__all__ = ["Program", "address_parts", "compile_program", "split_chains"]

#: Runs the compiled script (or a block of it) over a ``Context``.
Program = Callable[[Any], None]
_Test = Callable[[Any], bool]

#: Comparators whose keys the fast tests may prepare at compile time.
_FOLDING = ("i;ascii-casemap", "i;octet")


def compile_program(commands: Sequence[Node], reg: Registry) -> Program:
    """The closure that runs ``commands`` (a script's top level) as ``run_block`` would."""
    return _block(list(commands), reg)


# ------------------------------------------------------------------- commands and blocks


def _noop(ctx: Any) -> None:
    return None


def split_chains(runnable: list[Node]) -> list[list[Node]] | None:
    """The runnable nodes of a block as its units: each if with its elsif and else clauses,
    each other command alone; None when an elsif or else follows no if (the validator
    refuses this; such a block is left to the interpreter, whose "taken" flag then decides
    exactly as before)."""
    units: list[list[Node]] = []
    i = 0
    while i < len(runnable):
        node = runnable[i]
        if node.name == "if":
            j = i + 1
            while j < len(runnable) and runnable[j].name in ("elsif", "else"):
                j += 1
                if runnable[j - 1].name == "else":
                    break
            units.append(runnable[i:j])
            i = j
        elif node.name in ("elsif", "else"):
            return None
        else:
            units.append([node])
            i += 1
    return units


def _block(nodes: list[Node], reg: Registry) -> Program:
    units = split_chains([n for n in nodes if n.runnable])
    if units is None:
        def interpreted(ctx: Any) -> None:
            ctx.run_block(nodes)

        return interpreted
    fns = [_chain(unit, reg) if unit[0].name == "if" else _command(unit[0]) for unit in units]
    if not fns:
        return _noop
    if len(fns) == 1:
        return fns[0]
    seq = tuple(fns)

    def block(ctx: Any) -> None:
        for fn in seq:
            fn(ctx)

    return block


def _chain(nodes: list[Node], reg: Registry) -> Program:
    """An if with its elsif and else clauses: the first true test runs its block; every
    clause costs a step, including those passed over once a branch ran."""
    clauses: list[tuple[Node, _Test | None, Program]] = []
    for node in nodes:
        test = _test(node.tests[0], reg) if node.name != "else" else None
        if node.data.get("unvalidated_block") or node.block is None:
            body: Program = _noop
        else:
            body = _block(node.block, reg)
        clauses.append((node, test, body))
    chain = tuple(clauses)

    def run_chain(ctx: Any) -> None:
        taken = False
        for node, test, body in chain:
            ctx.steps += 1
            if ctx.steps > ctx.max_steps or monotonic() > ctx.deadline:
                ctx.over_budget(node)
            if taken:
                continue
            if test is None or test(ctx):
                taken = True
                body(ctx)

    return run_chain


def _command(node: Node) -> Program:
    assert node.spec is not None
    run = node.spec.run

    def command(ctx: Any) -> None:
        ctx.steps += 1
        if ctx.steps > ctx.max_steps or monotonic() > ctx.deadline:
            ctx.over_budget(node)
        run(ctx, node)

    return command


# ------------------------------------------------------------------- tests


def _test(node: Node, reg: Registry) -> _Test:
    spec = node.spec
    assert spec is not None
    if spec is reg.tests.get(node.name):
        fast = _FAST.get(node.name)
        made = fast(node, reg) if fast is not None else None
        if made is not None:
            return made
    run = spec.run

    def test(ctx: Any) -> bool:
        ctx.steps += 1
        if ctx.steps > ctx.max_steps or monotonic() > ctx.deadline:
            ctx.over_budget(node)
        return bool(run(ctx, node))

    return test


def _logical(node: Node, reg: Registry) -> _Test | None:
    kids = tuple(_test(t, reg) for t in node.tests)
    name = node.name

    def allof(ctx: Any) -> bool:
        ctx.steps += 1
        if ctx.steps > ctx.max_steps or monotonic() > ctx.deadline:
            ctx.over_budget(node)
        for kid in kids:
            if not kid(ctx):
                return False
        return True

    def anyof(ctx: Any) -> bool:
        ctx.steps += 1
        if ctx.steps > ctx.max_steps or monotonic() > ctx.deadline:
            ctx.over_budget(node)
        for kid in kids:
            if kid(ctx):
                return True
        return False

    def not_(ctx: Any) -> bool:
        ctx.steps += 1
        if ctx.steps > ctx.max_steps or monotonic() > ctx.deadline:
            ctx.over_budget(node)
        return not kids[0](ctx)

    return {"allof": allof, "anyof": anyof, "not": not_}[name]


def _constant(node: Node, reg: Registry) -> _Test | None:
    value = node.name == "true"

    def constant(ctx: Any) -> bool:
        ctx.steps += 1
        if ctx.steps > ctx.max_steps or monotonic() > ctx.deadline:
            ctx.over_budget(node)
        return value

    return constant


def _constants(arg: Any) -> list[str] | None:
    """The values of a string list that holds no variable, else None."""
    if not isinstance(arg, StringListArg) or any(s.expand for s in arg.items):
        return None
    return [s.value for s in arg.items]


def _plain_match(node: Node, reg: Registry) -> tuple[str, Any] | None:
    """(match type, comparator) when the node uses nothing but a comparator, a match
    type and an address part that the fast tests handle; None otherwise (``:mime``,
    ``:index``, relational match types, ``:regex``…)."""
    mt = node.data.get("match", "is")
    comp_name = node.data.get("comparator", "i;ascii-casemap")
    if mt not in ("is", "contains", "matches") or comp_name not in _FOLDING:
        return None
    if mt == "matches" and reg.match_types["matches"].fn is not _matches:
        return None
    allowed = {":" + mt, ":comparator", ":" + node.data.get("address_part", "all")}
    if any(tag not in allowed for tag in node.tags):
        return None
    return mt, reg.comparators[comp_name]


def _matcher(node: Node, mt: str, comp: Any, keys: list[str]) -> Callable[[Any, list[Any]], bool]:
    """``match(ctx, items)``: ``Context.match`` for constant keys. For ``:matches`` the
    items are the values; for ``:is``/``:contains`` they are the values already in
    comparator form (cached per message by the caller), matched against keys put in
    that form here, once."""
    if mt == "matches":
        fold = comp.casefold is not None

        def matches(ctx: Any, values: list[Any]) -> bool:
            want_vars = "variables" in ctx.required
            for v in values:
                for k in keys:
                    if monotonic() > ctx.deadline:
                        ctx.check_time(node)
                    got = glob_match(v, k, fold)
                    if got:
                        if want_vars:
                            ctx.match_vars = got
                        return True
            return False

        return matches
    prepared = tuple(comp.key(k) for k in keys)
    many = len(prepared) > 16  # then the clock is read per key too, as Context.match does

    if mt == "contains":
        def contains(ctx: Any, folded: list[Any]) -> bool:
            for kv in folded:
                if monotonic() > ctx.deadline:
                    ctx.check_time(node)
                for k in prepared:
                    if many and monotonic() > ctx.deadline:
                        ctx.check_time(node)
                    if kv.find(k) >= 0:  # not ``k in kv``: see codegen._Gen.match
                        return True
            return False

        return contains

    def is_(ctx: Any, folded: list[Any]) -> bool:
        for kv in folded:
            if monotonic() > ctx.deadline:
                ctx.check_time(node)
            for k in prepared:
                if many and monotonic() > ctx.deadline:
                    ctx.check_time(node)
                if kv == k:
                    return True
        return False

    return is_


def _fast_match(node: Node, reg: Registry) -> tuple[str, Any, tuple[str, ...],
                                                     Callable[[Any, list[Any]], bool]] | None:
    """(match type, comparator, lowercased names, matcher) for a header or address test the
    compiler does itself: constant names and keys, a plain match (:func:`_plain_match`)."""
    plain = _plain_match(node, reg)
    names = _constants(node.positional[0])
    keys = _constants(node.positional[1])
    if plain is None or names is None or keys is None:
        return None
    mt, comp = plain
    return mt, comp, tuple(n.lower() for n in names), _matcher(node, mt, comp, keys)


#: RFC 5231 §4.3 relational operators, as the interpreter's ``match.compare`` applies them to
#: the comparator's keys.
_RELOPS: dict[str, Callable[[Any, Any], bool]] = {
    "eq": operator.eq, "ne": operator.ne, "gt": operator.gt, "ge": operator.ge, "lt": operator.lt,
    "le": operator.le}


def _header_value(node: Node, reg: Registry) -> _Test | None:
    """``header :value "op"`` (RFC 5231) with constant names and keys and any comparator
    (``x-spam-score`` ``ge`` ``8`` under i;ascii-numeric, the usual first rule): the keys
    put in comparator form once; the interpreter's ``Context.match`` does the same
    comparisons (each value against each key) and reads the clock per value."""
    if node.data.get("match") != "value" or any(tag not in (":value", ":comparator") for tag in node.tags):
        return None
    comp = reg.comparators.get(node.data.get("comparator", "i;ascii-casemap"))
    op = _RELOPS.get(node.data.get("relop", ""))
    names = _constants(node.positional[0])
    keys = _constants(node.positional[1])
    if comp is None or op is None or names is None or keys is None:
        return None
    key = comp.key
    prepared = tuple(key(k) for k in keys)
    lows = tuple(n.lower() for n in names)

    def header_value(ctx: Any) -> bool:
        ctx.steps += 1
        if ctx.steps > ctx.max_steps or monotonic() > ctx.deadline:
            ctx.over_budget(node)
        msg = ctx.msg
        for low in lows:
            for v in msg.values_of(low):
                if monotonic() > ctx.deadline:
                    ctx.check_time(node)
                kv = key(v)
                for k in prepared:
                    if op(kv, k):
                        return True
        return False

    return header_value


def _header(node: Node, reg: Registry) -> _Test | None:
    fast = _fast_match(node, reg)
    if fast is None:
        return _header_value(node, reg)
    mt, comp, lows, match = fast
    key = comp.key
    by_value = mt == "matches"

    memo_keys = tuple(("header", low, key) for low in lows)  # made once, not per test

    def folded(msg: Any, low: str, memo_key: tuple[Any, ...]) -> list[Any]:
        memo = msg.memo
        got: list[Any] | None = memo.get(memo_key)
        if got is None:
            got = memo[memo_key] = [key(v) for v in msg.values_of(low)]
        return got

    if len(lows) == 1 and not by_value:
        low, memo_key = lows[0], memo_keys[0]

        def one_header(ctx: Any) -> bool:
            ctx.steps += 1
            if ctx.steps > ctx.max_steps or monotonic() > ctx.deadline:
                ctx.over_budget(node)
            msg = ctx.msg
            got = msg.memo.get(memo_key)
            return match(ctx, got if got is not None else folded(msg, low, memo_key))

        return one_header

    pairs = tuple(zip(lows, memo_keys))

    def header(ctx: Any) -> bool:
        ctx.steps += 1
        if ctx.steps > ctx.max_steps or monotonic() > ctx.deadline:
            ctx.over_budget(node)
        msg = ctx.msg
        if by_value:
            return match(ctx, [v for low in lows for v in msg.values_of(low)])
        return match(ctx, [k for low, memo_key in pairs for k in folded(msg, low, memo_key)])

    return header


def address_parts(msg: Any, low: str, parts_key: tuple[Any, ...], part: Any) -> list[str]:
    """The address part of every address in the fields named ``low`` (RFC 5228 §5.1),
    made once per message (``msg.memo[parts_key]``); also called by generated code."""
    got: list[str] | None = msg.memo.get(parts_key)
    if got is None:
        got = []
        for addrs in msg.addresses(low):
            for a in addrs:
                v = part(a.local, a.domain)
                if v is not None:
                    got.append(v)
        msg.memo[parts_key] = got
    return got


def _address(node: Node, reg: Registry) -> _Test | None:
    fast = _fast_match(node, reg)
    if fast is None:
        return None
    mt, comp, lows, match = fast
    key = comp.key
    part = reg.address_parts[node.data.get("address_part", "all")].fn
    by_value = mt == "matches"

    # Memo keys made once, not per test: (parts key, folded key) per name.
    keyed = tuple((low, ("address", low, part), ("address-key", low, part, key)) for low in lows)

    def parts_of(msg: Any, low: str, parts_key: tuple[Any, ...]) -> list[str]:
        return address_parts(msg, low, parts_key, part)

    def folded(msg: Any, low: str, parts_key: tuple[Any, ...], folded_key: tuple[Any, ...]) -> list[Any]:
        memo = msg.memo
        got: list[Any] | None = memo.get(folded_key)
        if got is None:
            got = memo[folded_key] = [key(v) for v in parts_of(msg, low, parts_key)]
        return got

    def address(ctx: Any) -> bool:
        ctx.steps += 1
        if ctx.steps > ctx.max_steps or monotonic() > ctx.deadline:
            ctx.over_budget(node)
        msg = ctx.msg
        if by_value:
            return match(ctx, [v for low, pk, _ in keyed for v in parts_of(msg, low, pk)])
        if len(keyed) == 1:
            low, pk, fk = keyed[0]
            return match(ctx, folded(msg, low, pk, fk))
        return match(ctx, [k for low, pk, fk in keyed for k in folded(msg, low, pk, fk)])

    return address


def _exists(node: Node, reg: Registry) -> _Test | None:
    names = _constants(node.positional[0])
    if names is None or node.tags:
        return None
    lows = tuple(n.lower() for n in names)

    def exists(ctx: Any) -> bool:
        ctx.steps += 1
        if ctx.steps > ctx.max_steps or monotonic() > ctx.deadline:
            ctx.over_budget(node)
        index = ctx.msg.index()
        for low in lows:
            if low not in index:
                return False
        return True

    return exists


_FAST: dict[str, Callable[[Node, Registry], _Test | None]] = {
    "allof": _logical, "anyof": _logical, "not": _logical,
    "true": _constant, "false": _constant,
    "header": _header, "address": _address, "exists": _exists,
}
