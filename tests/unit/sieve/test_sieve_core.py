"""RFC 5228 semantics: control (§3), actions and implicit keep (§2.10, §4), tests (§5),
comparators and match types (§2.7), plus fileinto/:copy (RFC 3894) and reject/ereject
(RFC 5429)."""

from __future__ import annotations

import pytest
from sieve_helpers import DEFAULT_MSG, FakeHost, actions, message, run, truth

from postroom.sieve import (
    Envelope,
    Limits,
    SieveLimitError,
    SieveRuntimeError,
    compile_script,
    evaluate,
)
from postroom.sieve.api import Discard, FileInto, Keep, Redirect, Reject

IMPLICIT = Keep(implicit=True)


# ------------------------------------------------------------------ actions, §2.10 / §4


@pytest.mark.parametrize("script,expected", [
    ("", [IMPLICIT]),
    ("keep;", [Keep()]),
    ("keep; keep;", [Keep()]),
    ("discard;", [Discard()]),
    ("discard; keep;", [Discard(), Keep()]),
    ('redirect "x@example.com";', [Redirect("x@example.com")]),
    ('redirect "x@example.com"; redirect "X@example.com";', [Redirect("x@example.com")]),
    ('redirect "x@example.com"; redirect "y@example.com";', [Redirect("x@example.com"), Redirect("y@example.com")]),
    ('require "copy"; redirect :copy "x@example.com";', [Redirect("x@example.com", copy=True), IMPLICIT]),
    ('require "fileinto"; fileinto "A"; fileinto "A";', [FileInto("A")]),
    ('require ["fileinto","copy"]; fileinto :copy "A";', [FileInto("A", copy=True), IMPLICIT]),
    ('stop; discard;', [IMPLICIT]),
    ('if true { keep; stop; } discard;', [Keep()]),
    ('require "reject"; reject "no thanks";', [Reject("no thanks")]),
    ('require "ereject"; ereject "no";', [Reject("no", extended=True)]),
    ('require "reject"; discard; reject "no";', [Discard(), Reject("no")]),
])
def test_actions(script: str, expected: list[object]) -> None:
    assert actions(script) == expected


def test_stop_is_reported() -> None:
    assert run("stop;").stopped
    assert not run("keep;").stopped


def test_redirect_address_normalised_and_checked_at_run_time() -> None:
    assert actions('redirect "Bob <bob@example.com>";') == [Redirect("bob@example.com")]
    with pytest.raises(SieveRuntimeError, match="not a valid address"):
        run('require "variables"; set "a" "no-at-sign"; redirect "${a}";')


@pytest.mark.parametrize("script", [
    'require ["reject","fileinto"]; fileinto "A"; reject "x";',
    'require "reject"; keep; reject "x";',
    'require "reject"; reject "x"; keep;',
    'require "reject"; redirect "a@b.c"; reject "x";',
    'require ["reject","ereject"]; reject "x"; ereject "y";',
    'require ["reject","vacation"]; reject "x"; vacation "away";',
    'require "vacation"; vacation "a"; vacation :handle "h" "b";',
])
def test_conflicting_actions_fail(script: str) -> None:
    with pytest.raises(SieveRuntimeError):
        run(script, envelope=Envelope("carol@example.net", "bob@example.org"))


def test_if_elsif_else() -> None:
    script = '''require "fileinto";
    if header :is "subject" "nope" { fileinto "A"; }
    elsif header :contains "subject" "meeting" { fileinto "B"; }
    elsif true { fileinto "C"; }
    else { fileinto "D"; }
    if false { fileinto "E"; } else { fileinto "F"; }'''
    assert actions(script) == [FileInto("B"), FileInto("F")]


def test_limits() -> None:
    many = 'require "fileinto";' + "".join(f'fileinto "m{i}";' for i in range(10))
    with pytest.raises(SieveLimitError, match="too many actions"):
        run(many, limits=Limits(max_actions=5))
    redirs = "".join(f'redirect "u{i}@example.com";' for i in range(5))
    with pytest.raises(SieveLimitError, match="too many redirects"):
        run(redirs, limits=Limits(max_redirects=4))
    steps = "if true { keep; }" * 50
    with pytest.raises(SieveLimitError, match="step limit"):
        run(steps, limits=Limits(max_steps=20))


def test_time_budget() -> None:
    with pytest.raises(SieveLimitError, match="time limit"):
        run("keep;", limits=Limits(max_cpu_seconds=0.0))


def test_hostile_wildcards_do_not_backtrack() -> None:
    import time

    big = message("Subject: " + "a" * 200_000)
    keys = ", ".join(f'"*a*a*a*a*a*a*a*a*b{i}"' for i in range(200))
    script = f'if header :matches "subject" [{keys}] {{ discard; }}'
    t0 = time.monotonic()
    assert run(script, big).actions == [IMPLICIT]
    assert time.monotonic() - t0 < 2


# ------------------------------------------------------------------ tests, §5


@pytest.mark.parametrize("test,expected", [
    ('header :is "subject" "Meeting tomorrow"', True),
    ('header :is "subject" "meeting TOMORROW"', True),  # i;ascii-casemap is the default
    ('header :is :comparator "i;octet" "subject" "meeting tomorrow"', False),
    ('header :contains "Subject" "TOMO"', True),
    ('header :contains "subject" ""', True),
    ('header :contains "x-missing" ""', False),
    ('header :matches "subject" "Meet*"', True),
    ('header :matches "subject" "M?eting*"', True),
    ('header :matches "subject" "M?ting*"', False),
    ('header :matches "subject" "Mee?ing *orrow"', True),
    ('header ["x-nope", "subject"] ["x", "meeting tomorrow"]', True),
    ('header :matches "x-spam-level" "\\\\*\\\\*\\\\*\\\\*"', True),
    ('header :matches "x-spam-level" "\\\\*\\\\*\\\\*\\\\*\\\\*"', False),
    ('header :is "x-spam-level" "****"', True),
    ('exists ["from", "to"]', True),
    ('exists ["from", "x-nope"]', False),
    ('size :over 100', True),
    ('size :under 100', False),
    ('size :over 1M', False),
    ('allof (true, header :contains "subject" "meeting")', True),
    ('allof (true, false)', False),
    ('anyof (false, false)', False),
    ('anyof (false, true)', True),
    ('not false', True),
    ('not not true', True),
    ('address :is "from" "alice@example.com"', True),
    ('address :domain "to" "example.net"', True),
    ('address :localpart "to" "carol+lists"', True),
    ('address :all :is "cc" "dave@example.org"', True),  # casemap: domain case ignored
    ('address :is :comparator "i;octet" "cc" "dave@example.org"', False),
    ('address :matches "from" "*@example.*"', True),
    ('address :is "from" "Alice Example <alice@example.com>"', False),
])
def test_tests(test: str, expected: bool) -> None:
    assert truth(test) is expected


def test_question_mark_is_one_octet() -> None:
    msg = message("Subject: Café")
    assert not truth('header :matches "subject" "Caf?"', msg=msg)
    assert truth('header :matches "subject" "Caf??"', msg=msg)
    assert truth('header :matches "subject" "caf*"', msg=msg)


def test_header_values_are_decoded_and_trimmed() -> None:
    msg = message("Subject:   =?ISO-8859-1?Q?Caf=E9?= =?UTF-8?B?4pyT?=  ", "X-Folded: one\r\n two")
    assert truth('header :is "subject" "Café✓"', msg=msg)
    assert truth('header :is "x-folded" "one two"', msg=msg)


def test_address_groups_and_bad_addresses() -> None:
    msg = message("To: friends: a@x.example, b@y.example;, c@z.example", "Cc: undisclosed-recipients:;",
                  "From: <>")
    assert truth('address :domain "to" "y.example"', msg=msg)
    assert truth('address :count "eq" :comparator "i;ascii-numeric" "to" "3"', '["relational", "comparator-i;ascii-numeric"]', msg=msg)
    assert not truth('address :matches "cc" "*"', msg=msg)
    assert not truth('address :matches "from" "*"', msg=msg)


def test_envelope() -> None:
    req = '"envelope"'
    env = Envelope("Alice@Example.com", "bob+tag@example.org")
    assert truth('envelope :is "from" "alice@example.com"', req, envelope=env)
    assert truth('envelope :domain "to" "example.org"', req, envelope=env)
    assert truth('envelope :localpart "to" "bob+tag"', req, envelope=env)
    assert not truth('envelope :is "to" "alice@example.com"', req, envelope=env)
    null = Envelope("", "bob@example.org")
    assert truth('envelope :is "from" ""', req, envelope=null)
    assert truth('envelope :domain "from" ""', req, envelope=null)  # §5.4: "" whatever the part
    assert not truth('envelope :matches "from" "?*"', req, envelope=null)


def test_envelope_needs_require_and_known_part() -> None:
    from postroom.sieve import SieveSyntaxError

    with pytest.raises(SieveSyntaxError, match='require "envelope"'):
        compile_script('if envelope "from" "x" { keep; }')
    with pytest.raises(SieveSyntaxError, match="envelope part 'bogus'"):
        compile_script('require "envelope"; if envelope "bogus" "x" { keep; }')


def test_parsed_message_can_be_passed_in() -> None:
    from postroom.mime.parse import parse

    script = compile_script('if header :contains "subject" "meeting" { discard; }')
    got = evaluate(script, DEFAULT_MSG, Envelope("a@b.c", "bob@example.org"), FakeHost(), parsed=parse(DEFAULT_MSG))
    assert got.actions == [Discard()]


def test_evaluate_never_raises_other_exceptions() -> None:
    class BrokenHost(FakeHost):
        def environment(self, name: str) -> str | None:
            raise KeyError(name)

    script = compile_script('require "environment"; if environment "domain" "x" { keep; }')
    with pytest.raises(SieveRuntimeError, match="internal error"):
        evaluate(script, DEFAULT_MSG, Envelope("a@b.c", "d@e.f"), BrokenHost())


def test_message_without_header_or_body() -> None:
    for raw in (b"", b"\r\n", b"no colon at all", b"Subject: x"):
        assert run('if header :contains "subject" "x" { discard; }', raw).actions


def test_message_view_edit_round_trip() -> None:
    from postroom.sieve.message import Field, MessageView

    raw = b"Subject:x\r\nX-A:  folded\r\n more\r\n\r\nbody\r\n"
    view = MessageView(raw)
    assert view.values("x-a") == ["folded more"]
    assert view.edited() == raw
    view.fields.insert(0, Field("X-New", b"1", added=True))
    view.touch()
    assert view.edited() == b"X-New: 1\r\n" + raw
    assert view.values("x-new") == ["1"]


def test_deep_but_allowed_nesting_runs() -> None:
    depth = 141  # odd: "not not … false" is true
    script = "if " + "not " * depth + "false { discard; }"
    got = run(script, limits=Limits(max_nesting=1000))
    assert got.actions == [Discard()]
