"""A syntax tree back to script text (canonical spacing, quoted strings only).

Used by the round-trip property tests (parse → unparse → parse gives the same tree)
and handy for tools that show a normalised script.
"""

from __future__ import annotations

from .ast import Arg, Node, NumberArg, StringArg, StringListArg, TagArg

__all__ = ["shape", "unparse"]


def _quote(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _arg(a: Arg) -> str:
    if isinstance(a, StringArg):
        return _quote(a.value)
    if isinstance(a, StringListArg):
        return "[" + ", ".join(_quote(s.value) for s in a.items) + "]"
    if isinstance(a, NumberArg):
        return str(a.value)
    return a.name


def _test(t: Node) -> str:
    parts = [t.name, *(_arg(a) for a in t.args)]
    if len(t.tests) == 1 and t.name == "not":
        parts.append(_test(t.tests[0]))
    elif t.tests:
        parts.append("(" + ", ".join(_test(x) for x in t.tests) + ")")
    return " ".join(parts)


def unparse(nodes: list[Node], indent: int = 0) -> str:
    pad = "  " * indent
    out = []
    for n in nodes:
        head = " ".join([n.name, *(_arg(a) for a in n.args)])
        if n.tests:
            head += " " + (_test(n.tests[0]) if len(n.tests) == 1 else "(" + ", ".join(_test(t) for t in n.tests) + ")")
        if n.block is None:
            out.append(f"{pad}{head};\n")
        else:
            out.append(f"{pad}{head} {{\n{unparse(n.block, indent + 1)}{pad}}}\n")
    return "".join(out)


def shape(nodes: list[Node]) -> list[object]:
    """The tree without positions, for comparing two parses."""
    def arg(a: Arg) -> object:
        if isinstance(a, StringListArg):
            return ("list", tuple(s.value for s in a.items))
        if isinstance(a, TagArg):
            return ("tag", a.name)
        return (type(a).__name__, a.value)

    def node(n: Node) -> object:
        return (n.name, n.is_test, tuple(arg(a) for a in n.args), tuple(node(t) for t in n.tests),
                None if n.block is None else tuple(node(b) for b in n.block))

    return [node(n) for n in nodes]
