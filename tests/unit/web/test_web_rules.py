"""The web rules editor's model ↔ Sieve (postroom.web.rules): round trips, what generated
scripts do in Postroom's engine, hostile values, and scripts the editor must not claim."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "sieve"))  # sieve_helpers

from sieve_helpers import FakeHost, message, run

from postroom.sieve import Envelope, compile_script
from postroom.sieve.api import Discard, FileInto, Keep, Redirect, Vacation
from postroom.sieve.lexer import Kind, tokenize
from postroom.web.errors import Invalid
from postroom.web.rules import (
    FIELDS,
    MARKER,
    MAX_RULES,
    RULESET_SCHEMA,
    Condition,
    Forwarding,
    Rule,
    RuleAction,
    RulesError,
    RuleSet,
    VacationSettings,
    from_json,
    generate,
    parse,
    to_json,
    validate,
)
from postroom.web.schema import check

ENV = Envelope("alice@example.com", "bob@example.org")


def msg(subject: str = "Hello", *extra: str, frm: str = "Alice <alice@example.com>", body: str = "Hi.\r\n") -> bytes:
    return message(f"From: {frm}", "To: bob@example.org", f"Subject: {subject}", "Message-ID: <m@example.com>",
                   *extra, body=body)


def act(rs: RuleSet, raw: bytes, when: datetime | None = None) -> list[object]:
    host = FakeHost(clock=when or datetime(2026, 3, 4, 12, 0, tzinfo=UTC))
    return run(generate(rs), raw, envelope=ENV, host=host).actions  # type: ignore[return-value]


def rule(*conditions: Condition, actions: tuple[RuleAction, ...], any_: bool = False) -> RuleSet:
    return RuleSet(rules=(Rule("r", tuple(conditions), actions, match_all=not any_),))


# ----------------------------------------------------------------------- round trips

_text = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=30).filter(str.strip)
_word = st.from_regex(r"\A[A-Za-z0-9$_-]{1,20}\Z")
_address = st.builds(lambda a, b: f"{a}@{b}.example", st.from_regex(r"\A[a-z0-9._+-]{1,10}\Z"),
                     st.from_regex(r"\A[a-z0-9]{1,10}\Z")).filter(lambda a: ".." not in a and not a.startswith("."))
_folder = st.lists(st.text(st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="*%\\/"),
                           min_size=1, max_size=10).filter(lambda s: s.strip() not in ("", ".", "..")),
                   min_size=1, max_size=3).map("/".join)


@st.composite
def _condition(draw: st.DrawFn) -> Condition:
    name = draw(st.sampled_from(sorted(FIELDS)))
    kind = draw(st.sampled_from(FIELDS[name]))
    if name == "size":
        return Condition(name, kind, str(draw(st.integers(1, 1 << 30))))
    value = "" if kind.endswith("exists") else draw(_text)
    return Condition(name, kind, value, draw(_word) if name == "header" else "")


_action = st.one_of(
    st.builds(RuleAction, st.sampled_from(["fileinto", "copyinto"]), folder=_folder),
    st.builds(RuleAction, st.just("flag"), flag=st.one_of(_word, st.sampled_from(["\\Flagged", "\\Seen"]))),
    st.builds(RuleAction, st.just("forward"), address=_address, keep_copy=st.booleans()),
    st.builds(RuleAction, st.sampled_from(["read", "discard", "stop"])),
)
_rule = st.builds(Rule, name=st.one_of(st.just(""), _text), conditions=st.lists(_condition(), max_size=4).map(tuple),
                  actions=st.lists(_action, min_size=1, max_size=4).map(tuple), match_all=st.booleans(),
                  enabled=st.booleans())
_day = st.dates(date(2000, 1, 1), date(2099, 12, 31))


@st.composite
def _ruleset(draw: st.DrawFn) -> RuleSet:
    rules = draw(st.lists(_rule, max_size=5))
    forwards = 0
    kept = []
    for r in rules:  # at most MAX_FORWARDS forwards in all
        n = sum(a.kind == "forward" for a in r.actions) if r.enabled else 0
        if forwards + n <= 3:
            kept.append(r)
            forwards += n
    start, end = sorted([draw(_day), draw(_day)])
    vacation = VacationSettings(
        enabled=draw(st.booleans()), start=draw(st.one_of(st.none(), st.just(start))),
        end=draw(st.one_of(st.none(), st.just(end))), subject=draw(st.one_of(st.just(""), _text)),
        text=draw(st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00\x0b\x0c\r\x7f"
                                        + "".join(map(chr, range(1, 9))) + "".join(map(chr, range(14, 32)))),
                          min_size=1, max_size=200).filter(str.strip)),
        days=draw(st.integers(1, 90)), addresses=tuple(draw(st.lists(_address, max_size=3))))
    return RuleSet(tuple(kept), Forwarding(draw(st.booleans()), draw(_address), draw(st.booleans())), vacation)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_ruleset())
def test_round_trip_and_every_script_compiles(rs: RuleSet) -> None:
    script = generate(rs)
    assert parse(script) == validate(rs)
    assert parse(script.replace("\n", "\r\n")) == validate(rs)  # as fetched back over ManageSieve
    assert from_json(to_json(rs)) == validate(rs)
    check(RULESET_SCHEMA, to_json(validate(rs)))  # what the API sends fits what it declares
    compile_script(script)
    # Whatever the values, the script is the generator's statements only: the commands
    # the lexer sees are the ones written, never a value's text.
    words = {t.value for t in tokenize(script) if t.kind is Kind.IDENT}
    assert words <= {"require", "redirect", "if", "allof", "anyof", "not", "true", "header", "address", "exists",
                     "body", "size", "addflag", "fileinto", "discard", "stop", "vacation", "currentdate"}


def test_round_trip_of_the_empty_rule_set() -> None:
    script = generate(RuleSet())
    assert parse(script) == RuleSet()
    assert run(script, msg(), envelope=ENV).actions == [Keep(implicit=True)]


# -------------------------------------------------------------- what the scripts do


def test_subject_contains_invoice_files_and_flags() -> None:
    rs = rule(Condition("subject", "contains", "INVOICE"),
              actions=(RuleAction("fileinto", folder="Finance/Invoices"), RuleAction("flag", flag="\\Flagged")))
    assert act(rs, msg("Your invoice 42")) == [FileInto("Finance/Invoices", flags=("\\Flagged",), create=True)]
    assert act(rs, msg("Lunch")) == [Keep(implicit=True)]


def test_mark_read_and_copy_into_keep_the_inbox_copy() -> None:
    rs = rule(Condition("from", "is", "alice@example.com"),
              actions=(RuleAction("copyinto", folder="inbox/Alice"), RuleAction("read")))
    assert act(rs, msg()) == [FileInto("INBOX/Alice", flags=("\\Seen",), create=True, copy=True),
                              Keep(flags=("\\Seen",), implicit=True)]
    # "is" on from is the address, not the display name.
    assert act(rs, msg(frm="alice@example.com.evil")) == [Keep(implicit=True)]


def test_forward_with_and_without_a_copy() -> None:
    keep = rule(Condition("subject", "contains", "fw"), actions=(RuleAction("forward", address="x@y.example",
                                                                             keep_copy=True),))
    assert act(keep, msg("fw me")) == [Redirect("x@y.example", copy=True), Keep(implicit=True)]
    away = dataclasses.replace(keep, rules=(dataclasses.replace(
        keep.rules[0], actions=(RuleAction("forward", address="x@y.example"),)),))
    assert act(away, msg("fw me")) == [Redirect("x@y.example")]


def test_discard_and_stop_end_the_rules_and_the_vacation() -> None:
    rs = RuleSet(rules=(Rule("junk", (Condition("header", "exists", header="X-Spam-Flag"),),
                             (RuleAction("discard"), RuleAction("stop"))),
                        Rule("all", (), (RuleAction("fileinto", folder="Archive"),))),
                 vacation=VacationSettings(True, text="away"))
    assert act(rs, msg("win", "X-Spam-Flag: YES")) == [Discard()]
    out = act(rs, msg("hello"))
    assert out[0] == FileInto("Archive", create=True)
    assert isinstance(out[1], Vacation) and out[1].reason == "away" and len(out) == 2


def test_any_of_conditions_size_attachment_body_and_negations() -> None:
    rs = rule(Condition("size", "over", "5000"), Condition("attachment", "exists"),
              Condition("body", "contains", "unsubscribe"),
              actions=(RuleAction("fileinto", folder="Big"),), any_=True)
    assert act(rs, msg())[0] == Keep(implicit=True)
    assert act(rs, msg(body="x" * 6000 + "\r\n"))[0] == FileInto("Big", create=True)
    assert act(rs, msg(body="To unsubscribe click\r\n"))[0] == FileInto("Big", create=True)
    attached = message("From: a@example.com", "To: bob@example.org", "Subject: doc", "MIME-Version: 1.0",
                       'Content-Type: multipart/mixed; boundary="b"',
                       body=("--b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n--b\r\n"
                             "Content-Type: application/pdf\r\nContent-Disposition: attachment; filename=a.pdf\r\n"
                             "\r\nJVBERi0=\r\n--b--\r\n"))
    assert act(rs, attached)[0] == FileInto("Big", create=True)
    both = rule(Condition("subject", "not_contains", "hello"), Condition("to", "matches", "*@example.org"),
                actions=(RuleAction("discard"),))
    assert act(both, msg("Hello there")) == [Keep(implicit=True)]
    assert act(both, msg("Other")) == [Discard()]


def test_forwarding_first_then_rules_then_vacation() -> None:
    rules = (Rule("a", (), (RuleAction("fileinto", folder="A"),)),)
    on = VacationSettings(True, text="away", days=3)
    kept = act(RuleSet(rules, Forwarding(True, "me@elsewhere.example", True), on), msg())
    assert kept[0] == Redirect("me@elsewhere.example", copy=True)
    assert kept[1] == FileInto("A", create=True)
    assert isinstance(kept[2], Vacation) and kept[2].period_seconds == 3 * 86400
    # Without a copy nothing stays here: the rules are not run, the vacation reply still goes.
    gone = act(RuleSet(rules, Forwarding(True, "me@elsewhere.example", False), on), msg())
    assert gone[0] == Redirect("me@elsewhere.example") and isinstance(gone[1], Vacation) and len(gone) == 2
    # Switched off, the address is kept in the model but not in the script.
    off = RuleSet(rules, Forwarding(False, "me@elsewhere.example", False))
    assert parse(generate(off)) == off and "redirect" not in generate(off)


@pytest.mark.parametrize("today,answers", [
    (datetime(2026, 11, 30, 23, 0, tzinfo=UTC), False),
    (datetime(2026, 12, 1, 0, 0, tzinfo=UTC), True),
    (datetime(2026, 12, 24, 23, 59, tzinfo=UTC), True),
    (datetime(2026, 12, 25, 0, 0, tzinfo=UTC), False),
])
def test_vacation_dates_are_inclusive_days(today: datetime, answers: bool) -> None:
    rs = RuleSet(vacation=VacationSettings(True, date(2026, 12, 1), date(2026, 12, 24), "Away", "Back soon",
                                           addresses=("b@alias.example",)))
    out = act(rs, msg(), today)
    found = [a for a in out if isinstance(a, Vacation)]
    assert bool(found) is answers
    if found:
        assert found[0].subject == "Away" and found[0].addresses == ("b@alias.example",)
        assert found[0].period_seconds == 7 * 86400 and found[0].sender == "alice@example.com"


def test_vacation_handle_is_stable_across_rule_edits() -> None:
    """Delivery tracks replies per (sender, handle): editing rules must not answer again."""
    v = VacationSettings(True, text="away")
    a = act(RuleSet(vacation=v), msg())
    b = act(RuleSet((Rule("x", (), (RuleAction("flag", flag="$Seen1"),)),), vacation=v), msg())
    va = next(x for x in a if isinstance(x, Vacation))
    vb = next(x for x in b if isinstance(x, Vacation))
    assert va.handle == vb.handle


# ------------------------------------------------------------------- hostile values

BREAKOUT = '"; discard; "'


@pytest.mark.parametrize("value", [BREAKOUT, '\\', '\\"', 'a"b\\c', "\\\\\"; stop;", "é ü 日本", "* ? \\*"])
def test_hostile_strings_stay_inside_their_string(value: str) -> None:
    rs = rule(Condition("subject", "is", value), actions=(RuleAction("flag", flag="$hit"),))
    script = generate(rs)
    assert parse(script) == rs
    assert act(rs, msg("plain")) == [Keep(implicit=True)]  # no discard ever ran
    out = act(rs, message("From: a@example.com", "To: bob@example.org", "Subject: " + value))
    assert out == [Keep(flags=("$hit",), implicit=True)]
    v = RuleSet(vacation=VacationSettings(True, subject=value, text=value + "\n" + value))
    [reply] = [a for a in act(v, msg()) if isinstance(a, Vacation)]
    assert reply.subject == value and reply.reason == value + "\n" + value


@pytest.mark.parametrize("bad,where", [
    (rule(Condition("subject", "is", "a\r\nb"), actions=(RuleAction("discard"),)), "rules[0].conditions[0].value"),
    (rule(Condition("subject", "is", "a\x00"), actions=(RuleAction("discard"),)), "rules[0].conditions[0].value"),
    (rule(Condition("subject", "is", "x" * 10_000_000), actions=(RuleAction("discard"),)),
     "rules[0].conditions[0].value"),
    (rule(Condition("subject", "is", "\ud800"), actions=(RuleAction("discard"),)), "rules[0].conditions[0].value"),
    (rule(Condition("subject", "is", ""), actions=(RuleAction("discard"),)), "rules[0].conditions[0].value"),
    (rule(Condition("header", "is", "x", header="X-A: b"), actions=(RuleAction("discard"),)),
     "rules[0].conditions[0].header"),
    (rule(Condition("size", "over", "1e9"), actions=(RuleAction("discard"),)), "rules[0].conditions[0].value"),
    (rule(Condition("size", "over", "99999999999"), actions=(RuleAction("discard"),)), "rules[0].conditions[0].value"),
    (rule(Condition("size", "contains", "1"), actions=(RuleAction("discard"),)), "rules[0].conditions[0].match"),
    (rule(Condition("colour", "is", "x"), actions=(RuleAction("discard"),)), "rules[0].conditions[0].field"),
    (rule(actions=()), "rules[0].actions"),
    (rule(actions=(RuleAction("reject"),)), "rules[0].actions[0].kind"),
    (rule(actions=(RuleAction("fileinto", folder="../etc"),)), "rules[0].actions[0].folder"),
    (rule(actions=(RuleAction("fileinto", folder="a/../b"),)), "rules[0].actions[0].folder"),
    (rule(actions=(RuleAction("fileinto", folder="a//b"),)), "rules[0].actions[0].folder"),
    (rule(actions=(RuleAction("fileinto", folder="/abs"),)), "rules[0].actions[0].folder"),
    (rule(actions=(RuleAction("fileinto", folder="a*"),)), "rules[0].actions[0].folder"),
    (rule(actions=(RuleAction("fileinto", folder="a\nb"),)), "rules[0].actions[0].folder"),
    (rule(actions=(RuleAction("fileinto", folder="x" * 201),)), "rules[0].actions[0].folder"),
    (rule(actions=(RuleAction("flag", flag="\\Deleted"),)), "rules[0].actions[0].flag"),
    (rule(actions=(RuleAction("flag", flag="a b"),)), "rules[0].actions[0].flag"),
    (rule(actions=(RuleAction("flag", flag='a"'),)), "rules[0].actions[0].flag"),
    (rule(actions=(RuleAction("forward", address='x@y"; discard; "'),)), "rules[0].actions[0].address"),
    (rule(actions=(RuleAction("forward", address="Bob <x@y.example>"),)), "rules[0].actions[0].address"),
    (rule(actions=(RuleAction("forward", address="x@y.example\r\nBcc: z@w"),)), "rules[0].actions[0].address"),
    (rule(actions=tuple(RuleAction("forward", address=f"f{i}@y.example") for i in range(5))), "rules"),
    (RuleSet(rules=(Rule("", (), (RuleAction("stop"),)),) * (MAX_RULES + 1)), "rules"),
    (RuleSet(forwarding=Forwarding(True, "")), "forwarding.address"),
    (RuleSet(vacation=VacationSettings(True, text="")), "vacation.text"),
    (RuleSet(vacation=VacationSettings(True, subject="a\nBcc: x@y", text="t")), "vacation.subject"),
    (RuleSet(vacation=VacationSettings(True, text="t\x1b[2J")), "vacation.text"),
    (RuleSet(vacation=VacationSettings(True, text="t" * 10_000_001)), "vacation.text"),
    (RuleSet(vacation=VacationSettings(True, text="t", days=0)), "vacation.days"),
    (RuleSet(vacation=VacationSettings(True, text="t", days=91)), "vacation.days"),
    (RuleSet(vacation=VacationSettings(True, date(2026, 2, 2), date(2026, 2, 1), text="t")), "vacation.end"),
    (RuleSet(vacation=VacationSettings(True, text="t", addresses=("not an address",))), "vacation.addresses[0]"),
])
def test_bad_values_are_refused_with_their_field(bad: RuleSet, where: str) -> None:
    with pytest.raises(RulesError) as err:
        generate(bad)
    assert err.value.field == where and err.value.message
    assert isinstance(err.value, Invalid) and err.value.body() == {"error": err.value.message, "field": where}


def test_the_script_size_is_bounded() -> None:
    big = Rule("", tuple(Condition("body", "contains", "x" * 1000) for _ in range(20)), (RuleAction("stop"),))
    with pytest.raises(RulesError, match="KiB"):
        generate(RuleSet(rules=(big,) * 40))


@pytest.mark.parametrize("data,where", [
    ([], None),
    ({"rules": {}}, "rules"),
    ({"rules": [1]}, "rules[0]"),
    ({"rules": [{"name": 3, "actions": [{"kind": "stop"}]}]}, "rules[0].name"),
    ({"rules": [{"actions": [{"kind": "forward", "address": "a@b.example", "keep_copy": "yes"}]}]},
     "rules[0].actions[0].keep_copy"),
    ({"rules": [{"actions": [{"kind": "stop"}]}] * 1000}, "rules"),
    ({"vacation": {"days": "7"}}, "vacation.days"),
    ({"vacation": {"days": True}}, "vacation.days"),
    ({"vacation": {"start": "2026-02-30"}}, "vacation.start"),
    ({"vacation": {"start": "02/03/2026"}}, "vacation.start"),
    ({"vacation": {"addresses": [1]}}, "vacation.addresses[0]"),
    ({"forwarding": {"enabled": 1}}, "forwarding.enabled"),
    ({"rules": [{"actions": [{"kind": "stop", "script": "discard;"}]}]}, "rules[0].actions[0]"),
    ({"vacation": {"text": "x", "from": "a@b.example"}}, "vacation"),
    ({"rules": [], "sieve": "keep;"}, None),
])
def test_bad_json_is_refused_with_its_field(data: object, where: str | None) -> None:
    with pytest.raises(RulesError) as err:
        from_json(data)
    assert err.value.field == where


# ---------------------------------------------------------- scripts that are not ours

SAMPLE = RuleSet(rules=(Rule("inv", (Condition("subject", "contains", "invoice"),),
                             (RuleAction("fileinto", folder="Invoices"),)),))


def _rechecksum(text: str) -> str:
    first, _, body = text.partition("\n")
    head = first.rsplit(" ", 1)[0]
    return f"{head} {hashlib.sha256(body.encode()).hexdigest()}\n{body}"


@pytest.mark.parametrize("script", [
    "",
    'require "fileinto";\nif header :contains "subject" "invoice" { fileinto "Invoices"; }\n',
    generate(SAMPLE).replace("Invoices", "Other"),  # edited, checksum now wrong
    _rechecksum(generate(SAMPLE).replace('fileinto :create "Invoices";', "discard;")),  # edited, checksum fixed
    _rechecksum(generate(SAMPLE) + "discard;\n"),  # a statement appended
    generate(SAMPLE).replace(f"{MARKER} 1 ", f"{MARKER} 2 "),  # a format we do not know
    _rechecksum(generate(SAMPLE).replace('"name":"inv"', '"name":"inv\\r\\n"')),  # model made invalid
    _rechecksum(generate(SAMPLE).replace('# {"forwarding"', '# ["forwarding"')),  # model not JSON
    "# postroom-rules 1\n",
    b"\xff\xfe# postroom-rules",
])
def test_other_scripts_are_not_expressible(script: str | bytes) -> None:
    assert parse(script) is None


def test_generated_bytes_are_recognised() -> None:
    assert parse(generate(SAMPLE).encode("utf-8")) == SAMPLE


@pytest.mark.parametrize("body", [
    {"rules": [{"actions": [{"kind": "explode"}]}]},
    {"vacation": {"days": 0}},
    {"vacation": {"start": "tomorrow"}},
    {"forwarding": {"address": "x" * 300}},
    {"extra": 1},
])
def test_the_schema_refuses_what_the_model_would(body: dict[str, object]) -> None:
    with pytest.raises(Invalid):
        check(RULESET_SCHEMA, body)
    with pytest.raises(Invalid):
        from_json(body)


def test_vacation_text_line_ends_from_a_form_become_one_kind() -> None:
    rs = RuleSet(vacation=VacationSettings(True, text="Away.\r\nBack Monday.\rBye\tnow"))
    assert validate(rs).vacation.text == "Away.\nBack Monday.\nBye\tnow"
    [reply] = [a for a in act(rs, msg()) if isinstance(a, Vacation)]
    assert reply.reason == "Away.\nBack Monday.\nBye\tnow"


def test_vacation_days_given_as_datetimes_are_days() -> None:
    rs = RuleSet(vacation=VacationSettings(True, datetime(2026, 12, 1, 15, 30), datetime(2026, 12, 2, 1, 0),
                                           text="away"))
    v = validate(rs).vacation
    assert (v.start, v.end) == (date(2026, 12, 1), date(2026, 12, 2))
    assert '"2026-12-01"' in generate(rs) and "T15" not in generate(rs)


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.text(max_size=300), st.binary(max_size=300),
                 st.text(max_size=300).map(lambda t: _rechecksum(f"{MARKER} 1 x\n# {t}\n")),
                 st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=10),
                              lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
                              max_leaves=20).map(lambda j: _rechecksum(f"{MARKER} 1 x\n# {json.dumps(j)}\n"))))
def test_parse_never_raises(script: str | bytes) -> None:
    assert parse(script) is None or isinstance(parse(script), RuleSet)


def test_parse_survives_deeply_nested_json() -> None:
    assert parse(_rechecksum(f"{MARKER} 1 x\n# {'[' * 100_000}\n")) is None
