"""RFC 5230 vacation and RFC 6131 vacation-seconds: when the engine lets a reply go and
what the Vacation action carries."""

from __future__ import annotations

import pytest
from sieve_helpers import message, run

from postroom.sieve import Envelope, SieveSyntaxError, compile_script
from postroom.sieve.api import Keep, Vacation

ENV = Envelope("alice@example.com", "bob@example.org")
BASE = ("From: Alice <alice@example.com>", "To: Bob <bob@example.org>", "Subject: Lunch?", "Message-ID: <q@x>")


def vac(script: str = 'vacation "I am away.";', *headers: str, env: Envelope = ENV,
        req: str = '"vacation"') -> tuple[Vacation | None, list[str]]:
    msg = message(*(headers or BASE))
    res = run(f"require {req};\n{script}", msg, envelope=env)
    found = [a for a in res.actions if isinstance(a, Vacation)]
    assert res.actions[-1] == Keep(implicit=True)  # vacation never cancels the implicit keep
    return (found[0] if found else None), res.log


def test_reply_defaults() -> None:
    v, _ = vac()
    assert v is not None
    assert v.sender == "alice@example.com"
    assert v.subject == "Auto: Lunch?"
    assert v.reason == "I am away."
    assert v.period_seconds == 7 * 86400
    assert v.in_reply_to == "<q@x>"
    assert v.handle.startswith("auto-") and not v.mime and v.from_ is None


def test_reply_options() -> None:
    v, _ = vac('vacation :days 3 :subject "Out" :from "bob@example.org" :mime :handle "h1"'
               ' :addresses ["b@alias.example"] "text";')
    assert v == Vacation(sender="alice@example.com", subject="Out", reason="text", from_="bob@example.org",
                         handle="h1", period_seconds=3 * 86400, mime=True, addresses=("b@alias.example",),
                         in_reply_to="<q@x>")


def test_days_bounds_and_seconds() -> None:
    assert vac('vacation :days 0 "x";')[0].period_seconds == 86400  # type: ignore[union-attr]
    assert vac('vacation :days 100000 "x";')[0].period_seconds == 365 * 86400  # type: ignore[union-attr]
    v, _ = vac('vacation :seconds 0 "x";', req='"vacation-seconds"')
    assert v is not None and v.period_seconds == 0
    with pytest.raises(SieveSyntaxError, match='needs require "vacation-seconds"'):
        compile_script('require "vacation"; vacation :seconds 10 "x";')
    with pytest.raises(SieveSyntaxError, match="conflicts"):
        compile_script('require "vacation-seconds"; vacation :seconds 10 :days 1 "x";')


def test_same_text_same_handle() -> None:
    a, _ = vac('vacation "one";')
    b, _ = vac('vacation :days 2 "one";')
    c, _ = vac('vacation "two";')
    assert a is not None and b is not None and c is not None
    assert a.handle == b.handle != c.handle


@pytest.mark.parametrize("extra,env,why", [
    ((), Envelope("", "bob@example.org"), "null envelope sender"),
    ((), Envelope("MAILER-DAEMON@example.com", "bob@example.org"), "list or system address"),
    ((), Envelope("owner-list@example.com", "bob@example.org"), "list or system address"),
    ((), Envelope("list-request@example.com", "bob@example.org"), "list or system address"),
    ((), Envelope("bob@example.org", "bob@example.org"), "sender is the recipient"),
    (("Auto-Submitted: auto-replied",), ENV, "Auto-Submitted"),
    (("Precedence: bulk",), ENV, "Precedence: bulk"),
    (("Precedence: junk",), ENV, "Precedence: junk"),
    (("List-Id: <x.example.com>",), ENV, "list-id"),
    (("List-Unsubscribe: <mailto:x@y>",), ENV, "list-unsubscribe"),
    ((), Envelope("alice@example.com", "someone@else.example"), "not in To, Cc or Bcc"),
])
def test_no_reply(extra: tuple[str, ...], env: Envelope, why: str) -> None:
    v, log = vac('vacation "away";', *BASE, *extra, env=env)
    assert v is None
    assert any(why in line for line in log), log


def test_reply_allowed_cases() -> None:
    assert vac('vacation "x";', *BASE, "Auto-Submitted: no")[0] is not None
    cc = ("From: alice@example.com", "To: team@example.org", "Cc: BOB@Example.org", "Subject: s")
    assert vac('vacation "x";', *cc)[0] is not None
    alias = ("From: alice@example.com", "To: b@alias.example", "Subject: s")
    assert vac('vacation "x";', *alias)[0] is None
    assert vac('vacation :addresses "b@alias.example" "x";', *alias)[0] is not None
    orig = Envelope("alice@example.com", "bob@example.org", original_recipient="b@alias.example")
    assert vac('vacation "x";', *alias, env=orig)[0] is not None


def test_no_subject_and_encoded_subject() -> None:
    v, _ = vac('vacation "x";', "From: alice@example.com", "To: bob@example.org")
    assert v is not None and v.subject == "Automated reply"
    v, _ = vac('vacation "x";', "From: alice@example.com", "To: bob@example.org", "Subject: =?utf-8?q?Caf=C3=A9?=")
    assert v is not None and v.subject == "Auto: Café"


def test_bad_from_is_a_compile_error() -> None:
    with pytest.raises(SieveSyntaxError, match="not a valid address"):
        compile_script('require "vacation"; vacation :from "nobody" "x";')
