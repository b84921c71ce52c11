"""The generated form of a script (``postroom.sieve.codegen``) against the interpreter
(``Context.run_block``) and the closures (``postroom.sieve.compiled``): over generated
scripts (header, address, exists tests with generated names, keys, match types and
comparators; ``header :value``; anyof/allof/not; if/elsif/else; stop) and generated
messages, all three must give the same actions, flags, variables, log and step count, or
fail with the same error at the same node, also when the step budget runs out part way.

test_sieve_compiled.py runs the same comparison over the corpus and the bench script
(``program_of`` now returns the generated form).
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sieve_helpers import DEFAULT_MSG, FakeHost
from test_sieve_compiled import (
    MESSAGES,
    SCRIPTS,
    _compiles,
    compiled,
    interpreted,
    outcome,
)

from postroom.sieve import Envelope, Limits, compile_script
from postroom.sieve.api import FileInto, SieveError
from postroom.sieve.codegen import source
from postroom.sieve.compiled import compile_program as compile_closures
from postroom.sieve.interp import _START_HOOKS, Context, Stop
from postroom.sieve.message import decode_value
from postroom.sieve.registry import REGISTRY

# ------------------------------------------------------------------ the three runners


def closures(script: Any, raw: bytes, envelope: Envelope, limits: Limits) -> tuple[Any, Context]:
    """What ``run`` did before the generated form: the closures of compiled.py."""
    ctx = Context(script, raw, envelope, FakeHost(), None, limits)
    for hook in _START_HOOKS:
        hook(ctx)
    try:
        compile_closures(script.commands, REGISTRY)(ctx)
    except Stop:
        ctx.result.stopped = True
    return ctx.result, ctx


def same_everywhere(text: str, raw: bytes, limits: Limits) -> tuple[Any, ...]:
    script = compile_script(text)
    want = outcome(interpreted, script, raw, limits)
    assert outcome(compiled, script, raw, limits) == want, "generated"
    assert outcome(closures, script, raw, limits) == want, "closures"
    return want


# ------------------------------------------------------------------ generated scripts

def quote(s: str) -> str:
    """A Sieve quoted string (RFC 5228 §2.4.2) holding exactly ``s``."""
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def strings(items: list[str]) -> str:
    return quote(items[0]) if len(items) == 1 else "[" + ", ".join(quote(i) for i in items) + "]"


NAMES = ["Subject", "subject", "From", "To", "Cc", "Reply-To", "X-A", "x-a", "List-Id", "X-Empty", "Received",
         "X-Nope"]
#: Keys: plain words, case variants, and text that would be code if it were ever spliced
#: into the generated source (quotes, backslashes, newlines, braces, dunder names).
WORDS = ["meeting", "MEETING", "alice@example.com", "example.com", "alice", "", "a", "*", "?*", "Re: *",
         "*@*", "x\"y", "\\", "'''", '"""', "\n", "__import__('os')", "{ctx}", "${1}", "é", "J\u00f6rg", "caf\u00e9"]

match_types = st.sampled_from([":is", ":contains", ":matches"])
comparators = st.sampled_from(["", ':comparator "i;octet" ', ':comparator "i;ascii-casemap" '])
name_lists = st.lists(st.sampled_from(NAMES), min_size=1, max_size=3)
address_names = st.lists(st.sampled_from(["From", "from", "To", "Cc", "Reply-To", "Sender"]), min_size=1, max_size=3)
key_lists = st.lists(st.sampled_from(WORDS), min_size=1, max_size=4)
many_keys = st.lists(st.sampled_from(WORDS), min_size=17, max_size=20)  # past the inline limit
parts = st.sampled_from(["", ":all ", ":localpart ", ":domain ", ":user ", ":detail "])


@st.composite
def header_test(draw: Any) -> str:
    keys = draw(st.one_of(key_lists, many_keys)) if draw(st.booleans()) else draw(key_lists)
    return f"header {draw(match_types)} {draw(comparators)}{strings(draw(name_lists))} {strings(keys)}"


@st.composite
def address_test(draw: Any) -> str:
    return (f"address {draw(parts)}{draw(match_types)} {draw(comparators)}{strings(draw(address_names))} "
            f"{strings(draw(key_lists))}")


@st.composite
def value_test(draw: Any) -> str:
    op = draw(st.sampled_from(["eq", "ne", "gt", "ge", "lt", "le"]))
    comp = draw(st.sampled_from(['"i;ascii-numeric"', '"i;ascii-casemap"', '"i;octet"']))
    keys = draw(st.lists(st.sampled_from(["0", "1", "5", "10", "a", "Z", ""]), min_size=1, max_size=3))
    return f'header :value "{op}" :comparator {comp} {strings(draw(name_lists))} {strings(keys)}'


ENVELOPE_KEYS = ["alice@example.com", "example.com", "ALICE", "carol", "lists", "", "*", "*@example.*", "c?rol*"]


@st.composite
def envelope_test(draw: Any) -> str:
    names = draw(st.lists(st.sampled_from(["from", "to", "auth", "FROM", "To"]), min_size=1, max_size=3))
    keys = draw(st.lists(st.sampled_from(ENVELOPE_KEYS), min_size=1, max_size=3))
    return f"envelope {draw(parts)}{draw(match_types)} {draw(comparators)}{strings(names)} {strings(keys)}"


@st.composite
def string_test(draw: Any) -> str:
    sources = draw(st.lists(st.sampled_from(["${1}", "${v}", "x${1}y", "meeting", "", "${0}"]), min_size=1,
                            max_size=3))
    return f"string {draw(match_types)} {draw(comparators)}{strings(sources)} {strings(draw(key_lists))}"


simple_tests = st.one_of(
    header_test(), address_test(), value_test(), envelope_test(), string_test(),
    st.builds(lambda n: f"exists {strings(n)}", name_lists),
    st.sampled_from(["true", "false", 'header :count "ge" :comparator "i;ascii-numeric" "to" "1"',
                     'string :is "${1}" "Re"', "size :over 10", "size :under 60", "size :over 1K"]),
)
tests = st.recursive(
    simple_tests,
    lambda kids: st.one_of(
        st.builds(lambda t: "not " + t, kids),
        st.builds(lambda ts: "anyof (" + ", ".join(ts) + ")", st.lists(kids, min_size=1, max_size=3)),
        st.builds(lambda ts: "allof (" + ", ".join(ts) + ")", st.lists(kids, min_size=1, max_size=3)),
    ),
    max_leaves=6,
)
actions = st.sampled_from([
    'fileinto "A";', 'fileinto "B";', "keep;", "discard;", "stop;", 'addflag "\\\\Seen";',
    'set "v" "${1}";', 'fileinto "m-${1}";', 'addheader "X-A" "new";', 'deleteheader "subject";',
    # fileinto and the flag commands written out directly (constant arguments) and not
    # (a variable, :specialuse); duplicate and keep-cancelling rules, invalid flags.
    'fileinto :copy "A";', 'fileinto :create "A";', 'fileinto :flags "\\\\Seen $x" "A";',
    'fileinto :flags ["\\\\Flagged", "bad(flag"] "B";', 'fileinto :copy :flags "" "B";',
    'fileinto :specialuse "\\\\Junk" "A";', 'fileinto :flags "${1}" "A";',
    'setflag "\\\\Deleted $a";', 'addflag ["$A", "$a", "\\\\seen"];', 'removeflag "\\\\SEEN";',
    'addflag "f" "$v";', 'addflag "${1}";',
    # vacation: constant arguments (made once per node) and a variable one.
    'vacation "away";', 'vacation :subject "re ${1}" :days 2 "away";',
    'vacation :from "me@example.org" :addresses "carol+lists@example.net" :handle "h" "away";',
])


@st.composite
def blocks(draw: Any, depth: int = 0) -> str:
    out = []
    for _ in range(draw(st.integers(1, 3))):
        if depth < 2 and draw(st.booleans()):
            out.append(f"if {draw(tests)} {{ {draw(blocks(depth + 1))} }}")
            for _ in range(draw(st.integers(0, 2))):
                out.append(f"elsif {draw(tests)} {{ {draw(blocks(depth + 1))} }}")
            if draw(st.booleans()):
                out.append(f"else {{ {draw(blocks(depth + 1))} }}")
        else:
            out.append(draw(actions))
    return "\n".join(out)


REQUIRE = ('require ["fileinto", "imap4flags", "variables", "relational", "comparator-i;ascii-numeric", '
           '"subaddress", "editheader", "copy", "mailbox", "special-use", "envelope", "vacation"];\n')

header_values = st.sampled_from([
    "Meeting tomorrow", "re: meeting", "Alice <alice@example.com>", "alice@EXAMPLE.com, bob+x@example.org",
    "=?utf-8?q?J=C3=B6rg?= <jorg@example.com>", "", "  padded  ", "10", "5 apples", "folded\r\n  value",
    "caf\u00e9", "caf\udce9", "a\"b", "undisclosed-recipients:;", "<list.example.org>",
])


@st.composite
def messages(draw: Any) -> bytes:
    fields = draw(st.lists(st.tuples(st.sampled_from(NAMES), header_values), max_size=6))
    head = "".join(f"{n}: {v}\r\n" for n, v in fields)
    return (head + "\r\nbody\r\n").encode("utf-8", "surrogateescape")


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(blocks(), messages(), st.sampled_from([None, 1, 2, 3, 5, 8, 13]))
def test_generated_runs_like_the_interpreter(body: str, raw: bytes, max_steps: int | None) -> None:
    text = REQUIRE + body
    try:
        compile_script(text)
    except SieveError:
        return  # e.g. :count with an ordering comparator refused: nothing to run
    limits = Limits() if max_steps is None else Limits(max_steps=max_steps)
    same_everywhere(text, raw, limits)


# ------------------------------------------------------------------ fixed cases


@pytest.mark.parametrize("script_name", sorted(name for name, text in SCRIPTS.items() if _compiles(text)))
def test_the_corpus_runs_alike_in_all_three_forms(script_name: str) -> None:
    for raw in MESSAGES.values():
        same_everywhere(SCRIPTS[script_name], raw, Limits())


def test_no_script_text_reaches_the_generated_source() -> None:
    keys = ['"""; import os; """', "')\n__import__('os').system('x')#", "\\", "{}", "\u2028", "${x}"]
    names = ['"""+__import__("os")+"""', "')+exec('x')#", "\\", "{}"]  # valid field names
    text = ('require ["fileinto", "relational", "comparator-i;ascii-numeric"];\n'
            f'if header :contains {strings(names)} {strings(keys)} {{ fileinto "x"; }}\n'
            f'if address :is ["from", "To"] {strings(keys)} {{ keep; }}\n'
            f'if exists {strings(names)} {{ keep; }}\n'
            f'if header :value "ge" :comparator "i;ascii-numeric" {strings(names)} "1" {{ keep; }}\n')
    script = compile_script(text)
    generated, namespace = source(script.commands, REGISTRY)
    for s in keys + names:
        assert s not in generated and s.lower() not in generated
    assert "import" not in generated and "exec" not in generated
    assert "'" not in generated and '"' not in generated  # no literals of any kind
    assert namespace["__builtins__"] == {}
    raw = DEFAULT_MSG.replace(b"Subject:", b"{}: x\r\nSubject:")
    same_everywhere(text, raw, Limits())


def test_deep_scripts_fall_back_to_closures_and_still_agree() -> None:
    deep_blocks = "if true { " * 60 + 'fileinto "deep";' + " }" * 60
    deep_tests = "if " + "anyof(" * 60 + 'header :contains "subject" "meeting"' + ")" * 60 + " { keep; }"
    deep_nots = "if " + "not " * 141 + "false { discard; }"
    for text in (deep_blocks, deep_tests, deep_nots):
        full = 'require "fileinto";\n' + text
        script = compile_script(full, limits=Limits(max_nesting=1000))
        for limits in (Limits(), Limits(max_steps=50)):
            want = outcome(interpreted, script, DEFAULT_MSG, limits)
            assert outcome(compiled, script, DEFAULT_MSG, limits) == want


def test_a_run_out_of_time_stops_at_a_step() -> None:
    script = compile_script('if header :contains "subject" "x" { keep; }')
    got = outcome(compiled, script, DEFAULT_MSG, Limits(max_cpu_seconds=-1))
    assert got[0] == "error" and "time limit" in got[2]


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=60) | st.text(max_size=40).map(lambda t: t.encode("utf-8", "surrogatepass")))
def test_decode_value_is_decode_header_value_stripped(value: bytes) -> None:
    from postroom.mime.decode import decode_header_value

    assert decode_value(value) == decode_header_value(value).strip(" \t")


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=30), max_size=3))
def test_unfolded_values_are_unfold_nolf_decoded(values: list[bytes]) -> None:
    from postroom.mime.imapfmt import unfold_nolf
    from postroom.sieve.message import MessageView

    view = MessageView(b"")
    view._index = {"x-v": values}  # the index as _index_block makes it
    assert view.unfolded("X-V") == [unfold_nolf(v).decode("utf-8", "replace").strip(" \t") for v in values]


def test_a_block_with_a_stray_elsif_is_left_to_the_interpreter() -> None:
    from postroom.sieve.codegen import compile_program

    script = compile_script('if true { keep; } if true { discard; }')
    stray = script.commands[1]
    stray.name = "elsif"  # the validator never lets this through
    ctx = Context(script, DEFAULT_MSG, Envelope("a@example.com", "b@example.org"), FakeHost(), None, Limits())
    compile_program(script.commands, REGISTRY)(ctx)
    assert ctx.steps == 4 and [type(a).__name__ for a in ctx.actions] == ["Keep"]  # the elsif passed over


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=12))
def test_mailbox_name_check_refuses_controls_and_surrogates(name: str) -> None:
    from postroom.sieve.ext.fileinto import _valid_mailbox

    bad = not name or any(ord(c) < 0x20 or c == "\x7f" or 0xD800 <= ord(c) <= 0xDFFF for c in name)

    def error(msg: str, at: object) -> ValueError:
        return ValueError(msg)

    if bad:
        with pytest.raises(ValueError):
            _valid_mailbox(name, error, None)
    else:
        _valid_mailbox(name, error, None)


def test_a_script_past_the_line_limit_keeps_its_closures(monkeypatch: pytest.MonkeyPatch) -> None:
    from postroom.sieve import codegen

    text = 'require "fileinto";\n' + 'if header :contains "subject" "meeting" { fileinto "M"; }\n' * 5
    script = compile_script(text)
    assert codegen.compile_program(script.commands, REGISTRY).__code__.co_filename == "<sieve script>"
    monkeypatch.setattr(codegen, "_MAX_LINES", 10)
    program = codegen.compile_program(script.commands, REGISTRY)
    assert program.__code__.co_filename != "<sieve script>"  # the closures
    ctx = Context(script, DEFAULT_MSG, Envelope("a@example.com", "b@example.org"), FakeHost(), None, Limits())
    program(ctx)
    assert [type(a).__name__ for a in ctx.actions] == ["FileInto"] and ctx.steps == 1 + 5 * 3


@settings(max_examples=500, deadline=None)
@given(st.lists(st.binary(max_size=30) | st.text(alphabet=" \tabcXYZ=?:é\r\n", max_size=20).map(str.encode),
                max_size=3),
       st.sampled_from(["i;octet", "i;ascii-casemap", "i;ascii-numeric"]))
def test_folded_values_from_raw_octets_are_the_comparator_form_of_the_decoded_ones(
        values: list[bytes], comparator: str) -> None:
    from postroom.sieve.codegen import _folded_header
    from postroom.sieve.message import MessageView

    key = REGISTRY.comparators[comparator].key
    view = MessageView(b"")
    view._index = {"x-v": values}
    want = [key(decode_value(v)) for v in values]
    assert _folded_header(view, "x-v", ("header", "x-v", key), key) == want
    assert view.memo[("header", "x-v", key)] == want


# ------------------------------------------------------------------ commands written out directly

DIRECT = (REQUIRE + 'addflag "$A";\n'
          'fileinto "A"; fileinto :copy "B"; fileinto :create :flags ["\\\\Seen", "bad(flag", "$x"] "C";\n'
          'fileinto "A"; removeflag "$a"; fileinto :flags "" "D"; setflag "\\\\Flagged $A $a";\n'
          'if size :over 10 { fileinto "E"; } if size :under 10 { fileinto "F"; }\n'
          'fileinto :specialuse "\\\\Junk" "G"; fileinto "m-${1}";')


def test_constant_fileinto_and_flag_commands_are_written_out_and_agree() -> None:
    """fileinto/setflag/addflag/removeflag with constant arguments and size become direct
    code (no call of the registered run); the same actions, flags, log and steps as the
    interpreter, also when the action limit or the step budget stops the run part way."""
    script = compile_script(DIRECT)
    generated, namespace = source(script.commands, REGISTRY)
    fileinto_run = REGISTRY.commands["fileinto"].run
    called = {v for k, v in namespace.items() if f"{k}(ctx" in generated}
    assert fileinto_run in called  # the :specialuse and variable ones only
    assert generated.count("ctx.add_action(") == 7
    assert "msg.size >" in generated and "msg.size <" in generated
    assert REGISTRY.commands["addflag"].run not in called
    for raw in (DEFAULT_MSG, *MESSAGES.values()):
        for limits in (Limits(), Limits(max_actions=3), *(Limits(max_steps=n) for n in range(1, 16))):
            same_everywhere(DIRECT, raw, limits)


def test_a_fileinto_wrapped_again_is_not_written_out(monkeypatch: pytest.MonkeyPatch) -> None:
    """Another extension wrapping fileinto after special-use: the generated code must call
    the registered run (the wrapper), not file directly."""
    spec = REGISTRY.commands["fileinto"]
    seen: list[str] = []
    inner = spec.run

    def wrapper(ctx: Context, node: Any) -> None:
        seen.append(node.name)
        inner(ctx, node)

    monkeypatch.setattr(spec, "run", wrapper)
    script = compile_script('require "fileinto"; fileinto "A";')
    generated, _ = source(script.commands, REGISTRY)
    assert "add_action" not in generated
    assert outcome(compiled, script, DEFAULT_MSG, Limits())[0] == [FileInto("A")]
    assert seen == ["fileinto"]


ENVELOPES = [Envelope("alice@example.com", "carol+lists@example.net", "carol+lists@example.net"),
             Envelope("<>", "carol@example.net", "carol@example.net"), Envelope("", "x@y", "x@y", auth="Bob@Example.COM"),
             Envelope("not an address", "carol+lists@example.net", "carol+lists@example.net")]


@pytest.mark.parametrize("test", [
    'envelope :is "from" ""', 'envelope :domain :is ["from", "to"] "example.com"',
    'envelope :localpart :contains "auth" "bob"', 'envelope :detail :matches "to" "l*"',
    'envelope :all :is :comparator "i;octet" "from" "alice@example.com"', 'envelope :user :is "to" "carol"',
    'string :is "${1}" ["x", ""]', 'string :contains :comparator "i;octet" ["a${1}", "${v}"] "A"',
])
def test_envelope_and_string_tests_agree_over_envelopes(test: str) -> None:
    """Written out (no call of the registered run), with the null, empty and bad senders
    and an auth identity."""
    text = (REQUIRE + 'if header :matches "subject" "*e*" { set "v" "${2}"; }\n'
            f'if {test} {{ fileinto "hit"; }} else {{ fileinto "miss"; }}')
    script = compile_script(text)
    generated, _ = source(script.commands, REGISTRY)
    assert not re.search(r"t = _k\d+\(ctx\)", generated)  # no test left to its closure
    for envelope in ENVELOPES:
        for raw in (DEFAULT_MSG, *MESSAGES.values()):
            want = interpreted(script, raw, envelope, Limits())
            got = compiled(script, raw, envelope, Limits())
            assert list(got[0].actions) == list(want[0].actions), (envelope, test)
            assert got[1].steps == want[1].steps


def test_vacation_arguments_are_made_once_only_when_constant() -> None:
    script = compile_script(REQUIRE + 'set "s" "x";\nif exists "subject" { vacation :days 3 "away"; }\n'
                            'else { vacation :subject "${s}" "again"; }')
    first, second = script.commands[2].block[0], script.commands[3].block[0]  # type: ignore[index]
    for envelope in ENVELOPES:
        for raw in (DEFAULT_MSG, *MESSAGES.values()):
            want = interpreted(script, raw, envelope, Limits())
            got = compiled(script, raw, envelope, Limits())
            assert (list(got[0].actions), list(got[0].log)) == (list(want[0].actions), list(want[0].log))
    assert "_vacation_args" in first.data and "_vacation_args" not in second.data
