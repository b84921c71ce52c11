"""RFC 5229 variables, RFC 5228 §2.4.2.4 encoded-character, and the match variables
set by :matches (RFC 5229 §3.2)."""

from __future__ import annotations

import pytest
from sieve_helpers import actions, message, run

from postroom.sieve import Limits, SieveLimitError, SieveSyntaxError, compile_script
from postroom.sieve.api import FileInto


def filed(script: str, msg: bytes | None = None, **kw: object) -> list[str]:
    head = 'require ["fileinto", "variables"];\n'
    got = actions(head + script, msg, **kw) if msg is not None else actions(head + script, **kw)
    return [a.mailbox for a in got if isinstance(a, FileInto)]


@pytest.mark.parametrize("mods,value,expected", [
    (":lower", "HeLLo", "hello"),
    (":upper", "HeLLo", "HELLO"),
    (":lowerfirst", "HELLO", "hELLO"),
    (":upperfirst", "hello", "Hello"),
    (":upperfirst :lower", "HELLO", "Hello"),  # :lower (40) before :upperfirst (30)
    (":quotewildcard", "a*b?c\\\\d", "a\\*b\\?c\\\\d"),
    (":length", "abcdé", "5"),
    (":length :upper", "abc", "3"),
    ("", "plain", "plain"),
])
def test_set_modifiers(mods: str, value: str, expected: str) -> None:
    got = filed(f'set {mods} "v" "{value}"; fileinto "${{v}}";')
    assert got == [expected]


def test_expansion_rules() -> None:
    assert filed('set "a" "x"; fileinto "${a}";') == ["x"]
    assert filed('set "A" "x"; fileinto "${a}-${A}";') == ["x-x"]
    assert filed('fileinto "[${nope}]";') == ["[]"]
    # An expanded value is not expanded again (§3).
    assert filed('set "a" "${b}"; set "b" "q"; fileinto "<${a}>";') == ["<>"]
    assert filed('set "b" "q"; set "a" "$${b}}"; fileinto "${a}";') == ["$q}"]
    # Not a reference: left alone.
    assert filed('fileinto "${}${1a}${a-b}$x";') == ["${}${1a}${a-b}$x"]


def test_match_variables() -> None:
    msg = message("Subject: [list] Hello there world", "From: alice@example.com")
    got = filed('if header :matches "subject" "[*] * * *" { fileinto "${0}|${1}|${2}|${3}|${4}|${5}"; }', msg)
    assert got == ["[list] Hello there world|list|Hello|there|world|"]
    got = filed('if address :matches "from" "?*@*.*" { fileinto "${1}-${2}-${3}-${4}"; }', msg)
    assert got == ["a-lice-example-com"]
    # A failed :matches keeps the previous values; :is does not touch them.
    got = filed('if header :matches "subject" "[*]*" {} if header :matches "subject" "nomatch*" {}'
                ' if header :is "subject" "x" {} fileinto "${1}";', msg)
    assert got == ["list"]


def test_string_test() -> None:
    base = 'require ["variables", "relational", "comparator-i;ascii-numeric"]; set "e" ""; set "x" "abc"; '
    assert run(base + 'if string :is "${x}" "abc" { discard; }').actions[0].__class__.__name__ == "Discard"
    assert run(base + 'if string :count "eq" :comparator "i;ascii-numeric" ["${x}", "${e}", "z"] "2"'
               ' { discard; }').actions[0].__class__.__name__ == "Discard"
    assert run(base + 'if string :matches "${x}" "a?c" { discard; }').actions[0].__class__.__name__ == "Discard"


def test_set_checks() -> None:
    with pytest.raises(SieveSyntaxError, match="not a valid variable name"):
        compile_script('require "variables"; set "a-b" "x";')
    with pytest.raises(SieveSyntaxError, match="conflicts"):
        compile_script('require "variables"; set :lower :upper "a" "x";')
    with pytest.raises(SieveSyntaxError, match='needs require "variables"'):
        compile_script('set "a" "b";')
    # Without the extension "${a}" is just text.
    assert actions('require "fileinto"; fileinto "${a}";') == [FileInto("${a}")]


def test_variable_limits() -> None:
    got = filed('set "a" "0123456789"; set "b" "${a}${a}${a}"; fileinto "${b}";', limits=Limits(max_variable_size=25))
    assert got == ["0123456789012345678901234"]
    got = filed('set "a" "ééé"; fileinto "${a}";', limits=Limits(max_variable_size=5))
    assert got == ["éé"]  # cut on a character boundary
    with pytest.raises(SieveLimitError, match="too many variables"):
        run('require "variables";' + "".join(f'set "v{i}" "x";' for i in range(5)), limits=Limits(max_variables=4))


@pytest.mark.parametrize("text,expected", [
    ("${hex:41 42}", "AB"),
    ("${HEX: 34 }", "4"),
    ("${hex:e2 9c 93}", "✓"),
    ("${unicode:2713}", "✓"),
    ("${Unicode: 41 1F600 }", "A😀"),
    ("${hex:}", "${hex:}"),
    ("${hex:123}", "${hex:123}"),
    ("${hex:zz}", "${hex:zz}"),
    ("x${hex:41}y${unicode:42}z", "xAyBz"),
])
def test_encoded_character(text: str, expected: str) -> None:
    got = actions(f'require ["fileinto", "encoded-character"]; fileinto "{text}";')
    assert got == [FileInto(expected)]


def test_encoded_character_needs_require_and_valid_code_points() -> None:
    assert actions('require "fileinto"; fileinto "${hex:41}";') == [FileInto("${hex:41}")]
    with pytest.raises(SieveSyntaxError, match="invalid unicode"):
        compile_script('require ["fileinto", "encoded-character"]; fileinto "${unicode:D800}";')


def test_encoded_character_before_variables() -> None:
    # "${hex:24}{a}" decodes to "${a}", which variables then expands (§2.4.2.4 comes first).
    got = actions('require ["fileinto", "encoded-character", "variables"]; set "a" "v"; fileinto "${hex:24}{a}";')
    assert got == [FileInto("v")]
