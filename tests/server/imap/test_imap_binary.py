"""BINARY (RFC 3516): FETCH BINARY[…]<partial>, BINARY.PEEK, BINARY.SIZE, literal8 in both
directions, NO [UNKNOWN-CTE]. Raw transcripts and imaplib."""

import base64
import email
import email.policy

from imap_harness import PASSWORD

PAYLOAD = bytes(range(256)) * 3  # NULs and 8-bit octets

MIXED = (b"From: a@x.test\r\nTo: b@y.test\r\nSubject: bin\r\nMIME-Version: 1.0\r\n"
         b"Content-Type: multipart/mixed; boundary=\"B1\"\r\n\r\n"
         b"--B1\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
         b"caf=C3=A9 =3D soft=\r\nline\r\n"
         b"--B1\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
         + base64.encodebytes(PAYLOAD).replace(b"\n", b"\r\n")
         + b"--B1\r\nContent-Type: application/x-odd\r\nContent-Transfer-Encoding: x-uuencode\r\n\r\n"
         b"begin 644 f\r\n`\r\nend\r\n"
         b"--B1--\r\n")


def login(srv, acc, select=True):
    c = srv.raw()
    assert c.cmd(b"l LOGIN %s %s" % (acc.address.encode(), PASSWORD.encode()))[-1].startswith(b"l OK")
    if select:
        assert c.cmd(b"s SELECT INBOX")[-1].startswith(b"s OK")
    return c


def email_part(raw, n):
    return email.message_from_bytes(raw, policy=email.policy.compat32).get_payload()[n - 1].get_payload(decode=True)


def test_capability(srv):
    c = srv.imaplib()
    assert "BINARY" in c.capabilities
    c.logout()


def test_binary_parts_imaplib(srv):
    acc = srv.new_user()
    srv.deliver(acc, MIXED)
    c = srv.imaplib(acc, select="INBOX")
    typ, data = c.fetch("1", "(BINARY.PEEK[1] BINARY.PEEK[2] BINARY.SIZE[2] BINARY.SIZE[1])")
    assert typ == "OK"
    assert data[0][1] == "café = softline".encode() == email_part(MIXED, 1)
    assert data[1][1] == PAYLOAD == email_part(MIXED, 2)
    assert b"BINARY.SIZE[2] %d" % len(PAYLOAD) in data[2] and b"BINARY.SIZE[1] 16" in data[2]
    typ, data = c.fetch("1", "(FLAGS)")
    assert b"\\Seen" not in data[0]  # PEEK and SIZE leave \Seen alone
    c.logout()


def test_literal8_partial_and_seen(srv):
    acc = srv.new_user()
    srv.deliver(acc, MIXED)
    c = login(srv, acc)
    out = b"".join(c.cmd(b"f FETCH 1 (BINARY[2]<0.4>)"))
    # RFC 3516 §4.2: literal8 because the data holds a NUL; partial of the decoded data.
    assert out.startswith(b"* 1 FETCH (BINARY[2]<0> ~{4}\r\n\x00\x01\x02\x03")
    assert b"\\Seen" in out and out.endswith(b"f OK Fetch completed\r\n")
    out = b"".join(c.cmd(b"f FETCH 1 (BINARY.PEEK[1]<0.4>)"))
    assert b"BINARY[1]<0> {4}\r\ncaf\xc3" in out  # no NUL: a plain literal
    out = b"".join(c.cmd(b"f FETCH 1 (BINARY.PEEK[9] BINARY.SIZE[9])"))
    assert b'BINARY[9] {0}\r\n BINARY.SIZE[9] 0' in out
    out = b"".join(c.cmd(b"f UID FETCH 1 (BINARY.PEEK[])"))
    assert b"BINARY[] {%d}\r\n" % len(MIXED) in out
    c.close()


def test_unknown_cte(srv):
    acc = srv.new_user()
    srv.deliver(acc, MIXED)
    srv.deliver(acc, MIXED)
    c = login(srv, acc)
    for att in (b"BINARY.PEEK[3]", b"BINARY.SIZE[3]"):
        out = c.cmd(b"f FETCH 1:2 (UID " + att + b")")
        assert out[-1] == b"f NO [UNKNOWN-CTE] Unknown Content-Transfer-Encoding\r\n"
        assert not any(line.startswith(b"* ") and b"FETCH" in line for line in out)
    out = c.cmd(b"f FETCH 1 (BODY.PEEK[3])")  # BODY is unaffected
    assert out[-1].startswith(b"f OK")
    c.close()


def test_bad_syntax(srv):
    acc = srv.new_user()
    srv.deliver(acc, MIXED)
    c = login(srv, acc)
    for att in (b"BINARY[1.MIME]", b"BINARY[HEADER]", b"BINARY.SIZE[1]<0.2>", b"BINARY[0]", b"BINARY",
                b"BINARY[1.]"):
        assert c.cmd(b"f FETCH 1 (" + att + b")")[-1].startswith(b"f BAD"), att
    c.close()


def test_append_literal8(srv):
    acc = srv.new_user()
    c = login(srv, acc, select=False)
    message = b"From: a@x.test\r\nSubject: nul\r\nContent-Transfer-Encoding: binary\r\n\r\nx\x00y\xff\r\n"
    c.send(b"a APPEND INBOX ~{%d}\r\n" % len(message))
    assert c.line().startswith(b"+ ")
    c.send(message + b"\r\n")
    assert c.until_tagged(b"a")[-1].startswith(b"a OK [APPENDUID")
    assert c.cmd(b"b APPEND INBOX (\\Seen) ~{%d+}\r\n" % len(message) + message + b"\r\n")[-1].startswith(b"b OK")
    assert c.cmd(b"c APPEND INBOX ~x")[-1].startswith(b"c BAD")
    assert c.cmd(b"s SELECT INBOX")[-1].startswith(b"s OK")
    out = b"".join(c.cmd(b"f FETCH 1:2 (BINARY.PEEK[1] BINARY.SIZE[1])"))
    assert out.count(b"BINARY[1] ~{6}\r\nx\x00y\xff\r\n BINARY.SIZE[1] 6") == 2
    c.close()
