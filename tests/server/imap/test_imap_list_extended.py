"""LIST-EXTENDED (RFC 5258), LIST-STATUS (RFC 5819), SPECIAL-USE LIST options and
CREATE-SPECIAL-USE (RFC 6154)."""

import re

import pytest
from imap_harness import PASSWORD, msg


def login(srv, acc):
    r = srv.raw()
    assert r.cmd(b'l LOGIN "%s" "%s"' % (acc.address.encode(), PASSWORD.encode()))[-1].startswith(b"l OK")
    return r


def lines(r, command):
    got = r.cmd(command)
    tag = command.split(b" ", 1)[0]
    assert got[-1].startswith(tag + b" OK"), got
    return [g.decode().rstrip("\r\n") for g in got[:-1]]


def test_capabilities(srv):
    r = srv.raw()
    for cap in (b"LIST-EXTENDED", b"LIST-STATUS", b"SPECIAL-USE", b"CREATE-SPECIAL-USE"):
        assert b" " + cap + b" " in r.greeting
    r.close()


def test_plain_list_unchanged(srv):
    acc = srv.new_user()
    r = login(srv, acc)
    assert lines(r, b'a LIST "" "%"')[0] == '* LIST (\\HasNoChildren) "/" "INBOX"'
    assert lines(r, b'b LIST "" ""') == ['* LIST (\\Noselect) "/" ""']
    assert lines(r, b'c LIST "" "" RETURN (CHILDREN)') == ['* LIST (\\Noselect) "/" ""']
    r.close()


def test_subscribed_selection_and_recursivematch(srv):
    acc = srv.new_user()
    r = login(srv, acc)
    for name in (b"Fruit/Apple", b"Fruit/Banana", b"Tofu", b"Vegetable/Broccoli"):
        lines(r, b"c CREATE " + name)
    for name in (b"Fruit/Banana", b"Tofu", b"Vegetable", b"Gone"):
        if name != b"Gone":
            lines(r, b"s SUBSCRIBE " + name)
    lines(r, b"g CREATE Gone")
    lines(r, b"g SUBSCRIBE Gone")
    lines(r, b"g DELETE Gone")  # subscribed, not even a parent now: \NonExistent
    lines(r, b"v DELETE Vegetable")  # a parent of Vegetable/Broccoli: \Noselect
    for name in (b"INBOX", b"Sent", b"Drafts", b"Trash", b"Junk", b"Archive"):
        lines(r, b"u UNSUBSCRIBE " + name)  # subscribed when the account was made
    got = lines(r, b'a LIST (SUBSCRIBED) "" "*"')
    assert got == [
        '* LIST (\\HasNoChildren \\Subscribed) "/" "Fruit/Banana"',
        '* LIST (\\NonExistent \\Subscribed) "/" "Gone"',
        '* LIST (\\HasNoChildren \\Subscribed) "/" "Tofu"',
        '* LIST (\\Noselect \\HasChildren \\Subscribed) "/" "Vegetable"',
    ]
    # RFC 5258 §3.5: "Fruit" has a subscribed child the pattern "%" does not reach.
    got = lines(r, b'b LIST (SUBSCRIBED RECURSIVEMATCH) "" "%"')
    assert got == [
        '* LIST (\\HasChildren) "/" "Fruit" ("CHILDINFO" ("SUBSCRIBED"))',
        '* LIST (\\NonExistent \\Subscribed) "/" "Gone"',
        '* LIST (\\HasNoChildren \\Subscribed) "/" "Tofu"',
        '* LIST (\\Noselect \\HasChildren \\Subscribed) "/" "Vegetable"',
    ]
    # REMOTE selects what a plain LIST does (no remote mailboxes here); RETURN (SUBSCRIBED) marks.
    got = lines(r, b'c LIST (REMOTE) "" "Fruit/*" RETURN (SUBSCRIBED CHILDREN)')
    assert got == ['* LIST (\\HasNoChildren) "/" "Fruit/Apple"',
                   '* LIST (\\HasNoChildren \\Subscribed) "/" "Fruit/Banana"']
    r.close()


def test_multiple_patterns_and_special_use(srv):
    acc = srv.new_user()
    r = login(srv, acc)
    lines(r, b"c CREATE Work/Reports")
    got = lines(r, b'a LIST () "" ("INBOX" "Work/%" "Sent" "INBOX")')
    assert got == ['* LIST (\\HasNoChildren) "/" "INBOX"', '* LIST (\\HasNoChildren \\Sent) "/" "Sent"',
                   '* LIST (\\HasNoChildren) "/" "Work/Reports"']
    got = lines(r, b'b LIST (SPECIAL-USE) "" "*" RETURN (SPECIAL-USE)')
    assert [g.rsplit(" ", 1)[1] for g in got] == ['"Archive"', '"Drafts"', '"Junk"', '"Sent"', '"Trash"']
    assert '* LIST (\\HasNoChildren \\Junk) "/" "Junk"' in got
    assert lines(r, b'c LIST (SPECIAL-USE) "" "Work*"') == []


def test_list_status(srv):
    acc = srv.new_user()
    m = msg("counted")
    srv.deliver(acc, m)
    srv.deliver(acc, m, flags=frozenset({"\\Seen"}))
    r = login(srv, acc)
    lines(r, b"c CREATE Parent/Child")
    lines(r, b"d DELETE Parent")
    got = lines(r, b'a LIST "" ("INBOX" "Parent*") RETURN (STATUS (MESSAGES UNSEEN SIZE))')
    assert got == [
        '* LIST (\\HasNoChildren) "/" "INBOX"',
        f'* STATUS "INBOX" (MESSAGES 2 UNSEEN 1 SIZE {2 * len(m)})',
        '* LIST (\\Noselect \\HasChildren) "/" "Parent"',  # not selectable: no STATUS (RFC 5819 §2)
        '* LIST (\\HasNoChildren) "/" "Parent/Child"',
        '* STATUS "Parent/Child" (MESSAGES 0 UNSEEN 0 SIZE 0)',
    ]
    r.close()


def test_list_status_imaplib(srv):
    acc = srv.new_user()
    srv.deliver(acc, msg("x"))
    c = srv.imaplib(acc)
    typ, _ = c._simple_command("LIST", '""', '"INBOX"', "RETURN", "(STATUS", "(MESSAGES))")
    assert typ == "OK"
    assert c.untagged_responses.pop("LIST") == [b'(\\HasNoChildren) "/" "INBOX"']
    assert c.untagged_responses.pop("STATUS") == [b'"INBOX" (MESSAGES 1)']
    c.logout()


@pytest.mark.parametrize("args", [
    b'(BOGUS) "" "*"', b'(RECURSIVEMATCH) "" "*"', b'(SUBSCRIBED "" "*"', b'() "" ()', b'"" ("a" "b"',
    b'"" "*" RETURN', b'"" "*" RETURN (BOGUS)', b'"" "*" RETURN (STATUS (MESSAGES BOGUS))',
    b'"" "*" RETURN (STATUS ())', b'"" "*" RETURN CHILDREN', b'"" "*" (CHILDREN)', b'() ""', b"()",
])
def test_list_malformed(srv, args):
    acc = srv.new_user()
    r = login(srv, acc)
    got = r.cmd(b"a LIST " + args)
    assert len(got) == 1 and got[0].startswith(b"a BAD "), got
    assert r.cmd(b"n NOOP") == [b"n OK NOOP completed\r\n"]
    r.close()


# -- CREATE-SPECIAL-USE (RFC 6154 §3) ---------------------------------------------------
def test_create_special_use(srv):
    acc = srv.new_user()
    r = login(srv, acc)
    got = r.cmd(b"a CREATE Spam (USE (\\Junk))")  # RFC 8474 §4.1: with the new MAILBOXID
    assert len(got) == 1 and re.fullmatch(rb"a OK \[MAILBOXID \([A-Za-z0-9_-]+\)\] Create completed\r\n", got[0]), got
    assert lines(r, b'b LIST "" "Spam"') == ['* LIST (\\HasNoChildren \\Junk) "/" "Spam"']
    assert r.cmd(b"c CREATE Plain (USE ())")[0].startswith(b"c OK [MAILBOXID (")
    assert lines(r, b'd LIST "" "Plain"') == ['* LIST (\\HasNoChildren) "/" "Plain"']
    for tag, args in ((b"e", b"Virtual (USE (\\All))"), (b"f", b"Two (USE (\\Sent \\Trash))"),
                      (b"g", b"Odd (USE (\\Custom))")):
        got = r.cmd(tag + b" CREATE " + args)
        assert got[0].startswith(tag + b" NO [USEATTR] "), got
    assert lines(r, b'h LIST "" ("Virtual" "Two" "Odd")') == []  # none was created
    assert r.cmd(b"i CREATE Spam (USE (\\Junk))")[0].startswith(b"i NO [ALREADYEXISTS]")
    r.close()
    c = srv.imapclient(acc)
    assert c.find_special_folder(b"\\Junk") in ("Junk", "Spam")
    c.logout()


@pytest.mark.parametrize("args", [b"Spam ()", b"Spam (USE)", b"Spam (USE \\Junk)", b"Spam (USE (Junk))",
                                  b"Spam (QUOTA (1))", b"Spam (USE (\\Junk)", b"Spam (USE (\\Junk)) x"])
def test_create_malformed(srv, args):
    acc = srv.new_user()
    r = login(srv, acc)
    got = r.cmd(b"a CREATE " + args)
    assert len(got) == 1 and got[0].startswith(b"a BAD "), got
    assert lines(r, b'b LIST "" "Spam"') == []
    r.close()
