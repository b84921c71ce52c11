"""RFC 7352 duplicate: the unique ID, handles, :seconds, :last and the marks delivery
records after a successful run."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from sieve_helpers import FakeHost, message, run

from postroom.sieve import SieveRuntimeError, SieveSyntaxError, compile_script
from postroom.sieve.api import Discard, FileInto, Keep
from postroom.sieve.ext.duplicate import DEFAULT_SECONDS, MAX_SECONDS

MSG = message("From: a@example.com", "To: b@example.org", "Message-ID:\r\n  <id-1@example.com>  ",
              "X-Ticket: T-42", "X-Ticket: T-43", "Subject: hi")


@dataclass
class TrackHost(FakeHost):
    """Remembers (handle, key) pairs as delivery would after a successful run."""

    seen: set[tuple[str, str]] = field(default_factory=set)
    asked: list[tuple[str, int, str]] = field(default_factory=list)

    def duplicate_seen(self, key: str, seconds: int, handle: str) -> bool:
        self.asked.append((key, seconds, handle))
        return (handle, key) in self.seen


def test_first_then_duplicate() -> None:
    script = 'require "duplicate"; if duplicate { discard; }'
    host = TrackHost()
    res = run(script, msg=MSG, host=host)
    assert res.actions == [Keep(implicit=True)]
    assert res.duplicate_marks == [("<id-1@example.com>", DEFAULT_SECONDS)]
    assert host.asked == [("<id-1@example.com>", DEFAULT_SECONDS, "")]
    host.seen.add(("", "<id-1@example.com>"))
    res = run(script, msg=MSG, host=host)
    assert res.actions == [Discard()]
    assert res.duplicate_marks == []  # without :last the first expiry stands


def test_last_restarts_expiry() -> None:
    host = TrackHost(seen={("", "<id-1@example.com>")})
    res = run('require "duplicate"; if duplicate :last :seconds 60 { discard; }', msg=MSG, host=host)
    assert res.actions == [Discard()]
    assert res.duplicate_marks == [("<id-1@example.com>", 60)]


def test_header_and_uniqueid_and_handle() -> None:
    host = TrackHost(seen={("tickets", "T-42")})
    res = run('require ["duplicate", "variables", "fileinto"];'
              'if duplicate :handle "tickets" :header "x-ticket" { fileinto "dup"; }'
              'if header :matches "subject" "*" { set "s" "${1}"; }'
              'if duplicate :uniqueid "${s}" :handle "subj" :seconds 3600 { fileinto "never"; }',
              msg=MSG, host=host)
    assert res.actions[0] == FileInto("dup")
    assert ("hi", 3600, "subj") in host.asked
    assert res.duplicate_marks == [("hi", 3600)]


def test_missing_header_is_false_and_untracked() -> None:
    host = TrackHost()
    res = run('require "duplicate"; if duplicate :header "x-none" { discard; }', msg=MSG, host=host)
    assert res.actions == [Keep(implicit=True)] and res.duplicate_marks == [] and host.asked == []
    msg = message("From: a@example.com", "Subject: no id")
    res = run('require "duplicate"; if duplicate { discard; }', msg=msg, host=host)
    assert res.duplicate_marks == [] and host.asked == []


def test_same_answer_within_one_run() -> None:
    host = TrackHost()
    res = run('require ["duplicate", "fileinto"]; if duplicate { fileinto "a"; } '
              'if not duplicate { fileinto "b"; }', msg=MSG, host=host)
    assert res.actions == [FileInto("b")]
    assert len(host.asked) == 1


def test_seconds_capped() -> None:
    host = TrackHost()
    res = run(f'require "duplicate"; if duplicate :seconds {MAX_SECONDS * 10} {{ discard; }}', msg=MSG, host=host)
    assert res.duplicate_marks == [("<id-1@example.com>", MAX_SECONDS)]


def test_marks_dropped_when_script_fails() -> None:
    # RFC 7352 §3: tracked only when the script succeeded; a failed run raises, so the
    # result (and its marks) never reaches delivery.
    with pytest.raises(SieveRuntimeError):
        run('require ["duplicate", "ihave"]; if duplicate { discard; } error "boom";', msg=MSG, host=TrackHost())


@pytest.mark.parametrize("script,msg", [
    ('if duplicate { keep; }', 'needs require "duplicate"'),
    ('require "duplicate"; if duplicate :header "x" :uniqueid "y" { keep; }', "conflicts"),
    ('require "duplicate"; if duplicate :header "bad name" { keep; }', "not a header field name"),
    ('require "duplicate"; if duplicate :seconds "10" { keep; }', "must be a number"),
    ('require "duplicate"; if duplicate "x" { keep; }', "positional"),
    ('require "duplicate"; if duplicate :handle { keep; }', "needs a string"),
])
def test_compile_errors(script: str, msg: str) -> None:
    with pytest.raises(SieveSyntaxError, match=msg):
        compile_script(script)


def test_ihave_duplicate() -> None:
    host = TrackHost(seen={("", "<id-1@example.com>")})
    res = run('require ["ihave"]; if ihave "duplicate" { if duplicate { discard; } }', msg=MSG, host=host)
    assert res.actions == [Discard()]
