"""The compiled form of a script (``postroom.sieve.compiled``) against the interpreter it
replaces at delivery (``Context.run_block``): for every script and message here both must
give the same result — actions, implicit keep, log, edited message, stop, match and
named variables — and count the same steps, or fail with the same error at the same node.

The scripts are the corpus (tests/sieve/corpus), bench/sieve.py's 30 rules, and scripts
written for the cases the compiled tests treat specially (constant and variable keys,
several and repeated header names, address parts, comparators, :matches variables,
if/elsif/else chains, editheader changing what later tests see, budgets running out).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest
from sieve_helpers import DEFAULT_MSG, FakeHost, message

from postroom.sieve import Envelope, Limits, compile_script, evaluate
from postroom.sieve.api import SieveError
from postroom.sieve.compiled import compile_program
from postroom.sieve.interp import _START_HOOKS, Context, Stop, program_of
from postroom.sieve.registry import REGISTRY

ROOT = Path(__file__).resolve().parents[3]
CORPUS = ROOT / "tests" / "sieve" / "corpus"


def _bench_script() -> str:
    spec = importlib.util.spec_from_file_location("bench_sieve", ROOT / "bench" / "sieve.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return str(mod.SCRIPT)


SCRIPTS: dict[str, str] = {p.name: p.read_text("utf-8") for p in sorted((CORPUS / "scripts").glob("*.sieve"))}
SCRIPTS["bench-30-rules"] = _bench_script()
SCRIPTS.update({
    "chain": 'require "fileinto";\n'
             'if header :is "subject" "nothing" { fileinto "A"; }\n'
             'elsif address :domain :is "from" "example.com" { fileinto "B"; }\n'
             'elsif true { fileinto "C"; }\n'
             'else { fileinto "D"; }\n'
             'if false { discard; } elsif not exists "x-nope" { keep; } else { stop; }\n',
    "names-and-keys": 'require ["fileinto", "variables"];\n'
                      'set "key" "MEETING";\n'
                      'if header :contains ["x-a", "subject", "subject"] "${key}" { fileinto "vars"; }\n'
                      'if header :is ["to", "cc"] ["dave@example.org", "DAVE@EXAMPLE.ORG"] { fileinto "is"; }\n'
                      'if header :comparator "i;octet" :contains "subject" "meeting" { fileinto "octet"; }\n'
                      'if header :comparator "i;octet" :is "subject" "Meeting tomorrow" { fileinto "octet-is"; }\n'
                      'if exists ["from", "subject"] { fileinto "both"; }\n'
                      'if exists ["from", "x-nope"] { fileinto "never"; }\n',
    "address-parts": 'require ["fileinto", "subaddress", "envelope"];\n'
                     'if address :detail :is "to" "lists" { fileinto "detail"; }\n'
                     'if address :user :is "to" "carol" { fileinto "user"; }\n'
                     'if address :localpart :contains ["to", "cc"] "DAV" { fileinto "local"; }\n'
                     'if address :all :comparator "i;octet" :is "from" "alice@example.com" { fileinto "octet"; }\n'
                     'if address :domain :matches "from" "*.com" { fileinto "matches"; }\n'
                     'if envelope :domain :is "from" "example.com" { fileinto "envelope"; }\n',
    "matches-vars": 'require ["fileinto", "variables"];\n'
                    'if header :matches "subject" "* *" { set "first" "${1}"; set "rest" "${2}"; }\n'
                    'if address :matches :localpart "to" "*+*" { set "detail" "${2}"; }\n'
                    'if header :matches "from" "*<*@*>" { fileinto "from-${2}"; }\n'
                    'if header :matches "subject" "${first} *" { fileinto "again-${1}"; }\n',
    "relational": 'require ["relational", "comparator-i;ascii-numeric", "fileinto"];\n'
                  'if header :count "ge" :comparator "i;ascii-numeric" ["to", "cc"] "2" { fileinto "count"; }\n'
                  'if address :value "gt" :comparator "i;ascii-casemap" "from" "a" { fileinto "value"; }\n',
    "editheader": 'require ["editheader", "fileinto", "variables"];\n'
                  'if header :contains "subject" "meeting" { addheader "X-Tag" "seen"; }\n'
                  'if header :is "x-tag" "seen" { fileinto "tagged"; }\n'
                  'deleteheader "subject";\n'
                  'if not exists "subject" { fileinto "gone"; }\n'
                  'if address :is "from" "alice@example.com" { deleteheader "from"; }\n'
                  'if not address :is "from" "alice@example.com" { fileinto "no-from"; }\n',
    "flags-and-stop": 'require ["imap4flags", "fileinto"];\n'
                      'if anyof (header :contains "subject" "nope", allof (true, exists "to")) { addflag "\\\\Seen"; }\n'
                      'if allof (header :contains "subject" "meeting", not header :contains "subject" "x") '
                      '{ fileinto :flags "\\\\Flagged" "F"; stop; }\n'
                      'fileinto "never";\n',
    "mime-tags": 'require ["mime", "fileinto", "index"];\n'
                 'if header :mime :type "content-type" "text" { fileinto "text"; }\n'
                 'if header :index 1 :last :is "received" "x" { fileinto "idx"; }\n'
                 'if exists :mime :anychild "content-type" { fileinto "any"; }\n',
})

MESSAGES: dict[str, bytes] = {p.name: p.read_bytes() for p in sorted((CORPUS / "messages").glob("*.eml"))}
MESSAGES["default"] = DEFAULT_MSG
MESSAGES["folded"] = message("From: =?utf-8?q?J=C3=B6rg?= <jorg@example.com>", "To: x@example.org,\r\n y@example.org",
                             "Subject: Re: meeting\r\n  about\tthings", "X-Priority: 1", "x-priority: 2")
MESSAGES["empty-header"] = b"\r\nbody only\r\n"


def interpreted(script: Any, raw: bytes, envelope: Envelope, limits: Limits) -> tuple[Any, Context]:
    """What ``run`` did before the compiled form: the same Context, the block interpreted."""
    ctx = Context(script, raw, envelope, FakeHost(), None, limits)
    for hook in _START_HOOKS:
        hook(ctx)
    try:
        ctx.run_block(script.commands)
    except Stop:
        ctx.result.stopped = True
    return ctx.result, ctx


def compiled(script: Any, raw: bytes, envelope: Envelope, limits: Limits) -> tuple[Any, Context]:
    ctx = Context(script, raw, envelope, FakeHost(), None, limits)
    for hook in _START_HOOKS:
        hook(ctx)
    try:
        program_of(script)(ctx)
    except Stop:
        ctx.result.stopped = True
    return ctx.result, ctx


def outcome(run: Any, script: Any, raw: bytes, limits: Limits) -> tuple[Any, ...]:
    envelope = Envelope("alice@example.com", "carol+lists@example.net", "carol+lists@example.net")
    try:
        result, ctx = run(script, raw, envelope, limits)
    except SieveError as exc:
        return ("error", type(exc).__name__, str(exc))
    edited = ctx.msg.edited() if ctx.msg.changed else None
    return (list(result.actions), ctx.implicit_keep, list(result.log), edited, result.stopped, ctx.steps,
            dict(ctx.variables), list(ctx.match_vars), list(ctx.flags))


def _compiles(text: str) -> bool:
    try:
        compile_script(text)
    except SieveError:
        return False  # the corpus also holds scripts that must not compile
    return True


@pytest.mark.parametrize("script_name", sorted(name for name, text in SCRIPTS.items() if _compiles(text)))
def test_compiled_runs_like_the_interpreter(script_name: str) -> None:
    script = compile_script(SCRIPTS[script_name])
    for msg_name, raw in MESSAGES.items():
        want = outcome(interpreted, script, raw, Limits())
        got = outcome(compiled, script, raw, Limits())
        assert got == want, f"{script_name} on {msg_name}"


@pytest.mark.parametrize("max_steps", [1, 2, 3, 5, 8, 13, 21])
def test_the_step_budget_runs_out_at_the_same_node(max_steps: int) -> None:
    script = compile_script(SCRIPTS["bench-30-rules"])
    limits = Limits(max_steps=max_steps)
    ran_out = 0
    for raw in MESSAGES.values():
        want = outcome(interpreted, script, raw, limits)
        ran_out += want[0] == "error" and "step limit" in want[2]
        assert outcome(compiled, script, raw, limits) == want
    assert ran_out >= 2  # the messages that run the most rules (a stop ends the others sooner)


def test_evaluate_uses_the_compiled_form_and_keeps_it_on_the_script() -> None:
    script = compile_script('require "fileinto"; if header :contains "subject" "meeting" { fileinto "M"; }')
    assert script.program is None
    result = evaluate(script, DEFAULT_MSG, Envelope("a@example.com", "b@example.org"), FakeHost())
    assert [type(a).__name__ for a in result.actions] == ["FileInto"]
    made = script.program
    assert made is not None and made[0] is REGISTRY
    evaluate(script, DEFAULT_MSG, Envelope("a@example.com", "b@example.org"), FakeHost())
    assert script.program is made  # made once, reused


def test_a_block_with_a_stray_elsif_is_left_to_the_interpreter() -> None:
    # The validator never lets this through; the compiler must still not change its meaning.
    script = compile_script('if true { keep; }')
    stray = script.commands[0]
    stray.name = "elsif"
    program = compile_program([stray], REGISTRY)
    ctx = Context(script, DEFAULT_MSG, Envelope("a@example.com", "b@example.org"), FakeHost(), None, Limits())
    program(ctx)
    assert ctx.steps == 1 and ctx.actions == []  # "taken" starts true: the elsif is passed over


def test_header_values_are_folded_once_per_message_and_dropped_after_an_edit() -> None:
    script = compile_script('require "editheader";\n'
                            'if header :contains "subject" "meeting" { addheader "X-A" "1"; }\n'
                            'if header :contains "subject" "tomorrow" { deleteheader "subject"; }\n'
                            'if header :contains "subject" "meeting" { addheader "X-B" "1"; }\n')
    result = evaluate(script, DEFAULT_MSG, Envelope("a@example.com", "b@example.org"), FakeHost())
    assert result.edited is not None
    assert b"X-A: 1" in result.edited and b"X-B" not in result.edited  # the third test saw no subject


ODD_HEADERS = [
    b"Subject: plain\r\nFrom: a@example.com\r\n\r\nbody",
    b"Subject: folded\r\n  over\r\n\tlines\r\nTo: b@example.org\r\n\r\n",
    b"X-Empty:\r\nX-Blank:   \r\nX-Tab:\t\tv\r\n\r\n",
    b"Name With Space : v\r\nnot a field line\r\n continuation after junk\r\nX: y\r\n\r\n",
    b"LF-Only: yes\nAnother: one\n\nbody\n",
    b"No-Body: at all\r\nLast: line without break",
    b"Bad-\xff-Name: v\r\nUTF8: \xc3\xa9t\xc3\xa9\r\n\r\n",
    b"Bare: cr\rinside\r\nDup: 1\r\ndup: 2\r\nDUP: 3\r\n\r\n",
    b"\r\nbody only",
    b"",
]


@pytest.mark.parametrize("raw", ODD_HEADERS)
def test_the_index_from_raw_octets_matches_the_one_from_field_records(raw: bytes) -> None:
    """MessageView indexes the block straight from the octets until someone asks for the
    fields; both ways must find the same names and values (split_header's rules)."""
    from postroom.sieve.message import MessageView

    fast = MessageView(raw)
    slow = MessageView(raw)
    assert slow.fields is not None  # Field records first: the index is then built from them
    assert fast.index() == slow.index()
    for name in fast.index():
        assert fast.values(name) == slow.values(name)
        assert fast.addresses(name) == slow.addresses(name)
