"""RFC 5490 mailbox (mailboxexists, fileinto :create), mboxmetadata and servermetadata,
and RFC 8579 special-use (fileinto :specialuse, specialuse_exists)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest
from sieve_helpers import FakeHost, run, truth

from postroom.sieve import SieveRuntimeError, SieveSyntaxError, compile_script
from postroom.sieve.api import FileInto, Keep


@dataclass
class BoxHost(FakeHost):
    """Mailboxes with special uses and metadata (mailbox None: server entries)."""

    uses: dict[str, set[str]] = field(default_factory=lambda: {"Junk": {"\\junk"}, "Sent": {"\\sent"}})
    meta: dict[tuple[str | None, str], str] = field(default_factory=dict)
    asked: list[tuple[str | None, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.mailboxes = {"INBOX", "Junk", "Sent", "lists/sieve"}

    def special_use_exists(self, mailbox: str | None, uses: Sequence[str]) -> bool:
        want = {u.lower() for u in uses}
        if mailbox is None:
            return all(any(u in have for have in self.uses.values()) for u in want)
        return want <= self.uses.get(mailbox, set())

    def metadata(self, mailbox: str | None, entry: str) -> str | None:
        self.asked.append((mailbox, entry))
        return self.meta.get((mailbox, entry.lower()))


META = {("INBOX", "/private/comment"): "Home box", (None, "/shared/admin"): "mailto:admin@example.org",
        ("Junk", "/shared/vendor/x"): ""}


# ------------------------------------------------------------------ mailbox


@pytest.mark.parametrize("test,expected", [
    ('mailboxexists "INBOX"', True),
    ('mailboxexists ["INBOX", "Junk"]', True),
    ('mailboxexists ["INBOX", "Nope"]', False),
    ('mailboxexists "lists/sieve"', True),
])
def test_mailboxexists(test: str, expected: bool) -> None:
    assert truth(test, '"mailbox"', host=BoxHost()) is expected


def test_fileinto_create() -> None:
    acts = run('require ["fileinto", "mailbox"]; fileinto :create "new/box"; fileinto "old";').actions
    assert acts == [FileInto("new/box", create=True), FileInto("old")]


def test_create_needs_mailbox() -> None:
    with pytest.raises(SieveSyntaxError, match='needs require "mailbox"'):
        compile_script('require "fileinto"; fileinto :create "x";')
    with pytest.raises(SieveSyntaxError, match='needs require "fileinto"'):
        compile_script('require "mailbox"; fileinto :create "x";')


def test_typical_use() -> None:
    script = '''require ["fileinto", "mailbox"];
    if mailboxexists "Junk" { fileinto "Junk"; } else { fileinto :create "Spam"; }'''
    assert run(script, host=BoxHost()).actions == [FileInto("Junk")]
    host = BoxHost()
    host.mailboxes = {"INBOX"}
    assert run(script, host=host).actions == [FileInto("Spam", create=True)]


# ------------------------------------------------------------------ metadata


@pytest.mark.parametrize("test,expected", [
    ('metadata "INBOX" "/private/comment" "home box"', True),
    ('metadata :is :comparator "i;octet" "INBOX" "/private/comment" "home box"', False),
    ('metadata :contains "INBOX" "/private/comment" "box"', True),
    ('metadata "Nope" "/private/comment" "home box"', False),
    ('metadata "INBOX" "/private/other" ""', False),  # absent: no value, not ""
    ('metadata :count "eq" :comparator "i;ascii-numeric" "INBOX" "/private/other" "0"', True),
    ('metadata "Junk" "/shared/vendor/x" ""', True),  # present and empty
    ('metadataexists "INBOX" "/private/comment"', True),
    ('metadataexists "INBOX" ["/private/comment", "/private/other"]', False),
    ('metadataexists "Nope" "/private/comment"', False),
    ('servermetadata :matches "/shared/admin" "mailto:*"', True),
    ('servermetadata "/shared/other" "x"', False),
    ('servermetadataexists "/shared/admin"', True),
    ('servermetadataexists ["/shared/admin", "/shared/nope"]', False),
])
def test_metadata(test: str, expected: bool) -> None:
    require = '["mboxmetadata", "servermetadata", "relational", "comparator-i;ascii-numeric"]'
    assert truth(test, require, host=BoxHost(meta=META)) is expected


def test_metadata_runtime_bad_entry_reads_absent() -> None:
    host = BoxHost(meta=META)
    res = run('require ["mboxmetadata", "variables"]; set "e" "/private/a*"; '
              'if metadataexists "INBOX" "${e}" { discard; }', host=host)
    assert res.actions == [Keep(implicit=True)]
    assert host.asked == []  # never handed to the host
    assert any("invalid entry name" in line for line in res.log)


def test_metadata_unknown_mailbox_not_asked() -> None:
    host = BoxHost(meta=META)
    assert truth('metadata "Nope" "/private/comment" "x"', '"mboxmetadata"', host=host) is False
    assert host.asked == []


def test_metadata_match_variables() -> None:
    res = run('require ["servermetadata", "variables", "fileinto"]; '
              'if servermetadata :matches "/shared/admin" "mailto:*" { fileinto "${1}"; }', host=BoxHost(meta=META))
    assert res.actions == [FileInto("admin@example.org")]


@pytest.mark.parametrize("script,msg", [
    ('require "mboxmetadata"; if metadata "INBOX" "/comment" "x" { keep; }', "not a metadata entry name"),
    ('require "mboxmetadata"; if metadataexists "INBOX" ["/private/ok", "/private/"] { keep; }',
     "not a metadata entry name"),
    ('require "servermetadata"; if servermetadataexists "/shared/a%" { keep; }', "not a metadata entry name"),
    ('require "mboxmetadata"; if servermetadata "/shared/a" "x" { keep; }', 'needs require "servermetadata"'),
    ('require "servermetadata"; if metadata "INBOX" "/shared/a" "x" { keep; }', 'needs require "mboxmetadata"'),
    ('if mailboxexists "INBOX" { keep; }', 'needs require "mailbox"'),
    ('require "mboxmetadata"; if metadata "INBOX" "/shared/a" { keep; }', "positional"),
])
def test_compile_errors(script: str, msg: str) -> None:
    with pytest.raises(SieveSyntaxError, match=msg):
        compile_script(script)


# ------------------------------------------------------------------ special-use


@pytest.mark.parametrize("test,expected", [
    ('specialuse_exists "\\\\Junk"', True),
    ('specialuse_exists ["\\\\Junk", "\\\\Sent"]', True),
    ('specialuse_exists ["\\\\Junk", "\\\\Trash"]', False),
    ('specialuse_exists "Junk" "\\\\Junk"', True),
    ('specialuse_exists "Sent" "\\\\Junk"', False),
    ('specialuse_exists "Nope" "\\\\Junk"', False),
])
def test_specialuse_exists(test: str, expected: bool) -> None:
    assert truth(test, '"special-use"', host=BoxHost()) is expected


def test_fileinto_specialuse() -> None:
    acts = run('require ["fileinto", "special-use", "mailbox"]; '
               'fileinto :specialuse "\\\\Junk" :create "Spam";', host=BoxHost()).actions
    assert acts == [FileInto("Spam", special_use="\\Junk", create=True)]


def test_specialuse_runtime_invalid() -> None:
    with pytest.raises(SieveRuntimeError, match="invalid special-use"):
        run('require ["fileinto", "special-use", "variables"]; set "u" "Junk"; fileinto :specialuse "${u}" "x";')
    res = run('require ["special-use", "variables"]; set "u" "\\\\bad(use"; '
              'if specialuse_exists "${u}" { discard; }', host=BoxHost())
    assert res.actions == [Keep(implicit=True)]


@pytest.mark.parametrize("script,msg", [
    ('require ["fileinto", "special-use"]; fileinto :specialuse "Junk" "x";', "not a special-use attribute"),
    ('require ["fileinto", "special-use"]; fileinto :specialuse "\\\\" "x";', "not a special-use attribute"),
    ('require "special-use"; if specialuse_exists ["\\\\Junk", "\\\\a b"] { keep; }', "not a special-use"),
    ('require "fileinto"; fileinto :specialuse "\\\\Junk" "x";', 'needs require "special-use"'),
    ('require "special-use"; if specialuse_exists { keep; }', "positional"),
])
def test_specialuse_compile_errors(script: str, msg: str) -> None:
    with pytest.raises(SieveSyntaxError, match=msg):
        compile_script(script)


def test_ihave_mailbox_family() -> None:
    res = run('require ["ihave", "fileinto"]; if ihave ["mailbox", "special-use"] '
              '{ if allof(mailboxexists "Junk", specialuse_exists "Junk" "\\\\Junk") { fileinto "Junk"; } }',
              host=BoxHost())
    assert res.actions == [FileInto("Junk")]
