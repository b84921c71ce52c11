"""RFC 6609 include: include/return/global, :once, :optional, recursion and depth limits,
per-script requires and variables, and the shared budget."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from sieve_helpers import FakeHost, message, run

from postroom.sieve import (
    Limits,
    SieveLimitError,
    SieveRuntimeError,
    SieveSyntaxError,
    compile_script,
)
from postroom.sieve.api import Discard, FileInto, Keep

MSG = message("From: a@example.com", "To: b@example.org", "Subject: report")


@dataclass
class ScriptsHost(FakeHost):
    personal: dict[str, str] = field(default_factory=dict)
    global_: dict[str, str] = field(default_factory=dict)
    loads: list[tuple[str, bool]] = field(default_factory=list)

    def include(self, name: str, global_: bool) -> str | None:
        self.loads.append((name, global_))
        return (self.global_ if global_ else self.personal).get(name)


def boxes(res: object) -> list[str]:
    return [a.mailbox for a in res.actions if isinstance(a, FileInto)]  # type: ignore[attr-defined]


def test_personal_and_global() -> None:
    host = ScriptsHost(personal={"p": 'require "fileinto"; fileinto "from-personal";'},
                       global_={"p": 'require "fileinto"; fileinto "from-global";'})
    res = run('require ["include", "fileinto"]; include "p"; include :global "p"; fileinto "main";',
              msg=MSG, host=host)
    assert boxes(res) == ["from-personal", "from-global", "main"]
    assert host.loads == [("p", False), ("p", True)]


def test_include_twice_runs_twice_once_skips() -> None:
    host = ScriptsHost(personal={"inc": 'require ["variables", "include"]; global "n"; set "n" "${n}x";'})
    res = run('require ["include", "variables", "fileinto"]; global "n";'
              'include "inc"; include "inc"; include :once "inc"; fileinto "n-${n}";', msg=MSG, host=host)
    assert boxes(res) == ["n-xx"]
    assert host.loads == [("inc", False)]  # compiled once per run


def test_once_runs_first_time() -> None:
    host = ScriptsHost(personal={"a": 'require "fileinto"; fileinto "a";'})
    res = run('require "include"; include :once "a"; include :once "a";', msg=MSG, host=host)
    assert boxes(res) == ["a"]


def test_missing_script() -> None:
    host = ScriptsHost()
    with pytest.raises(SieveRuntimeError, match="personal script 'nope' does not exist"):
        run('require "include"; include "nope";', msg=MSG, host=host)
    res = run('require "include"; include :optional "nope"; discard;', msg=MSG, host=host)
    assert res.actions == [Discard()]


def test_included_script_that_does_not_compile() -> None:
    host = ScriptsHost(personal={"bad": 'fileinto "x";'})
    with pytest.raises(SieveRuntimeError, match="personal script 'bad'.*needs require"):
        run('require "include"; include :optional "bad";', msg=MSG, host=host)


def test_recursion_is_an_error() -> None:
    host = ScriptsHost(personal={"a": 'require "include"; include "b";', "b": 'require "include"; include "a";',
                                 "self": 'require "include"; include "self";'})
    with pytest.raises(SieveRuntimeError, match="includes itself"):
        run('require "include"; include "a";', msg=MSG, host=host)
    with pytest.raises(SieveRuntimeError, match="includes itself"):
        run('require "include"; include "self";', msg=MSG, host=host)


def test_personal_and_global_of_same_name_are_different_scripts() -> None:
    host = ScriptsHost(personal={"x": 'require "include"; include :global "x";'},
                       global_={"x": 'require "fileinto"; fileinto "g";'})
    assert boxes(run('require "include"; include "x";', msg=MSG, host=host)) == ["g"]


def test_depth_limit() -> None:
    host = ScriptsHost(personal={f"s{i}": f'require "include"; include "s{i + 1}";' for i in range(30)})
    with pytest.raises(SieveLimitError, match="nested deeper than 3"):
        run('require "include"; include "s0";', msg=MSG, host=host, limits=Limits(max_include_depth=3))


def test_shared_step_budget() -> None:
    loop = 'require "include"; ' + "if true { if true { if true { } } } " * 50
    host = ScriptsHost(personal={"heavy": loop})
    with pytest.raises(SieveLimitError, match="step limit"):
        run('require "include"; include "heavy"; include "heavy"; include "heavy";', msg=MSG, host=host,
            limits=Limits(max_steps=300))


def test_return() -> None:
    host = ScriptsHost(personal={"r": 'require ["include", "fileinto"]; fileinto "r1"; return; fileinto "r2";'})
    res = run('require ["include", "fileinto"]; include "r"; fileinto "main";', msg=MSG, host=host)
    assert boxes(res) == ["r1", "main"]
    res = run('require ["include", "fileinto"]; fileinto "a"; return; fileinto "b";', msg=MSG)
    assert boxes(res) == ["a"] and res.stopped


def test_stop_in_included_script_stops_everything() -> None:
    host = ScriptsHost(personal={"s": 'stop;'})
    res = run('require ["include", "fileinto"]; include "s"; fileinto "never";', msg=MSG, host=host)
    assert res.actions == [Keep(implicit=True)] and res.stopped


def test_variables_are_local_unless_global() -> None:
    host = ScriptsHost(personal={
        "child": 'require ["include", "variables", "fileinto"]; global "shared";'
                 'fileinto "child-${local}-${shared}"; set "local" "c"; set "shared" "from-child";'
                 'set "global.ns" "via-namespace";',
    })
    res = run('require ["include", "variables", "fileinto"]; set "local" "l"; global "shared"; set "shared" "s";'
              'include "child"; fileinto "main-${local}-${shared}-${global.ns}";', msg=MSG, host=host)
    assert boxes(res) == ["child--s", "main-l-from-child-via-namespace"]


def test_undeclared_global_reads_empty_and_namespace_reads_global() -> None:
    host = ScriptsHost(personal={"c": 'require ["include", "variables", "fileinto"]; '
                                      'fileinto "x-${g}-${global.g}";'})
    res = run('require ["include", "variables"]; global "g"; set "g" "G"; include "c";', msg=MSG, host=host)
    assert boxes(res) == ["x--G"]


def test_match_variables_are_per_script() -> None:
    host = ScriptsHost(personal={"c": 'require ["variables", "fileinto"]; fileinto "c-${1}";'})
    res = run('require ["include", "variables", "fileinto"]; if header :matches "subject" "re*" '
              '{ include "c"; fileinto "m-${1}"; }', msg=MSG, host=host)
    assert boxes(res) == ["c-", "m-port"]


def test_included_script_has_its_own_requires() -> None:
    host = ScriptsHost(personal={"v": 'require ["variables", "fileinto"]; set "a" "b"; fileinto "${a}";'})
    res = run('require "include"; include "v";', msg=MSG, host=host)
    assert boxes(res) == ["b"]


def test_included_scripts_share_implicit_keep_and_flags() -> None:
    host = ScriptsHost(personal={"f": 'require "imap4flags"; addflag "\\\\Flagged";'})
    res = run('require "include"; include "f";', msg=MSG, host=host)
    assert res.actions == [Keep(flags=("\\Flagged",), implicit=True)]


def test_allowed_extensions_carry_over() -> None:
    from sieve_helpers import ENVELOPE

    from postroom.sieve import evaluate

    host = ScriptsHost(personal={"v": 'require "variables"; set "a" "b";'})
    script = compile_script('require "include"; include "v";', extensions=frozenset({"include"}))
    with pytest.raises(SieveRuntimeError, match="unsupported extension 'variables'"):
        evaluate(script, MSG, ENVELOPE, host)


@pytest.mark.parametrize("script,msg", [
    ('include "x";', 'needs require "include"'),
    ('require "include"; include :personal :global "x";', "conflicts"),
    ('require "include"; include "a/b";', "not a valid script name"),
    ('require "include"; include "";', "not a valid script name"),
    ('require "include"; include ["a", "b"];', "must be a string"),
    ('require "include"; global "x";', 'needs require "variables"'),
    ('require ["include", "variables"]; global "1x";', "not a variable name"),
    ('require "variables"; global "x";', 'needs require "include"'),
    ('require "variables"; set "global.x" "y";', "not a valid variable name"),
    ('return;', 'needs require "include"'),
])
def test_compile_errors(script: str, msg: str) -> None:
    with pytest.raises(SieveSyntaxError, match=msg):
        compile_script(script)


def test_name_is_never_expanded() -> None:
    host = ScriptsHost(personal={"${n}": 'require "fileinto"; fileinto "literal";'})
    res = run('require ["include", "variables"]; set "n" "other"; include "${n}";', msg=MSG, host=host)
    assert boxes(res) == ["literal"]


def test_ihave_include() -> None:
    host = ScriptsHost(personal={"a": 'require "fileinto"; fileinto "a";'})
    res = run('require "ihave"; if ihave "include" { include "a"; }', msg=MSG, host=host)
    assert boxes(res) == ["a"]
