"""The Sieve syntax tree. Every node carries the line and column where it starts.

The parser fills ``args``/``tests``/``block``; the validator then resolves each node
against the registry and fills ``spec``, ``tags`` and ``positional`` so the interpreter
never looks at raw argument lists again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .registry import Spec

__all__ = ["Arg", "Node", "NumberArg", "Script", "StringArg", "StringListArg", "TagArg"]


@dataclass(slots=True)
class StringArg:
    value: str
    line: int
    column: int
    #: Set by the validator when the script requires "variables" and the string holds
    #: ``${``: the interpreter must expand it.
    expand: bool = False


@dataclass(slots=True)
class StringListArg:
    items: list[StringArg]
    line: int
    column: int

    @property
    def values(self) -> list[str]:
        return [s.value for s in self.items]


@dataclass(slots=True)
class NumberArg:
    value: int
    line: int
    column: int


@dataclass(slots=True)
class TagArg:
    name: str  # lowercased, with the leading ":"
    line: int
    column: int


Arg = StringArg | StringListArg | NumberArg | TagArg


@dataclass(slots=True)
class Node:
    """A command (``is_test`` False) or a test."""

    name: str
    line: int
    column: int
    is_test: bool
    args: list[Arg] = field(default_factory=list)
    tests: list[Node] = field(default_factory=list)
    block: list[Node] | None = None
    # Filled by the validator:
    spec: Spec | None = None
    tags: dict[str, Arg | None] = field(default_factory=dict)
    positional: list[Arg] = field(default_factory=list)
    #: Extension-specific data computed at compile time (parsed comparator, constants…).
    data: dict[str, Any] = field(default_factory=dict)
    #: False for the commands inside an ``if ihave`` block whose capabilities are missing:
    #: they were only parsed, never validated, and must not run (RFC 5463 §4).
    runnable: bool = True


@dataclass(slots=True)
class Script:
    """A compiled script: the validated tree plus what it requires."""

    commands: list[Node]
    required: frozenset[str]
    source_size: int
    extensions: frozenset[str]  # what the script was allowed to use (ihave answers from this)
    #: The compiled form (``postroom.sieve.compiled``), made on the first run with the registry
    #: it was made for; kept here so that caching the script caches it too.
    program: Any = None
