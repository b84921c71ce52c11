"""RFC 5232 imap4flags: flag commands, hasflag, :flags, and the internal variable that
the implicit keep uses."""

from __future__ import annotations

import pytest
from sieve_helpers import actions

from postroom.sieve import SieveSyntaxError, compile_script
from postroom.sieve.api import FileInto, Keep

REQ = 'require ["imap4flags", "fileinto", "variables"];\n'


@pytest.mark.parametrize("script,expected", [
    ('setflag "\\\\Seen";', [Keep(flags=("\\Seen",), implicit=True)]),
    ('setflag "\\\\Seen \\\\Flagged"; removeflag "\\\\seen";', [Keep(flags=("\\Flagged",), implicit=True)]),
    ('addflag ["a", "b c"]; addflag "B d";', [Keep(flags=("a", "b", "c", "d"), implicit=True)]),
    ('addflag "a"; keep; setflag "b";', [Keep(flags=("a",))]),
    ('addflag "a"; keep :flags "x y";', [Keep(flags=("x", "y"))]),
    ('addflag "a"; fileinto "F"; addflag "b"; fileinto :flags "" "G";',
     [FileInto("F", flags=("a",)), FileInto("G")]),
    ('setflag "v" "a b"; addflag "v" "c"; fileinto "${v}";', [FileInto("a b c"), ]),
    ('setflag "v" "a"; keep;', [Keep()]),  # a named variable is not the internal one
])
def test_flag_actions(script: str, expected: list[object]) -> None:
    assert actions(REQ + script) == expected


@pytest.mark.parametrize("setup,test,expected", [
    ('setflag "\\\\Seen \\\\Answered";', 'hasflag "\\\\seen"', True),
    ('setflag "\\\\Seen";', 'hasflag :is "\\\\Flagged"', False),
    ('setflag "\\\\Seen";', 'hasflag :contains "ee"', True),
    ('setflag "\\\\Seen";', 'hasflag :matches "\\\\\\\\S*"', True),
    ('setflag "a b c";', 'hasflag :count "eq" :comparator "i;ascii-numeric" "3"', True),
    ('setflag "v" "x y";', 'hasflag "v" "y"', True),
    ('setflag "v" "x y";', 'hasflag "y"', False),
    ('setflag "v" "x"; setflag "w" "z";', 'hasflag ["v", "w"] "z"', True),
])
def test_hasflag(setup: str, test: str, expected: bool) -> None:
    req = '["imap4flags", "variables", "relational", "comparator-i;ascii-numeric"]'
    script_test = f"allof (true, {test})"
    from sieve_helpers import run

    from postroom.sieve.api import Discard

    got = run(f"require {req};\n{setup}\nif {script_test} {{ discard; }}").actions
    assert (Discard() in got) is expected


def test_variable_form_needs_variables() -> None:
    with pytest.raises(SieveSyntaxError, match='needs require "variables"'):
        compile_script('require "imap4flags"; setflag "v" "x";')
    with pytest.raises(SieveSyntaxError, match=r'needs require "imap4flags"'):
        compile_script('keep :flags "x";')


def test_invalid_flags_are_left_out_of_actions() -> None:
    from sieve_helpers import run

    res = run(REQ + 'addflag ["\\\\Seen", "a(b", "$Junk", "x\\"y"]; keep; fileinto :flags "ok (bad" "F";')
    assert res.actions == [Keep(flags=("\\Seen", "$Junk")), FileInto("F", flags=("ok",))]
    assert any("invalid flags" in line for line in res.log)
    assert run(REQ + 'addflag "a%b ok";').actions == [Keep(flags=("ok",), implicit=True)]
