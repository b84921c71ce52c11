"""draft-ietf-sieve-regex :regex and :quoteregex: ERE semantics, comparators, match
variables, and the bounds that keep a hostile pattern from hanging delivery."""

from __future__ import annotations

import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sieve_helpers import message, run, truth

from postroom.sieve import (
    Limits,
    SieveLimitError,
    SieveRuntimeError,
    SieveSyntaxError,
    compile_script,
)
from postroom.sieve.api import FileInto
from postroom.sieve.ext.regex import (
    MAX_PATTERN,
    PatternError,
    compile_pattern,
    quote_regex,
)

MSG = message("From: Alice <alice@example.com>", "To: bob@example.org", "Subject: [list-x] Report 2026-03",
              "X-Code: abc123DEF")


@pytest.mark.parametrize("test,expected", [
    ('header :regex "subject" "report"', True),  # unanchored, case-insensitive by default
    ('header :regex :comparator "i;octet" "subject" "report"', False),
    ('header :regex :comparator "i;octet" "subject" "Report"', True),
    ('header :regex "subject" "^\\\\[list-[a-z]+\\\\]"', True),
    ('header :regex "subject" "^report"', False),
    ('header :regex "subject" "[0-9]{4}-[0-9]{2}$"', True),
    ('header :regex "x-code" "^[[:alpha:]]+[[:digit:]]+[[:upper:]]+$"', True),
    ('header :regex "x-code" "^[[:alpha:]]{2}[[:digit:]]"', False),
    ('header :regex "subject" ["nope", "x\\\\]"]', True),
    ('address :regex :domain "from" "example\\\\.(com|org)"', True),
    ('address :regex :localpart "from" "^a.i"', True),
    ('not header :regex "x-missing" ".*"', True),
    ('header :regex "subject" "(a|ab)(c|bcd)"', False),
])
def test_regex(test: str, expected: bool) -> None:
    assert truth(test, '"regex"', msg=MSG) is expected


def test_match_variables() -> None:
    script = '''require ["regex", "variables", "fileinto"];
    if header :regex "subject" "^\\\\[([a-z-]+)\\\\] ([A-Za-z]+) ([0-9]+)(-x)?" {
        fileinto "${1}/${2}/${3}/${4}/${0}";
    }'''
    assert run(script, msg=MSG).actions == [FileInto("list-x/Report/2026//[list-x] Report 2026")]


def test_posix_leftmost_longest() -> None:
    # POSIX: the longest match wins where Python's re takes the first alternative.
    res = run('require ["regex", "variables", "fileinto"]; '
              'if string :regex "abcd" "(a|ab)(c|bcd)(d*)" { fileinto "${0}-${1}-${2}-${3}"; }')
    assert res.actions[0].mailbox.startswith("abcd-")  # type: ignore[attr-defined]


def test_quoteregex() -> None:
    assert quote_regex("a.b*c[d]^$|(x)+?{1}\\") == "a\\.b\\*c\\[d\\]\\^\\$\\|\\(x\\)\\+\\?\\{1\\}\\\\"
    script = '''require ["regex", "variables", "fileinto"];
    set :quoteregex "q" "[list-x]";
    if header :regex "subject" "^${q} " { fileinto "yes"; }'''
    assert run(script, msg=MSG).actions == [FileInto("yes")]


@pytest.mark.parametrize("script,msg", [
    ('require "regex"; if header :regex "subject" "(" { keep; }', "bad regular expression"),
    ('require "regex"; if header :regex "subject" ["ok", "a{2,1}"] { keep; }', "bad interval"),
    ('require "regex"; if header :regex "subject" "a{999}" { keep; }', "bad interval"),
    ('require "regex"; if header :regex "subject" "(?=x)" { keep; }', "not part of POSIX"),
    ('require "regex"; if header :regex "subject" "(?i)x" { keep; }', "not part of POSIX"),
    ('require "regex"; if header :regex "subject" "(abc){e<=1}" { keep; }', "must start an interval"),
    ('require "regex"; if header :regex "subject" "[[:alpha:" { keep; }', "unterminated"),
    ('if header :regex "subject" "x" { keep; }', 'needs require "regex"'),
    (('require ["regex", "comparator-i;ascii-numeric"]; '
      'if header :regex :comparator "i;ascii-numeric" "subject" "1" { keep; }'), "cannot be used with :regex"),
    ('require ["regex", "relational"]; if header :regex :count "eq" "subject" "1" { keep; }', "conflicts"),
    ('require "variables"; set :quoteregex "a" "b";', 'needs require "regex"'),
    ('require ["regex", "variables"]; set :quoteregex :quotewildcard "a" "b";', "conflicts"),
])
def test_compile_errors(script: str, msg: str) -> None:
    with pytest.raises(SieveSyntaxError, match=msg):
        compile_script(script)


def test_pattern_length_bound() -> None:
    with pytest.raises(SieveSyntaxError, match="longer than"):
        compile_script('require "regex"; if header :regex "subject" "' + "a" * (MAX_PATTERN + 1) + '" { keep; }')


def test_expansion_bound() -> None:
    """Nested intervals the module would unroll for half a minute are refused at once."""
    start = time.monotonic()
    for pattern in ("((a{255}){255}){255}", "(a{255}){255}(b{255}){255}"):
        with pytest.raises(SieveSyntaxError, match="too complex"):
            compile_script('require "regex"; if header :regex "subject" "' + pattern + '" { keep; }')
    compile_script('require "regex"; if header :regex "subject" "(a{255}){255}" { keep; }')  # 65025: allowed
    assert time.monotonic() - start < 2.0


def test_runtime_bad_pattern_is_runtime_error() -> None:
    with pytest.raises(SieveRuntimeError, match="bad regular expression"):
        run('require ["regex", "variables"]; set "p" "(x"; if header :regex "subject" "${p}" { keep; }', msg=MSG)


def test_catastrophic_pattern_ends_within_budget() -> None:
    """A pattern the backtracking engine cannot finish in hours: the run stops with a
    limit error inside the script's time budget."""
    limits = Limits(max_cpu_seconds=0.5)
    msg = message("Subject: " + "a" * 60 + "c")
    start = time.monotonic()
    with pytest.raises(SieveLimitError):
        run('require "regex"; if header :regex "subject" "(a{1,30}){1,30}b" { discard; }', msg=msg, limits=limits)
    assert time.monotonic() - start < 2.0  # budget 0.5 s; the module overshoots a little, never hangs


def test_catastrophic_pattern_from_variable() -> None:
    limits = Limits(max_cpu_seconds=0.3)
    msg = message("Subject: " + "a" * 60 + "c")
    start = time.monotonic()
    with pytest.raises(SieveLimitError):
        run('require ["regex", "variables"]; set "p" "(a{1,20}){1,20}b"; '
            'if header :regex "subject" "${p}" { discard; }', msg=msg, limits=limits)
    assert time.monotonic() - start < 1.5


def test_ihave_regex() -> None:
    res = run('require ["ihave", "fileinto"]; if ihave "regex" { if header :regex "subject" "^\\\\[" '
              '{ fileinto "lists"; } }', msg=MSG)
    assert res.actions == [FileInto("lists")]


# ------------------------------------------------------------------ properties

_ALPHABET = st.sampled_from(list("ab()[]{}*+?|^$.\\,:0123456789-") + ["[:alpha:]", "{1,3}", "(?"])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_ALPHABET, max_size=30).map("".join), st.text(alphabet="abc01", max_size=40))
def test_any_pattern_compiles_or_is_refused_and_never_hangs(pattern: str, value: str) -> None:
    """Whatever the pattern: a compile error naming :regex, or a run that ends (matching
    or not, or a limit) well within the budget; never another exception."""
    script = 'require ["regex", "variables"]; if string :regex "${v}" "' + pattern.replace("\\", "\\\\").replace(
        '"', '\\"') + '" { discard; }'
    try:
        compiled = compile_script(script)
    except SieveSyntaxError as e:
        assert ":regex" in e.message or "unsupported" in e.message or "string" in e.message
        return
    from sieve_helpers import ENVELOPE, FakeHost

    from postroom.sieve import evaluate

    limits = Limits(max_cpu_seconds=0.5)
    start = time.monotonic()
    src = 'require ["regex", "variables"]; set "v" "' + value + '";' + script.split(";", 1)[1]
    try:
        evaluate(compile_script(src), MSG, ENVELOPE, FakeHost(), limits=limits)
    except SieveLimitError:
        pass
    except SieveRuntimeError as e:  # a pattern holding "${" is only known when running
        assert "${" in pattern and ":regex" in e.message
    assert compiled is not None
    assert time.monotonic() - start < 2.0


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40))
def test_quoteregex_matches_itself_literally(s: str) -> None:
    """:quoteregex output, searched as a pattern, matches the original text."""
    try:
        p = compile_pattern("^" + quote_regex(s) + "$", False)
    except PatternError:
        pytest.fail(f"quoted text refused: {s!r}")
    assert p.search(s) is not None
