"""RFC 5235 spamtest, spamtestplus and virustest: the scales, "not tested", :percent and
the i;ascii-numeric comparisons scripts are expected to use."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from sieve_helpers import FakeHost, run, truth

from postroom.sieve import SieveSyntaxError, compile_script
from postroom.sieve.ext.spamtest import spam_percent, spam_value, virus_value

REQ = '["spamtestplus", "virustest", "relational", "comparator-i;ascii-numeric", "variables"]'


@dataclass
class ScoreHost(FakeHost):
    spam: str | None = None
    virus: str | None = None

    def spam_score(self) -> str | None:
        return self.spam

    def virus_score(self) -> str | None:
        return self.virus


@pytest.mark.parametrize("raw,percent", [
    (None, None), ("", None), ("garbage", None), ("0", 0.0), ("5", 50.0), ("10", 100.0), ("25.5", 100.0),
    ("-3.2", 0.0), ("12.4/15", 12.4 * 100 / 15), (" 7.5 / 15.00 ", 50.0), ("3/0", None), ("YES", 100.0),
    ("ham", 0.0), ("nan", None), ("1e400", None),
])
def test_spam_percent(raw: str | None, percent: float | None) -> None:
    got = spam_percent(raw)
    assert got == pytest.approx(percent) if percent is not None else got is None


@pytest.mark.parametrize("percent,plain,pct", [
    (None, "0", "0"), (0.0, "1", "0"), (100.0, "10", "100"), (50.0, "6", "50"), (12.4, "2", "12"),
    (99.6, "10", "100"),
])
def test_spam_value(percent: float | None, plain: str, pct: str) -> None:
    assert spam_value(percent, False) == plain
    assert spam_value(percent, True) == pct


@pytest.mark.parametrize("raw,value", [
    (None, None), ("0", "0"), ("3", "3"), ("5", "5"), ("6", None), ("Clean", "1"), ("INFECTED", "5"),
    ("maybe", None), ("12", None),
])
def test_virus_value(raw: str | None, value: str | None) -> None:
    assert virus_value(raw) == value


@pytest.mark.parametrize("spam,test,expected", [
    (None, 'spamtest :is "0"', True),  # not tested
    (None, 'spamtest :percent :is "0"', True),  # :percent has no separate "not tested"
    ("0", 'spamtest :is "0"', False),  # tested, certainly not spam: "1"
    ("0", 'spamtest :is "1"', True),
    ("9.9", 'spamtest :value "ge" :comparator "i;ascii-numeric" "10"', True),
    ("9.9", 'spamtest :value "ge" "9"', False),  # casemap compares text: "10" < "9"
    ("4.2", 'spamtest :value "lt" :comparator "i;ascii-numeric" "6"', True),
    ("12.36/15", 'spamtest :percent :value "gt" :comparator "i;ascii-numeric" "80"', True),
    ("12.36/15", 'spamtest :percent :is "82"', True),
    ("12.36/15", 'spamtest :percent :matches "8?"', True),
    ("spam", 'spamtest :percent :is "100"', True),
])
def test_spamtest(spam: str | None, test: str, expected: bool) -> None:
    assert truth(test, REQ, host=ScoreHost(spam=spam)) is expected


def test_spamtest_casemap_text_comparison() -> None:
    # "10" is the value; with i;ascii-casemap :value compares text, and "10" < "9".
    assert truth('spamtest :value "lt" "9"', REQ, host=ScoreHost(spam="10")) is True
    assert truth('spamtest :value "lt" :comparator "i;ascii-numeric" "9"', REQ,
                 host=ScoreHost(spam="10")) is False


def test_rfc_example_order() -> None:
    """The RFC 5235 §3.2.2 example: untested first, then by percentage."""
    script = '''require ["spamtestplus", "fileinto", "relational", "comparator-i;ascii-numeric"];
    if spamtest :is "0" { fileinto "unclassified"; }
    elsif spamtest :percent :value "eq" :comparator "i;ascii-numeric" "0" { fileinto "not-spam"; }
    elsif spamtest :percent :value "lt" :comparator "i;ascii-numeric" "37" { fileinto "spam-trap"; }
    else { discard; }'''
    boxes = {}
    for spam in (None, "0", "3", "9"):
        acts = run(script, host=ScoreHost(spam=spam)).actions
        boxes[spam] = getattr(acts[0], "mailbox", "discard")
    assert boxes == {None: "unclassified", "0": "not-spam", "3": "spam-trap", "9": "discard"}


@pytest.mark.parametrize("virus,test,expected", [
    (None, 'virustest :is "0"', True),
    ("Clean", 'virustest :is "1"', True),
    ("4", 'virustest :value "ge" :comparator "i;ascii-numeric" "4"', True),
    ("Infected", 'virustest :value "eq" :comparator "i;ascii-numeric" "5"', True),
    ("weird", 'virustest :is "0"', True),
])
def test_virustest(virus: str | None, test: str, expected: bool) -> None:
    assert truth(test, REQ, host=ScoreHost(virus=virus)) is expected


def test_unreadable_score_is_logged_as_not_tested() -> None:
    res = run('require "spamtest"; if spamtest :is "0" { discard; }', host=ScoreHost(spam="lots"))
    assert any("cannot read" in line for line in res.log)
    assert type(res.actions[0]).__name__ == "Discard"


def test_match_variables() -> None:
    res = run('require ["spamtestplus", "variables", "fileinto"]; '
              'if spamtest :percent :matches "*" { fileinto "score-${1}"; }', host=ScoreHost(spam="7.5"))
    assert res.actions[0].mailbox == "score-75"  # type: ignore[attr-defined]


@pytest.mark.parametrize("script,msg", [
    ('require "spamtest"; if spamtest :percent "3" { keep; }', 'needs require "spamtestplus"'),
    ('if spamtest "3" { keep; }', 'needs require "spamtest"'),
    ('require "virustest"; if virustest :percent "3" { keep; }', "unknown tag :percent"),
    ('require "spamtest"; if spamtest 3 { keep; }', "must be a string"),
    ('require "spamtest"; if spamtest :is { keep; }', "positional"),
    (('require ["spamtest", "comparator-i;ascii-numeric"]; '
      'if spamtest :contains :comparator "i;ascii-numeric" "1" { keep; }'), "cannot be used with :contains"),
])
def test_compile_errors(script: str, msg: str) -> None:
    with pytest.raises(SieveSyntaxError, match=msg):
        compile_script(script)


def test_ihave() -> None:
    res = run('require ["ihave", "fileinto"]; if ihave "spamtestplus" { if spamtest :percent :is "100" '
              '{ fileinto "Junk"; } }', host=ScoreHost(spam="yes"))
    assert res.actions[0].mailbox == "Junk"  # type: ignore[attr-defined]
