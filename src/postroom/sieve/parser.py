"""Sieve parser (RFC 5228 §8.2 grammar): tokens in, a tree of :class:`Node` out.

Only the grammar is checked here; whether a command exists, what it requires and what
arguments it takes is the validator's job. Nesting (blocks and tests) is bounded by
``Limits.max_nesting`` *before* recursing, and never deeper than :data:`HARD_NESTING`,
so a script of 10,000 nested ``not`` tests is a clean :class:`SieveSyntaxError` rather
than a ``RecursionError``.
"""

from __future__ import annotations

from .api import SieveSyntaxError
from .ast import Arg, Node, NumberArg, StringArg, StringListArg, TagArg
from .lexer import Kind, Token, tokenize

__all__ = ["HARD_NESTING", "parse"]

#: Whatever Limits say, the tree never gets deeper than this: validator and interpreter
#: recurse over it and Python's stack is about 1000 frames.
HARD_NESTING = 150


class _Parser:
    def __init__(self, tokens: list[Token], max_depth: int) -> None:
        self.toks = tokens
        self.i = 0
        self.max_depth = min(max_depth, HARD_NESTING)

    def peek(self) -> Token:
        return self.toks[self.i]

    def next(self) -> Token:
        t = self.toks[self.i]
        if t.kind is not Kind.EOF:
            self.i += 1
        return t

    def is_punct(self, ch: str) -> bool:
        t = self.toks[self.i]
        return t.kind is Kind.PUNCT and t.value == ch

    def expect(self, ch: str, what: str) -> Token:
        t = self.next()
        if t.kind is not Kind.PUNCT or t.value != ch:
            raise SieveSyntaxError(f"expected '{ch}' {what}, found {t.describe()}", t.line, t.column)
        return t

    def deeper(self, depth: int, t: Token) -> int:
        if depth >= self.max_depth:
            raise SieveSyntaxError(f"nesting too deep (limit {self.max_depth})", t.line, t.column)
        return depth + 1

    def commands(self, depth: int, closing: bool) -> list[Node]:
        out: list[Node] = []
        while True:
            t = self.peek()
            if t.kind is Kind.EOF:
                if closing:
                    raise SieveSyntaxError("missing '}' at end of script", t.line, t.column)
                return out
            if closing and self.is_punct("}"):
                return out
            out.append(self.command(depth))

    def command(self, depth: int) -> Node:
        t = self.next()
        if t.kind is not Kind.IDENT:
            raise SieveSyntaxError(f"expected a command, found {t.describe()}", t.line, t.column)
        node = Node(str(t.value), t.line, t.column, is_test=False)
        self.arguments(node, depth)
        end = self.next()
        if end.kind is Kind.PUNCT and end.value == ";":
            return node
        if end.kind is Kind.PUNCT and end.value == "{":
            d = self.deeper(depth, end)
            node.block = self.commands(d, closing=True)
            self.expect("}", "to close the block")
            return node
        raise SieveSyntaxError(
            f"expected ';' or '{{' after command '{t.text}', found {end.describe()}", end.line, end.column)

    def arguments(self, node: Node, depth: int) -> None:
        while True:
            t = self.peek()
            if t.kind is Kind.STRING:
                self.next()
                node.args.append(StringArg(str(t.value), t.line, t.column))
            elif t.kind is Kind.NUMBER:
                self.next()
                node.args.append(NumberArg(int(t.value), t.line, t.column))
            elif t.kind is Kind.TAG:
                self.next()
                node.args.append(TagArg(":" + str(t.value), t.line, t.column))
            elif t.kind is Kind.PUNCT and t.value == "[":
                node.args.append(self.string_list())
            else:
                break
        t = self.peek()
        if t.kind is Kind.IDENT:
            node.tests.append(self.test(self.deeper(depth, t)))
        elif t.kind is Kind.PUNCT and t.value == "(":
            d = self.deeper(depth, t)
            self.next()
            node.tests.append(self.test(d))
            while self.is_punct(","):
                self.next()
                node.tests.append(self.test(d))
            self.expect(")", "to close the test list")

    def string_list(self) -> Arg:
        open_ = self.next()
        items: list[StringArg] = []
        while True:
            t = self.next()
            if t.kind is not Kind.STRING:
                raise SieveSyntaxError(f"expected a string in the string list, found {t.describe()}",
                                       t.line, t.column)
            items.append(StringArg(str(t.value), t.line, t.column))
            sep = self.next()
            if sep.kind is Kind.PUNCT and sep.value == "]":
                return StringListArg(items, open_.line, open_.column)
            if not (sep.kind is Kind.PUNCT and sep.value == ","):
                raise SieveSyntaxError(f"expected ',' or ']' in the string list, found {sep.describe()}",
                                       sep.line, sep.column)

    def test(self, depth: int) -> Node:
        t = self.next()
        if t.kind is not Kind.IDENT:
            raise SieveSyntaxError(f"expected a test, found {t.describe()}", t.line, t.column)
        node = Node(str(t.value), t.line, t.column, is_test=True)
        self.arguments(node, depth)
        return node


def parse(text: str, max_depth: int = 64) -> list[Node]:
    """The command list of ``text``; raises :class:`SieveSyntaxError` with line and column."""
    return _Parser(tokenize(text), max_depth).commands(0, closing=False)
