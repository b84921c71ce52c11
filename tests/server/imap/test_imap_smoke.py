from imap_harness import msg


def test_smoke(srv):
    acc = srv.new_user()
    srv.deliver(acc, msg("one"))
    c = srv.imaplib(acc)
    typ, data = c.select("INBOX")
    assert typ == "OK" and data == [b"1"]
    typ, data = c.fetch("1", "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)] ENVELOPE BODYSTRUCTURE)")
    assert typ == "OK", data
    print(data)
    c.logout()
