"""Every ManageSieve command against a real server over TLS (RFC 5804 §2), and what it
leaves in the store."""

from __future__ import annotations

import pytest
from managesieve_harness import Harness, capabilities

from postroom.sieve import SUPPORTED_EXTENSIONS

SIEVE_SETTINGS = 'max_scripts = 3\nmax_script_size = "2k"\nmax_redirects = 2\n'

FILTER = 'require "fileinto";\r\nif header :contains "subject" "[list]" {\r\n  fileinto "Lists";\r\n}\r\n'
BROKEN = 'require "fileinto";\r\nif header :contains "subject" {\r\n  keep;\r\n}\r\n'


def test_greeting_and_capability(srv: Harness) -> None:
    c = srv.client(tls=False)
    try:
        assert c.greeting is not None and c.greeting.status == "OK"
        caps = capabilities(c.greeting)
        assert caps["IMPLEMENTATION"] == "Postroom"
        assert caps["VERSION"] == "1.0"
        assert caps["SIEVE"] is not None and set(caps["SIEVE"].split()) == set(SUPPORTED_EXTENSIONS)
        assert caps["MAXREDIRECTS"] == "2"
        assert "UNAUTHENTICATE" in caps and "STARTTLS" in caps
        assert ("NOTIFY" in caps) == ("enotify" in SUPPORTED_EXTENSIONS)
        assert caps["SASL"] == ""  # RFC 5804 §1.7: plaintext mechanisms only after STARTTLS
        assert capabilities(c.command("CAPABILITY")) == caps
        after_tls = capabilities(c.starttls())
        assert after_tls["SASL"] == "PLAIN LOGIN" and "STARTTLS" not in after_tls
        acc = srv.new_user()
        assert c.authenticate_plain(acc.address, "secret").status == "OK"
        assert capabilities(c.command("CAPABILITY"))["OWNER"] == acc.address
    finally:
        c.close()


def test_put_get_list_activate(srv: Harness) -> None:
    acc = srv.new_user()
    c = srv.login(acc)
    try:
        assert c.command("LISTSCRIPTS").lines == []
        r = c.putscript("lists", FILTER)
        assert (r.status, r.code) == ("OK", None), r
        assert c.putscript("plain", "keep;\r\n", sync=True).status == "OK"  # the {N} form too
        assert c.command('PUTSCRIPT "quoted" "discard;"').status == "OK"  # a quoted string is a string too
        assert c.command("LISTSCRIPTS").lines == [b'"lists"', b'"plain"', b'"quoted"']
        got = c.command('GETSCRIPT "lists"')
        assert got.status == "OK" and got.lines == [b"{%d}\r\n" % len(FILTER) + FILTER.encode()]
        assert srv.call(srv.store.get_active_sieve_script(acc.id)) is None
        assert c.command('SETACTIVE "lists"').status == "OK"
        assert c.command("LISTSCRIPTS").lines == [b'"lists" ACTIVE', b'"plain"', b'"quoted"']
        # OK means stored: delivery sees it at once.
        assert srv.call(srv.store.get_active_sieve_script(acc.id)) == ("lists", FILTER)
        assert c.command('SETACTIVE "plain"').status == "OK"
        assert c.command("LISTSCRIPTS").lines == [b'"lists"', b'"plain" ACTIVE', b'"quoted"']
        assert c.command('SETACTIVE ""').status == "OK"  # RFC 5804 §2.8: deactivate
        assert srv.call(srv.store.get_active_sieve_script(acc.id)) is None
        # Replacing a script keeps it active.
        assert c.command('SETACTIVE "plain"').status == "OK"
        assert c.putscript("plain", "discard;\r\n").status == "OK"
        assert srv.call(srv.store.get_active_sieve_script(acc.id)) == ("plain", "discard;\r\n")
    finally:
        c.close()


def test_missing_scripts_are_nonexistent(srv: Harness) -> None:
    c = srv.login(srv.new_user())
    try:
        for cmd in ('GETSCRIPT "nope"', 'SETACTIVE "nope"', 'DELETESCRIPT "nope"', 'RENAMESCRIPT "nope" "new"'):
            r = c.command(cmd)
            assert (r.status, r.code) == ("NO", "NONEXISTENT"), (cmd, r)
    finally:
        c.close()


def test_delete_and_rename(srv: Harness) -> None:
    acc = srv.new_user()
    c = srv.login(acc)
    try:
        for name in ("a", "b"):
            assert c.putscript(name, "keep;").status == "OK"
        assert c.command('SETACTIVE "a"').status == "OK"
        r = c.command('DELETESCRIPT "a"')
        assert (r.status, r.code) == ("NO", "ACTIVE"), r  # RFC 5804 §2.10
        r = c.command('RENAMESCRIPT "a" "b"')
        assert (r.status, r.code) == ("NO", "ALREADYEXISTS"), r
        assert c.command('RENAMESCRIPT "a" "main"').status == "OK"
        assert c.command("LISTSCRIPTS").lines == [b'"b"', b'"main" ACTIVE']  # the flag moves with it
        assert c.command('DELETESCRIPT "b"').status == "OK"
        assert c.command("LISTSCRIPTS").lines == [b'"main" ACTIVE']
        assert srv.call(srv.store.get_active_sieve_script(acc.id)) == ("main", "keep;")
    finally:
        c.close()


def test_validation_errors_name_line_and_column(srv: Harness) -> None:
    c = srv.login(srv.new_user())
    try:
        for r in (c.putscript("broken", BROKEN), c.command(b"CHECKSCRIPT {%d+}\r\n" % len(BROKEN) + BROKEN.encode())):
            assert r.status == "NO" and r.text.startswith("line 2, column "), r
        assert c.command("LISTSCRIPTS").lines == []  # nothing stored
        r = c.command(b"CHECKSCRIPT {%d+}\r\n" % len(FILTER) + FILTER.encode())
        assert r.status == "OK", r
        r = c.putscript("ext", 'require "no-such-extension";\r\nkeep;\r\n')
        assert r.status == "NO" and "line 1" in r.text, r
        r = c.putscript("utf8", b"# \xff\xfe\r\nkeep;\r\n")
        assert r.status == "NO" and "UTF-8" in r.text, r
    finally:
        c.close()


def test_quotas(srv: Harness) -> None:
    acc = srv.new_user()
    c = srv.login(acc)
    try:
        assert c.command('HAVESPACE "x" 2048').status == "OK"
        r = c.command('HAVESPACE "x" 2049')
        assert (r.status, r.code) == ("NO", "QUOTA/MAXSIZE"), r
        big = "#" * 2100 + "\r\nkeep;\r\n"
        r = c.putscript("big", big)
        assert (r.status, r.code) == ("NO", "QUOTA/MAXSIZE"), r
        r = c.command(b"CHECKSCRIPT {%d+}\r\n" % len(big) + big.encode())
        assert (r.status, r.code) == ("NO", "QUOTA/MAXSIZE"), r
        for i in range(3):
            assert c.putscript(f"s{i}", "keep;").status == "OK"
        r = c.putscript("s3", "keep;")
        assert (r.status, r.code) == ("NO", "QUOTA/MAXSCRIPTS"), r
        r = c.command('HAVESPACE "s3" 10')
        assert (r.status, r.code) == ("NO", "QUOTA/MAXSCRIPTS"), r
        # Replacing an existing script is not a new one.
        assert c.command('HAVESPACE "s0" 10').status == "OK"
        assert c.putscript("s0", "discard;").status == "OK"
        assert len(c.command("LISTSCRIPTS").lines) == 3
        assert c.command("NOOP").status == "OK"  # still in step after the refusals
    finally:
        c.close()


@pytest.mark.parametrize("name", ["", "a\\u0001b", "x" * 300])
def test_bad_names_are_refused(srv: Harness, name: str) -> None:
    c = srv.login(srv.new_user())
    try:
        value = name.encode().decode("unicode_escape")
        r = c.command(b'PUTSCRIPT ' + b"{%d+}\r\n" % len(value.encode()) + value.encode() + b' "keep;"')
        assert r.status == "NO" and "name" in r.text.lower(), r
        assert c.command("LISTSCRIPTS").lines == []
    finally:
        c.close()


def test_unicode_names(srv: Harness) -> None:
    c = srv.login(srv.new_user())
    try:
        assert c.putscript("Règles d'été", "keep;").status == "OK"
        assert c.command("LISTSCRIPTS").lines == ['"Règles d\'été"'.encode()]
        assert c.command('GETSCRIPT "Règles d\'été"'.encode()).status == "OK"
    finally:
        c.close()


def test_scripts_are_per_account(srv: Harness) -> None:
    a, b = srv.new_user(), srv.new_user()
    ca, cb = srv.login(a), srv.login(b)
    try:
        assert ca.putscript("mine", "keep;").status == "OK"
        assert cb.command("LISTSCRIPTS").lines == []
        assert cb.command('GETSCRIPT "mine"').code == "NONEXISTENT"
    finally:
        ca.close()
        cb.close()


def test_noop_unauthenticate_logout(srv: Harness) -> None:
    acc = srv.new_user()
    c = srv.login(acc)
    try:
        r = c.command('NOOP "tag-1"')
        assert (r.status, r.code, r.text) == ("OK", 'TAG "tag-1"', "Done")  # RFC 5804 §2.13
        assert c.command("UNAUTHENTICATE").status == "OK"
        r = c.command("LISTSCRIPTS")
        assert r.status == "NO" and "after login" in r.text
        assert "OWNER" not in capabilities(c.command("CAPABILITY"))
        assert c.authenticate_plain(acc.address, "secret").status == "OK"  # may log in again
        assert c.command("LOGOUT").status == "OK"
        c.sock.settimeout(5)
        assert c.sock.recv(10) == b""  # the server closed the connection
    finally:
        c.close()
