"""Compile-time checks (RFC 5228 §2.10.5, §3.2, §2.6, §2.7): ``require`` placement and
capabilities, command/test names, tagged and positional argument types, tag conflicts,
comparator and match-type compatibility, test counts and blocks, elsif/else placement.

Each node is resolved against :data:`postroom.sieve.registry.REGISTRY` and gets its
``spec``, ``tags`` and ``positional`` filled in, so the interpreter never re-checks.
Extension-specific rules live in each :class:`Spec`'s ``check`` hook.
"""

from __future__ import annotations

import re

from .api import SieveSyntaxError
from .ast import Arg, Node, NumberArg, StringArg, StringListArg, TagArg
from .registry import NUMBER, STRING, STRINGS, Registry, Spec

__all__ = ["RELATIONAL_OPS", "Checker", "decode_encoded_characters"]

RELATIONAL_OPS = frozenset({"gt", "ge", "lt", "le", "eq", "ne"})
#: Commands that must stay first (RFC 5228 §3.2) and the control structure (§3.1).
_CONTROL = frozenset({"if", "elsif", "else"})


class Checker:
    """Validates one script. ``required`` grows with ``require`` and, inside an
    ``if ihave`` block, with the capabilities that test names (RFC 5463 §4)."""

    def __init__(self, registry: Registry, allowed: frozenset[str]) -> None:
        self.reg = registry
        self.allowed = allowed
        self.required: set[str] = set()
        self.all_required: set[str] = set()

    # ------------------------------------------------------------------ helpers

    def error(self, msg: str, at: Node | Arg) -> SieveSyntaxError:
        return SieveSyntaxError(msg, at.line, at.column)

    def has(self, ext: str | None) -> bool:
        return ext is None or ext in self.required

    def constant(self, arg: Arg | None) -> str | None:
        """The value of a string argument known at compile time (no variable in it)."""
        if isinstance(arg, StringArg) and not arg.expand:
            return arg.value
        return None

    def constants(self, arg: Arg | None) -> list[str] | None:
        if isinstance(arg, StringListArg) and not any(s.expand for s in arg.items):
            return arg.values
        return None

    # ------------------------------------------------------------------ blocks

    def check_script(self, commands: list[Node]) -> None:
        seen_other = False
        for node in commands:
            if node.name == "require" and not node.is_test:
                if seen_other:
                    raise self.error("require must come before any other command", node)
                self.require(node)
            else:
                seen_other = True
        self.check_block(commands)

    def require(self, node: Node) -> None:
        if len(node.args) != 1 or node.tests or node.block is not None or not isinstance(
                node.args[0], (StringArg, StringListArg)):
            raise self.error("require takes one string list of capabilities", node)
        arg = node.args[0]
        items = arg.items if isinstance(arg, StringListArg) else [arg]
        for s in items:
            cap = s.value
            if cap not in self.allowed:
                raise self.error(f"unsupported extension '{cap}'", s)
            self.required |= self.reg.expand({cap})
        self.all_required |= self.required
        node.spec = self.reg.commands["require"]

    def check_block(self, nodes: list[Node]) -> None:
        prev: str | None = None
        for node in nodes:
            if node.name in ("elsif", "else") and prev not in ("if", "elsif"):
                raise self.error(f"'{node.name}' must follow 'if' or 'elsif'", node)
            if node.name == "require":
                if node.spec is None:  # not one of the leading requires
                    raise self.error("require must come before any other command", node)
            else:
                self.check_command(node)
            prev = node.name

    def check_command(self, node: Node) -> None:
        spec = self.reg.commands.get(node.name)
        if spec is None:
            kind = "a test, not a command" if node.name in self.reg.tests else "unknown command"
            raise self.error(f"'{node.name}' is {kind}", node)
        self.check_node(node, spec)
        if node.block is None:
            return
        ihave = self.ihave_caps(node)
        if ihave is None:
            self.check_block(node.block)
            return
        # RFC 5463 §4: the block under "if ihave" may use what ihave names; when that is not
        # available the block is parsed only, and never runs.
        if all(c in self.allowed for c in ihave):
            saved = set(self.required)
            self.required |= self.reg.expand(set(ihave))
            self.all_required |= self.required
            try:
                self.check_block(node.block)
            finally:
                self.required = saved
        else:
            node.data["unvalidated_block"] = True
            _mark_unrunnable(node.block)

    def ihave_caps(self, node: Node) -> list[str] | None:
        if node.name not in ("if", "elsif") or len(node.tests) != 1:
            return None
        t = node.tests[0]
        if t.name != "ihave" or t.spec is None:
            return None
        arg = t.positional[0] if t.positional else None
        vals = self.constants(arg)
        return vals

    def check_test(self, node: Node) -> None:
        spec = self.reg.tests.get(node.name)
        if spec is None:
            kind = "a command, not a test" if node.name in self.reg.commands else "unknown test"
            raise self.error(f"'{node.name}' is {kind}", node)
        self.check_node(node, spec)

    # ------------------------------------------------------------------ one node

    def check_node(self, node: Node, spec: Spec) -> None:
        what = "test" if node.is_test else "command"
        if not (self.has(spec.extension) or any(e in self.required for e in spec.also_enabled_by)):
            raise self.error(f"{what} '{node.name}' needs require \"{spec.extension}\"", node)
        node.spec = spec
        self.bind(node, spec, what)
        # Tests and blocks (RFC 5228 §2.9, §3.1).
        if spec.tests == 0 and node.tests:
            raise self.error(f"{what} '{node.name}' takes no test", node.tests[0])
        if spec.tests == 1 and len(node.tests) != 1:
            raise self.error(f"{what} '{node.name}' takes exactly one test", node)
        if spec.tests == "any" and not node.tests:
            raise self.error(f"{what} '{node.name}' needs a test list", node)
        if not node.is_test:
            if spec.block and node.block is None:
                raise self.error(f"command '{node.name}' needs a block", node)
            if not spec.block and node.block is not None:
                raise self.error(f"command '{node.name}' takes no block", node)
        for t in node.tests:
            self.check_test(t)
        self.check_match(node, spec)
        if spec.check is not None:
            spec.check(self, node)

    def bind(self, node: Node, spec: Spec, what: str) -> None:
        """Sort ``node.args`` into tags and positionals (RFC 5228 §2.6.2: tagged arguments
        come first), checking each tag is known, enabled, single and not in conflict."""
        tags: dict[str, Arg | None] = {}
        groups: dict[str, str] = {}
        pos: list[Arg] = []
        args = node.args
        i = 0
        while i < len(args):
            a = args[i]
            i += 1
            if not isinstance(a, TagArg):
                pos.append(a)
                continue
            if pos:
                raise self.error(f"tag {a.name} must come before the positional arguments", a)
            t = self.reg.tag_for(spec, a.name)
            if t is None:
                raise self.error(f"unknown tag {a.name} for {what} '{node.name}'", a)
            if not self.has(t.extension):
                raise self.error(f"tag {a.name} needs require \"{t.extension}\"", a)
            if a.name in tags:
                raise self.error(f"tag {a.name} given twice", a)
            if t.group is not None:
                if t.group in groups:
                    raise self.error(f"tag {a.name} conflicts with {groups[t.group]}", a)
                groups[t.group] = a.name
            value: Arg | None = None
            if t.arg is not None:
                if i >= len(args):
                    raise self.error(f"tag {a.name} needs a {t.arg} argument", a)
                value = self.coerce(args[i], t.arg, f"argument of {a.name}")
                i += 1
                self.prepare_strings(value, not t.const)
            tags[a.name] = value
        for name, value in tags.items():
            t = self.reg.tag_for(spec, name)
            assert t is not None
            for req in t.requires:
                if req not in tags:
                    raise self.error(f"tag {name} needs {req}", node)
        want = spec.positional
        missing = len(want) - len(pos)
        if missing < 0 or missing > spec.optional_leading:
            at = pos[len(want)] if missing < 0 else node
            n = len(want) - spec.optional_leading
            count = str(len(want)) if n == len(want) else f"{n} to {len(want)}"
            raise self.error(f"{what} '{node.name}' takes {count} positional argument(s), got {len(pos)}", at)
        bound: list[Arg | None] = [None] * missing
        for j, a in enumerate(pos):
            idx = j + missing
            value = self.coerce(a, want[idx], f"argument {idx + 1} of '{node.name}'")
            self.prepare_strings(value, idx not in spec.const)
            bound.append(value)
        node.tags = tags
        node.positional = bound  # type: ignore[assignment]  # None for omitted optionals

    def coerce(self, a: Arg, kind: str, what: str) -> Arg:
        if kind == NUMBER:
            if isinstance(a, NumberArg):
                return a
        elif kind == STRING:
            if isinstance(a, StringArg):
                return a
        elif kind == STRINGS:
            if isinstance(a, StringListArg):
                return a
            if isinstance(a, StringArg):
                return StringListArg([a], a.line, a.column)
        got = {NumberArg: "number", StringArg: "string", StringListArg: "string list", TagArg: "tag"}[type(a)]
        want = {NUMBER: "a number", STRING: "a string", STRINGS: "a string list"}[kind]
        raise self.error(f"{what} must be {want}, not a {got}", a)

    def prepare_strings(self, a: Arg, expandable: bool) -> None:
        items = a.items if isinstance(a, StringListArg) else [a] if isinstance(a, StringArg) else []
        for s in items:
            if "encoded-character" in self.required and "${" in s.value:
                s.value = decode_encoded_characters(s.value, self, s)
            if expandable and "variables" in self.required and "${" in s.value:
                s.expand = True

    def check_match(self, node: Node, spec: Spec) -> None:
        """COMPARATOR / MATCH-TYPE / ADDRESS-PART (RFC 5228 §2.7) resolved once here."""
        if spec.address_part:
            ap = next((n[1:] for n in node.tags if n[1:] in self.reg.address_parts
                       and n not in spec.tags), "all")
            node.data["address_part"] = ap
        if not spec.match:
            return
        mt_name = next((n[1:] for n in node.tags if n[1:] in self.reg.match_types and n not in spec.tags), "is")
        mt = self.reg.match_types[mt_name]
        node.data["match"] = mt_name
        if mt.arg is not None:
            op_arg = node.tags[":" + mt_name]
            op = self.constant(op_arg)
            if op is None or op.lower() not in RELATIONAL_OPS:
                assert op_arg is not None
                raise self.error(f"bad relational operator for :{mt_name} (gt, ge, lt, le, eq or ne)", op_arg)
            node.data["relop"] = op.lower()
        comp_arg = node.tags.get(":comparator")
        comp_name = "i;ascii-casemap"
        if comp_arg is not None:
            comp_name = self.constant(comp_arg) or ""
            comp = self.reg.comparators.get(comp_name)
            if comp is None:
                raise self.error(f"unknown comparator '{comp_name}'", comp_arg)
            if comp.extension is not None and comp.extension not in self.required:
                raise self.error(f"comparator '{comp_name}' needs require \"{comp.extension}\"", comp_arg)
            if mt.substring and not comp.substring:
                raise self.error(f"comparator '{comp_name}' cannot be used with :{mt_name}", comp_arg)
        node.data["comparator"] = comp_name
        if mt.check is not None:
            mt.check(self, node)


def _mark_unrunnable(nodes: list[Node]) -> None:
    stack = list(nodes)
    while stack:
        n = stack.pop()
        n.runnable = False
        if n.block:
            stack.extend(n.block)


_ENCODED = re.compile(r"\$\{(hex|unicode):([ \t\r\n0-9A-Fa-f]*)\}", re.IGNORECASE)
_BLANKS = re.compile(r"[ \t\r\n]+")


def decode_encoded_characters(value: str, checker: Checker | None = None, at: Arg | None = None) -> str:
    """RFC 5228 §2.4.2.4: ``${hex:...}`` octets and ``${unicode:...}`` code points.
    A sequence that does not fit the grammar is left as it is; a code point outside
    Unicode scalar values is an error (§2.4.2.4, "It is an error ...")."""

    def repl(m: re.Match[str]) -> str:
        words = [w for w in _BLANKS.split(m.group(2).strip()) if w]
        if not words:
            return m.group(0)  # the grammar needs at least one hex-pair / code point
        if m.group(1).lower() == "hex":
            if any(len(w) > 2 for w in words):
                return m.group(0)
            return bytes(int(w, 16) for w in words).decode("utf-8", "replace")
        out = []
        for w in words:
            cp = int(w.lstrip("0") or "0", 16) if len(w.lstrip("0")) <= 6 else 0x110000
            if 0xD800 <= cp <= 0xDFFF or cp > 0x10FFFF:
                if checker is not None and at is not None:
                    raise checker.error(f"invalid unicode character U+{w.upper()}", at)
                return m.group(0)
            out.append(chr(cp))
        return "".join(out)

    return _ENCODED.sub(repl, value)
