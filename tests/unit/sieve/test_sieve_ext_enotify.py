"""RFC 5435 enotify with mailto (RFC 5436), and RFC 8580 fcc on notify and vacation."""

from __future__ import annotations

import pytest
from sieve_helpers import ENVELOPE, message, run, truth

from postroom.sieve import SieveRuntimeError, SieveSyntaxError, compile_script
from postroom.sieve.api import Keep, Notify, Vacation
from postroom.sieve.ext.enotify import encode_url, valid_method

MSG = message("From: Alice <alice@example.com>", "To: bob@example.org", "Subject: Urgent thing",
              "Message-ID: <n1@example.com>")
REQ = 'require ["enotify", "variables"];\n'


@pytest.mark.parametrize("uri,ok", [
    ("mailto:bob@example.org", True),
    ("MAILTO:bob@example.org", True),
    ("mailto:bob@example.org,carol@example.net", True),
    ("mailto:?to=bob@example.org&subject=Hi%20there", True),
    ("mailto:bob@example.org?cc=carol@example.net&body=x", True),
    ("mailto:", False),
    ("mailto:?subject=x", False),  # nobody to send to
    ("mailto:bob@example.org?subject=a b", False),  # a blank is not URI text
    ("mailto:bob@example.org#frag", False),
    ("mailto:bob@example.org%zz", False),
    ("mailto:not-an-address", False),
    ("xmpp:bob@example.org", False),
    ("tel:+1-555", False),
    ("", False),
])
def test_valid_method(uri: str, ok: bool) -> None:
    assert valid_method(uri) is ok
    assert truth(f'valid_notify_method "{uri}"', '"enotify"') is ok


def test_valid_notify_method_all_of_list() -> None:
    assert truth('valid_notify_method ["mailto:a@example.org", "mailto:b@example.org"]', '"enotify"')
    assert not truth('valid_notify_method ["mailto:a@example.org", "xmpp:b@example.org"]', '"enotify"')


def test_notify_action() -> None:
    res = run(REQ + 'notify :from "me@example.org" :importance "1" :options ["k=v"] :message "New: ${1}" '
              '"mailto:bob@example.org?subject=Hi";', msg=MSG)
    assert res.actions == [Notify("mailto:bob@example.org?subject=Hi", from_="me@example.org", importance="1",
                                  options=("k=v",), message="New: "), Keep(implicit=True)]


def test_notify_defaults_and_no_keep_cancel_and_duplicates() -> None:
    res = run(REQ + 'notify "mailto:bob@example.org"; notify "mailto:bob@example.org";', msg=MSG)
    assert res.actions == [Notify("mailto:bob@example.org"), Keep(implicit=True)]


def test_message_with_match_variables() -> None:
    res = run(REQ + 'if header :matches "subject" "Urgent *" { notify :message "urgent: ${1}" '
              '"mailto:pager@example.org"; }', msg=MSG)
    assert res.actions[0] == Notify("mailto:pager@example.org", message="urgent: thing")


def test_encodeurl() -> None:
    assert encode_url("Safe body&evil=evilbody") == "Safe%20body%26evil%3Devilbody"
    assert encode_url("ü~-._") == "%C3%BC~-._"
    res = run(REQ + 'set :encodeurl "b" "Safe body&evil=evilbody"; notify "mailto:me@example.com?body=${b}";',
              msg=MSG)
    assert res.actions[0] == Notify("mailto:me@example.com?body=Safe%20body%26evil%3Devilbody")


def test_encodeurl_precedence() -> None:
    # :upper (40) applies before :encodeurl (15)
    res = run(REQ + 'set :encodeurl :upper "v" "a b"; notify "mailto:x@example.org?subject=${v}";', msg=MSG)
    assert res.actions[0] == Notify("mailto:x@example.org?subject=A%20B")


@pytest.mark.parametrize("test,ok", [
    ('notify_method_capability "mailto:bob@example.org" "online" "maybe"', True),
    ('notify_method_capability "mailto:bob@example.org" "Online" ["yes", "maybe"]', True),
    ('notify_method_capability "mailto:bob@example.org" "online" "yes"', False),
    ('notify_method_capability "mailto:bob@example.org" "other" "maybe"', False),
    ('notify_method_capability "xmpp:bob@example.org" "online" "maybe"', False),
    ('notify_method_capability :matches "mailto:bob@example.org" "online" "m*"', True),
])
def test_notify_method_capability(test: str, ok: bool) -> None:
    assert truth(test, '"enotify"') is ok


def test_runtime_errors() -> None:
    with pytest.raises(SieveRuntimeError, match="not a usable notification method"):
        run(REQ + 'set "m" "xmpp:a@b"; notify "${m}";', msg=MSG)
    with pytest.raises(SieveRuntimeError, match="importance"):
        run(REQ + 'set "i" "4"; notify :importance "${i}" "mailto:a@example.org";', msg=MSG)
    res = run(REQ + 'set "f" "not an address"; notify :from "${f}" "mailto:a@example.org";', msg=MSG)
    assert res.actions[0] == Notify("mailto:a@example.org") and any("invalid :from" in x for x in res.log)


@pytest.mark.parametrize("script,msg", [
    ('notify "mailto:a@example.org";', 'needs require "enotify"'),
    (REQ + 'notify "xmpp:a@example.org";', "not a usable notification method"),
    (REQ + 'notify :importance "0" "mailto:a@example.org";', ":importance must be"),
    (REQ + 'notify :from "nobody" "mailto:a@example.org";', "not a valid address"),
    (REQ + 'notify :priority "1" "mailto:a@example.org";', "unknown tag"),
    (REQ + 'notify;', "positional"),
    ('require "variables"; set :encodeurl "a" "b";', 'needs require "enotify"'),
    (REQ + 'set :encodeurl :quotewildcard "a" "b";', None),  # different precedences: allowed
    (REQ + 'if notify_method_capability "mailto:a@example.org" "online" { keep; }', "positional"),
])
def test_compile_errors(script: str, msg: str | None) -> None:
    if msg is None:
        compile_script(script)
        return
    with pytest.raises(SieveSyntaxError, match=msg):
        compile_script(script)


def test_ihave_enotify() -> None:
    res = run('require ["ihave"]; if ihave "enotify" { if valid_notify_method "mailto:a@example.org" '
              '{ notify "mailto:a@example.org"; } }', msg=MSG)
    assert res.actions[0] == Notify("mailto:a@example.org")


# ------------------------------------------------------------------ fcc (RFC 8580)

FCC = 'require ["enotify", "vacation", "fcc", "imap4flags", "mailbox", "special-use", "variables"];\n'


def test_notify_fcc() -> None:
    res = run(FCC + 'notify :fcc "Sent" :flags ["\\\\Flagged", "bad(flag"] :create :specialuse "\\\\Sent" '
              '"mailto:a@example.org";', msg=MSG)
    n = res.actions[0]
    assert n == Notify("mailto:a@example.org", fcc="Sent", fcc_flags=("\\Flagged",), fcc_create=True,
                       fcc_special_use="\\Sent")
    assert any("invalid flags" in x for x in res.log)


def test_vacation_fcc() -> None:
    res = run(FCC + 'vacation :fcc "Sent/${x}" :subject "Away" "I am away";'.replace("${x}", "auto"), msg=MSG,
              envelope=ENVELOPE)
    v = res.actions[0]
    assert isinstance(v, Vacation) and v.fcc == "Sent/auto" and v.fcc_flags == () and not v.fcc_create


def test_vacation_fcc_without_reply_files_nothing() -> None:
    msg = message("From: alice@example.com", "To: someone-else@example.org", "Subject: x")
    res = run(FCC + 'vacation :fcc "Sent" "away";', msg=msg)
    assert res.actions == [Keep(implicit=True)]


def test_fcc_runtime_bad_mailbox() -> None:
    with pytest.raises(SieveRuntimeError, match="invalid mailbox name"):
        run(FCC + 'set "m" ""; notify :fcc "${m}" "mailto:a@example.org";', msg=MSG)


@pytest.mark.parametrize("script,msg", [
    ('require ["enotify"]; notify :fcc "Sent" "mailto:a@example.org";', 'needs require "fcc"'),
    (FCC + 'notify :flags "\\\\Seen" "mailto:a@example.org";', ":flags needs :fcc"),
    (FCC + 'vacation :create "away";', ":create needs :fcc"),
    (FCC + 'vacation :specialuse "\\\\Sent" "away";', ":specialuse needs :fcc"),
    (FCC + 'vacation :fcc "" "away";', "invalid mailbox name"),
    (FCC + 'vacation :fcc "Sent" :specialuse "Sent" "away";', "not a special-use attribute"),
    ('require ["vacation", "fcc"]; vacation :fcc "Sent" :flags "x" "away";', 'needs require "imap4flags"'),
    ('require ["vacation", "fcc"]; vacation :fcc "Sent" :create "away";', 'needs require "mailbox"'),
])
def test_fcc_compile_errors(script: str, msg: str) -> None:
    with pytest.raises(SieveSyntaxError, match=msg):
        compile_script(script)
