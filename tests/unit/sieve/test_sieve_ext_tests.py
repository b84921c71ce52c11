"""Extensions that add tests or match machinery: relational (RFC 5231),
i;ascii-numeric (RFC 4790), subaddress (RFC 5233), ihave (RFC 5463), environment
(RFC 5183), date and index (RFC 5260), body (RFC 5173)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sieve_helpers import FakeHost, actions, message, run, truth

from postroom.sieve import SieveRuntimeError, SieveSyntaxError, compile_script
from postroom.sieve.api import Discard, FileInto, Keep

REL = '["relational", "comparator-i;ascii-numeric"]'


# ------------------------------------------------------------------ relational / numeric


@pytest.mark.parametrize("test,expected", [
    ('header :value "gt" :comparator "i;ascii-numeric" "x-n" "9"', True),
    ('header :value "lt" :comparator "i;ascii-numeric" "x-n" "9"', False),
    ('header :value "gt" "x-n" "9"', False),  # casemap: "10" < "9" as text
    ('header :value "ge" :comparator "i;ascii-numeric" "x-n" "10"', True),
    ('header :value "le" :comparator "i;ascii-numeric" "x-n" "010"', True),
    ('header :value "eq" :comparator "i;ascii-numeric" "x-n" "10"', True),
    ('header :value "ne" :comparator "i;ascii-numeric" "x-n" "10"', False),
    ('header :value "gt" :comparator "i;ascii-numeric" "x-word" "999999"', True),  # non-digit = infinity
    ('header :value "eq" :comparator "i;ascii-numeric" "x-word" "abc"', True),
    ('header :count "eq" :comparator "i;ascii-numeric" "received" "3"', True),
    ('header :count "gt" :comparator "i;ascii-numeric" ["received", "x-n"] "3"', True),
    ('header :count "eq" :comparator "i;ascii-numeric" "x-none" "0"', True),
    ('address :count "ge" :comparator "i;ascii-numeric" ["to", "cc"] "3"', True),
    ('header :is :comparator "i;ascii-numeric" "x-n" "10abc"', True),
    ('header :value "GT" :comparator "i;ascii-numeric" "x-n" "9"', True),
])
def test_relational(test: str, expected: bool) -> None:
    msg = message("X-N: 10", "X-Word: many", "Received: a", "Received: b", "Received: c",
                  "To: a@x.example, b@x.example", "Cc: c@x.example")
    assert truth(test, REL, msg=msg) is expected


def test_relational_operator_checked() -> None:
    with pytest.raises(SieveSyntaxError, match="bad relational operator"):
        compile_script('require "relational"; if header :value "gtx" "a" "b" { keep; }')
    with pytest.raises(SieveSyntaxError, match='needs require "relational"'):
        compile_script('if header :count "eq" "a" "1" { keep; }')


# ------------------------------------------------------------------ subaddress


@pytest.mark.parametrize("test,expected", [
    ('address :user "to" "carol"', True),
    ('address :detail "to" "lists"', True),
    ('address :detail "to" ""', False),  # bob@ has no detail: :detail does not match at all
    ('address :detail :matches "to" "*"', True),
    ('address :user "from" "alice"', True),
    ('envelope :detail "to" "tag"', True),
    ('envelope :user "to" "bob"', True),
    ('address :detail "cc" ""', True),  # "dave+" has an empty detail
])
def test_subaddress(test: str, expected: bool) -> None:
    from postroom.sieve import Envelope

    msg = message("From: alice@example.com", "To: bob@example.org, carol+lists@example.net",
                  "Cc: dave+@example.org")
    assert truth(test, '["subaddress", "envelope"]', msg=msg,
                 envelope=Envelope("alice@example.com", "bob+tag@example.org")) is expected


# ------------------------------------------------------------------ ihave


def test_ihave() -> None:
    script = '''require ["ihave", "fileinto"];
    if ihave "variables" { set "a" "b"; fileinto "${a}"; }
    if ihave "x-unknown-ext" { frobnicate :with "anything" 12; fileinto "never"; } else { fileinto "else"; }
    if ihave ["fileinto", "x-nope"] { nonsense; } elsif ihave "imap4flags" { addflag "f"; }'''
    assert actions(script) == [FileInto("b"), FileInto("else")]


def test_ihave_respects_allowed_extensions() -> None:
    script = 'require ["ihave", "fileinto"]; if ihave "variables" { set "a" "b"; } else { fileinto "no"; }'
    s = compile_script(script, extensions=frozenset({"ihave", "fileinto"}))
    from sieve_helpers import DEFAULT_MSG

    from postroom.sieve import Envelope, evaluate

    assert evaluate(s, DEFAULT_MSG, Envelope("a@b.c", "d@e.f"), FakeHost()).actions == [FileInto("no")]


def test_ihave_block_still_needs_valid_syntax() -> None:
    with pytest.raises(SieveSyntaxError):
        compile_script('require "ihave"; if ihave "x-unknown" { foo "unterminated; }')


def test_error_command() -> None:
    with pytest.raises(SieveRuntimeError, match="script error: broken") as ei:
        run('require "ihave";\nkeep;\n  error "broken";')
    assert (ei.value.line, ei.value.column) == (3, 3)


# ------------------------------------------------------------------ environment


def test_environment() -> None:
    host = FakeHost(env={"domain": "example.org", "remote-ip": "192.0.2.1"})
    req = '"environment"'
    assert truth('environment :is "domain" "example.org"', req, host=host)
    assert truth('environment :matches "remote-ip" "192.0.2.*"', req, host=host)
    assert truth('environment "name" "Postroom"', req, host=host)
    assert truth('environment "location" "MDA"', req, host=host)
    assert truth('environment "phase" "during"', req, host=host)
    assert not truth('environment :matches "x-unknown" "*"', req, host=host)


# ------------------------------------------------------------------ date / index


DATED = message("Date: Fri, 13 Mar 2009 19:35:07 -0700", "Received: from x by y; Mon, 16 Mar 2009 10:00:00 +0000",
                "Received: from a by b; Sat, 14 Mar 2009 02:00:00 +0100", "X-Bad-Date: not a date",
                "Subject: first", "Subject: second", "To: a@one.example", "To: b@two.example")


@pytest.mark.parametrize("test,expected", [
    ('date :originalzone "date" "year" "2009"', True),
    ('date :originalzone "date" "date" "2009-03-13"', True),
    ('date :originalzone "date" "time" "19:35:07"', True),
    ('date :originalzone "date" "zone" "-0700"', True),
    ('date :originalzone "date" "weekday" "5"', True),
    ('date :originalzone "date" "iso8601" "2009-03-13T19:35:07-07:00"', True),
    ('date :originalzone "date" "std11" "Fri, 13 Mar 2009 19:35:07 -0700"', True),
    ('date :originalzone "date" "julian" "54903"', True),
    ('date :zone "+0000" "date" "date" "2009-03-14"', True),
    ('date :zone "+0000" "date" "iso8601" "2009-03-14T02:35:07Z"', True),
    ('date :zone "+0000" "date" "hour" "02"', True),
    ('date "date" "hour" "02"', True),  # local zone = the zone of Host.now (UTC here)
    ('date :zone "+0530" "date" "time" "08:05:07"', True),
    ('date :value "ge" :originalzone "date" "month" "03"', True),
    ('date "x-bad-date" "year" "2009"', False),
    ('date :matches "x-none" "year" "*"', False),
    ('date :zone "+0000" "received" "date" "2009-03-16"', True),
    ('date :index 2 :zone "+0000" "received" "date" "2009-03-14"', True),
    ('date :index 1 :last :zone "+0000" "received" "hour" "01"', True),
    ('header :index 1 "subject" "first"', True),
    ('header :index 2 "subject" "first"', False),
    ('header :index 1 :last "subject" "second"', True),
    ('header :index 3 "subject" "first"', False),
    ('address :index 2 :domain "to" "two.example"', True),
    ('address :index 1 :last :domain "to" "one.example"', False),
])
def test_date_and_index(test: str, expected: bool) -> None:
    assert truth(test, '["date", "index", "relational"]', msg=DATED) is expected


def test_invalid_zone_means_local_zone() -> None:
    res = run('require ["date", "variables", "fileinto"];'
              'if date :zone "0100" :matches "date" "zone" "*" { fileinto "z${1}"; }', DATED)
    assert res.actions == [FileInto("z+0000")]
    assert any("invalid :zone" in line for line in res.log)


def test_currentdate() -> None:
    host = FakeHost(clock=datetime(2026, 3, 4, 23, 30, 0, tzinfo=timezone(timedelta(hours=-5))))
    req = '["date", "relational"]'
    assert truth('currentdate "date" "2026-03-04"', req, host=host)
    assert truth('currentdate :zone "+0000" "date" "2026-03-05"', req, host=host)
    assert truth('currentdate :zone "+0000" "hour" "04"', req, host=host)
    assert truth('currentdate :value "ge" "year" "2020"', req, host=host)
    assert truth('currentdate "zone" "-0500"', req, host=host)


@pytest.mark.parametrize("script,fragment", [
    ('require "date"; if date "date" "century" "1" { keep; }', "unknown date-part"),
    ('require "date"; if date :zone "+0100" :originalzone "date" "year" "1" { keep; }', "conflicts"),
    ('require "index"; if header :last "subject" "x" { keep; }', ":last needs :index"),
    ('require "index"; if header :index 0 "subject" "x" { keep; }', "1 or more"),
    ('if header :index 1 "subject" "x" { keep; }', 'needs require "index"'),
])
def test_date_errors(script: str, fragment: str) -> None:
    with pytest.raises(SieveSyntaxError, match=fragment):
        compile_script(script)


# ------------------------------------------------------------------ body


MULTI = message(
    "From: a@b.example", "MIME-Version: 1.0", 'Content-Type: multipart/mixed; boundary="XX"',
    body=("preamble\r\n--XX\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable"
          "\r\n\r\nCaf=C3=A9 au lait\r\n--XX\r\nContent-Type: text/html\r\n\r\n<p>Hello <b>world</b></p>\r\n"
          "--XX\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
          "c2VjcmV0IGJsb2I=\r\n--XX\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner one\r\n\r\ninner body\r\n"
          "--XX--\r\n"))


@pytest.mark.parametrize("test,expected", [
    ('body :contains "café"', True),
    ('body :text :contains "au lait"', True),
    ('body :contains "secret blob"', False),
    ('body :content "application" :contains "secret blob"', True),
    ('body :content "text/html" :contains "<b>world</b>"', True),
    ('body :content "text/plain" :contains "world"', False),
    ('body :content "" :contains "secret"', True),
    ('body :content "message/rfc822" :contains "inner one"', True),
    ('body :raw :contains "Caf=C3=A9"', True),
    ('body :raw :contains "café"', False),
    ('body :content ["image", "text/html"] :matches "*hello*"', True),
])
def test_body(test: str, expected: bool) -> None:
    assert truth(test, '"body"', msg=MULTI) is expected


def test_body_plain_message() -> None:
    msg = message("Subject: x", body="just text\r\n")
    assert truth('body :contains "just"', '"body"', msg=msg)
    with pytest.raises(SieveSyntaxError, match="conflicts"):
        compile_script('require "body"; if body :raw :text "x" { keep; }')


def test_keep_is_last_when_not_cancelled() -> None:
    got = actions('require ["body", "fileinto", "copy"]; if body :contains "Hello" { fileinto :copy "B"; }')
    assert got == [FileInto("B", copy=True), Keep(implicit=True)]
    assert Discard() not in got
