"""The one table of everything a script can name: commands, tests, tags, match types,
comparators, address parts, ``set`` modifiers and the extensions that provide them.

RFC 5228 core and each extension register here (see ``postroom/sieve/ext/``); the
validator and the interpreter only ever consult this table, so adding an extension
never means touching them. docs/sieve.md, "Engine layout", walks through an example.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .ast import Node
    from .interp import Context
    from .validator import Checker

__all__ = [
    "NUMBER",
    "REGISTRY",
    "STRING",
    "STRINGS",
    "AddressPart",
    "Comparator",
    "MatchType",
    "Modifier",
    "Registry",
    "Spec",
    "TagSpec",
]

#: Positional / tag argument types (RFC 5228 §2.6). STRINGS accepts a single string too.
STRING, STRINGS, NUMBER = "string", "string-list", "number"

RunCommand = Callable[["Context", "Node"], None]
RunTest = Callable[["Context", "Node"], bool]
Check = Callable[["Checker", "Node"], None]


@dataclass(frozen=True, slots=True)
class TagSpec:
    """A tagged argument (``:name`` optionally followed by one argument).

    Tags sharing a ``group`` exclude each other (two match types, ``:days`` and
    ``:seconds``…); ``requires`` names tags that must also be present (``:last`` needs
    ``:index``). ``extension`` is what the script must require to use the tag."""

    name: str
    arg: str | None = None
    group: str | None = None
    extension: str | None = None
    requires: tuple[str, ...] = ()
    #: The tag's string argument is taken literally: no variable expansion.
    const: bool = False


@dataclass(slots=True)
class Spec:
    """A command or a test."""

    name: str
    is_test: bool
    run: Callable[..., Any]
    extension: str | None = None  # None: RFC 5228 core
    positional: tuple[str, ...] = ()
    #: How many leading positionals may be left out (imap4flags ``setflag [<var>] <flags>``).
    optional_leading: int = 0
    tags: dict[str, TagSpec] = field(default_factory=dict)
    match: bool = False  # takes [COMPARATOR] [MATCH-TYPE] (RFC 5228 §2.7)
    address_part: bool = False  # takes [ADDRESS-PART] (RFC 5228 §2.7.4)
    #: Number of tests a command takes (if/elsif: 1) or, for tests, "any" ≥ 1 (allof) or 1 (not).
    tests: int | str = 0
    block: bool = False  # command takes a { block }
    #: Positional indices that are names, not text: never variable-expanded (``set``'s name).
    const: tuple[int, ...] = ()
    check: Check | None = None  # extra compile-time checks
    #: Another extension that also enables this command/test (``vacation-seconds`` → ``vacation``).
    also_enabled_by: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class MatchType:
    """``fn(value, key, comparator)`` returns a false value for no match, True, or the
    list of match variables (``:matches``, ``:regex``). ``fn`` is None for the relational
    ones, which :meth:`Context.match` handles with the operator in the tag argument."""

    name: str
    fn: Callable[..., object] | None
    extension: str | None = None
    arg: str | None = None
    substring: bool = False  # needs a comparator with substring support (RFC 4790 §4.2.2)
    ordering: bool = False  # needs a comparator with ordering
    #: Compile-time check of the node using it (``:regex`` compiles constant keys).
    check: Check | None = None


@dataclass(frozen=True, slots=True)
class Comparator:
    """RFC 4790 collation. ``key`` maps a string to what ``equal``/``order`` compare;
    ``substring`` is False when :contains/:matches make no sense (i;ascii-numeric)."""

    name: str
    key: Callable[[str], Any]
    extension: str | None = None  # None: always available (i;octet, i;ascii-casemap)
    substring: bool = True
    #: Case-folds ASCII letters only: :matches may compare casefolded copies.
    casefold: Callable[[str], str] | None = None


@dataclass(frozen=True, slots=True)
class AddressPart:
    """``fn(localpart, domain) -> str | None`` (None: this address does not match)."""

    name: str
    fn: Callable[[str, str | None], str | None]
    extension: str | None = None


@dataclass(frozen=True, slots=True)
class Modifier:
    """A ``set`` modifier (RFC 5229 §4.1): higher precedence applies first."""

    name: str
    precedence: int
    fn: Callable[[str], str]
    extension: str = "variables"


@dataclass(slots=True)
class Registry:
    commands: dict[str, Spec] = field(default_factory=dict)
    tests: dict[str, Spec] = field(default_factory=dict)
    match_types: dict[str, MatchType] = field(default_factory=dict)
    comparators: dict[str, Comparator] = field(default_factory=dict)
    address_parts: dict[str, AddressPart] = field(default_factory=dict)
    modifiers: dict[str, Modifier] = field(default_factory=dict)
    #: Extension name → the extensions requiring it also enables (``vacation-seconds`` → vacation).
    extensions: dict[str, tuple[str, ...]] = field(default_factory=dict)
    #: Capabilities ``require`` accepts without listing them (RFC 5228 §2.7.3 comparators).
    silent: set[str] = field(default_factory=set)

    def extension(self, name: str, implies: tuple[str, ...] = ()) -> None:
        self.extensions[name] = implies

    def command(self, spec: Spec) -> Spec:
        spec.is_test = False
        self.commands[spec.name] = spec
        return spec

    def test(self, spec: Spec) -> Spec:
        spec.is_test = True
        self.tests[spec.name] = spec
        return spec

    def add_tag(self, names: tuple[str, ...], tag: TagSpec, *, tests: bool = True) -> None:
        """Give existing commands (``tests=False``) or tests an extra tag (index's ``:index``)."""
        table = self.tests if tests else self.commands
        for n in names:
            table[n].tags[tag.name] = tag

    def tag_for(self, spec: Spec, name: str) -> TagSpec | None:
        """The tag ``name`` as ``spec`` accepts it, including the shared COMPARATOR,
        MATCH-TYPE and ADDRESS-PART families."""
        t = spec.tags.get(name)
        if t is not None:
            return t
        key = name[1:]
        if spec.match:
            if name == ":comparator":
                return TagSpec(":comparator", "string", "comparator", const=True)
            mt = self.match_types.get(key)
            if mt is not None:
                return TagSpec(name, mt.arg, "match-type", mt.extension, const=True)
        if spec.address_part:
            ap = self.address_parts.get(key)
            if ap is not None:
                return TagSpec(name, None, "address-part", ap.extension)
        return None

    def expand(self, names: set[str]) -> set[str]:
        """``names`` plus everything they imply."""
        out = set(names)
        todo = list(names)
        while todo:
            for imp in self.extensions.get(todo.pop(), ()):
                if imp not in out:
                    out.add(imp)
                    todo.append(imp)
        return out


REGISTRY = Registry()
