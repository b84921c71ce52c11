"""The engine's per-message and per-script caches (issue #15, Sieve cheap at delivery):
each must give exactly what the uncached computation gives, and the per-message ones must
follow editheader's changes (``MessageView.touch``)."""

from __future__ import annotations

import pytest
from sieve_helpers import ENVELOPE, FakeHost, message, run

from postroom.sieve import Limits, compile_script, evaluate
from postroom.sieve.api import FileInto, SieveLimitError
from postroom.sieve.delivery import MAILBOX_TESTS, _compiled_entry, compiled, inline_ok
from postroom.sieve.interp import BudgetExceeded
from postroom.sieve.match import compiled_pattern, glob_match
from postroom.sieve.message import Field, MessageView, parse_addresses

MSG = message(
    "From: Old Sender <old@old.example>",
    "To: a@x.example, B <b@y.example>",
    "To: c@z.example",
    "Subject: =?utf-8?q?caf=C3=A9?= menu",
    "X-Key: foo",
)


def folders(script: str, msg: bytes = MSG) -> list[str]:
    return [a.mailbox for a in run(script, msg).actions if isinstance(a, FileInto)]


# ------------------------------------------------------------------ MessageView


def test_message_view_caches_agree_with_the_fields():
    view = MessageView(MSG)
    assert view.values("SUBJECT") == ["café menu"]  # decoded once, any case of the name
    assert view.values("subject") is not view.values("subject")  # callers get their own list
    assert [[a.raw for a in addrs] for addrs in view.addresses("to")] == [
        ["a@x.example", "b@y.example"], ["c@z.example"]]
    assert view.addresses("To") is view.addresses("to")  # parsed once per name
    assert view.has("x-key") and not view.has("x-nothing")
    assert view.raw_values("x-key") == [b"foo"]
    assert view.body_start == MSG.index(b"\r\n\r\n") + 4
    assert view.edited() == MSG and not view.changed


def test_touch_drops_every_per_message_cache():
    view = MessageView(MSG)
    assert view.values("subject") == ["café menu"]
    assert [a.raw for addrs in view.addresses("from") for a in addrs] == ["old@old.example"]
    assert not view.has("x-new")
    fields = view.fields
    fields[:] = [f for f in fields if f.name.lower() not in ("from", "subject")]
    fields.insert(0, Field("From", b"New <new@new.example>", added=True))
    fields.append(Field("X-New", b"1", added=True))
    view.touch()
    assert view.values("subject") == []
    assert [a.raw for addrs in view.addresses("from") for a in addrs] == ["new@new.example"]
    assert view.has("x-new") and view.changed
    assert view.addresses("from") == [parse_addresses(b"New <new@new.example>")]


def test_header_split_without_the_mime_tree():
    # The fields come from the header block alone; the MIME tree is parsed only on demand.
    view = MessageView(MSG)
    assert [f.name for f in view.fields][:2] == ["From", "To"]
    assert view._parsed is None
    assert view.parsed.root.body_start == view.body_start


@pytest.mark.parametrize("script, expected", [
    # An address test reads From before and after the edits: the cached addresses follow.
    (('require ["editheader", "fileinto"];\n'
     'if address :domain :is "from" "old.example" { fileinto "Before"; }\n'
     'deleteheader "from";\n'
     'addheader "From" "Someone <n@new.example>";\n'
     'if address :domain :is "from" "new.example" { fileinto "After"; }\n'
     'if address :domain :is "from" "old.example" { fileinto "Stale"; }'),
     ["Before", "After"]),
    # header, exists and :index after addheader / deleteheader.
    (('require ["editheader", "fileinto", "index"];\n'
     'if header :contains "subject" "café" { fileinto "Decoded"; }\n'
     'addheader :last "Subject" "second";\n'
     'if header :index 2 :is "subject" "second" { fileinto "Indexed"; }\n'
     'deleteheader "x-key";\n'
     'if not exists "x-key" { fileinto "Gone"; }\n'
     'if address :index 2 :is "to" "c@z.example" { fileinto "SecondTo"; }\n'
     'deleteheader :index 1 "to";\n'
     'if address :index 1 :is "to" "c@z.example" { fileinto "FirstTo"; }'),
     ["Decoded", "Indexed", "Gone", "SecondTo", "FirstTo"]),
])
def test_editheader_invalidates_the_per_message_caches(script, expected):
    assert folders(script) == expected


# ------------------------------------------------------------------ compiled keys and patterns


def test_prepared_keys_follow_variable_keys_between_runs():
    # One compiled script, two messages: the key built from a variable differs per message,
    # so the keys prepared for the node on the first run must not be reused on the second.
    script = compile_script('require ["variables", "fileinto"];\n'
                            'if header :matches "x-key" "*" { set "k" "${1}"; }\n'
                            'if header :contains "subject" "${k}" { fileinto "Hit"; }\n'
                            'if header :is "x-key" ["FOO", "bar"] { fileinto "Const"; }')
    host = FakeHost()

    def hits(msg: bytes) -> list[str]:
        return [a.mailbox for a in evaluate(script, msg, ENVELOPE, host).actions if isinstance(a, FileInto)]

    assert hits(message("X-Key: menu", "Subject: the MENU")) == ["Hit"]
    assert hits(message("X-Key: lunch", "Subject: the menu")) == []
    assert hits(message("X-Key: foo", "Subject: food")) == ["Hit", "Const"]
    assert hits(message("X-Key: bar", "Subject: nothing")) == ["Const"]


def test_compiled_patterns_are_reused_and_match_as_before():
    assert compiled_pattern("*<*.*>*", True) is compiled_pattern("*<*.*>*", True)
    assert compiled_pattern("A?b", True) != compiled_pattern("A?b", False)
    assert glob_match("Dev <dev.lists.example.org>", "*<*.*>*", True) == [
        "Dev <dev.lists.example.org>", "Dev ", "dev", "lists.example.org", ""]
    assert glob_match("ABC", "a?c", True) == ["ABC", "B"]
    assert glob_match("ABC", "a?c", False) is None


# ------------------------------------------------------------------ the compiled-script cache


def test_compiled_scripts_are_cached_by_text_and_limits():
    text = 'require ["fileinto", "mailbox"]; if mailboxexists "x" { fileinto "x"; }'
    limits = Limits()
    first = compiled(text, limits)
    assert compiled(text, limits) is first
    assert compiled(text + " ", limits) is not first  # an edited script compiles anew
    assert compiled(text, Limits(max_actions=3)) is not first
    script, names = _compiled_entry(text, limits)
    assert script is first
    assert {"require", "if", "mailboxexists", "fileinto"} <= names
    assert names & MAILBOX_TESTS == {"mailboxexists"}


def test_budget_errors_are_their_own_limit_errors():
    with pytest.raises(BudgetExceeded) as err:
        run('if true { if true { if true { keep; } } }', limits=Limits(max_steps=3))
    assert isinstance(err.value, SieveLimitError)
    with pytest.raises(BudgetExceeded):
        run('if header :contains "subject" "x" { keep; }', limits=Limits(max_cpu_seconds=-1))


def test_which_scripts_may_run_on_the_event_loop():
    cheap = compile_script('require ["fileinto", "variables", "vacation"]; fileinto "x";')
    store = compile_script('require ["duplicate"]; if duplicate { discard; }')
    body = compile_script('require ["body"]; if body :contains "x" { discard; }')
    assert inline_ok([cheap], MSG)
    assert not inline_ok([cheap, store], MSG)
    assert not inline_ok([body], MSG)
    huge = b"X-Big: " + b"a" * (70 * 1024) + b"\r\n\r\nbody"
    assert not inline_ok([cheap], huge)
