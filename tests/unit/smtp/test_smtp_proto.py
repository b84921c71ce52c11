"""The session state machine, driven without sockets through a fake backend."""

import asyncio
import base64
import dataclasses

import pytest

from postroom.smtp.address import Path
from postroom.smtp.proto import AuthOutcome, Expect, Options, Session, State
from postroom.smtp.replies import r
from postroom.smtp.transaction import Resolved

USERS = {"joe@example.org": 1, "ann@example.org": 2}
ALIASES = {"team@example.org": ["joe@example.org", "ann@example.org"]}


class FakeBackend:
    def __init__(self):
        self.delivered = []

    async def is_local_domain(self, domain):
        return domain == "example.org"

    async def resolve(self, path: Path):
        key = path.key
        if key in ALIASES:
            return Resolved(tuple(USERS[t] for t in ALIASES[key]))
        if key in USERS:
            return Resolved((USERS[key],))
        return None

    async def expand(self, address):
        return ALIASES.get(address) or ([address] if address in USERS else None)

    async def sender_owners(self, address):
        return ALIASES.get(address, [])

    async def authenticate(self, user, password):
        return AuthOutcome(user if password == "pw" and user in USERS else None)

    async def deliver(self, peer, txn, body):
        self.delivered.append((peer, txn, body))
        return r(250, "2.0.0", "Ok: queued as X")

    async def has_room(self, size):
        return size != 999  # SIZE=999 stands for a message the disk has no room for

    async def over_quota(self, account_ids, size):
        return size == 998  # SIZE=998 stands for a message no recipient's quota can take

    async def check_helo(self, peer):
        return None

    async def check_mail(self, peer, txn):
        return None

    async def check_rcpt(self, peer, txn, rcpt):
        return None

    def replied(self, reply):
        pass

    async def etrn(self, domain):
        return {"busy.example": True, "@busy.example": True, "idle.example": False}.get(domain)


OPTS = Options(hostname="mx.example.org", submission=False, starttls=True, tls_active=False,
               auth_available=True, allow_plaintext_auth=False, trusted=False, max_size=1000,
               max_recipients=3, max_errors=5, vrfy=False, expn=False, require_sender_match=True,
               primary_domain="example.org")


def session(**kw):
    return Session(dataclasses.replace(OPTS, **kw), FakeBackend(), "192.0.2.9", "S1")


def run(s, *lines):
    async def go():
        out = []
        for line in lines:
            if isinstance(line, bytes):
                out.append(await s.data_end(line, False))
            else:
                out.append(await s.command(line.encode() + b"\r\n"))
        return out
    replies = asyncio.run(go())
    return [rep.code if rep else None for rep in replies], replies


def codes(s, *lines):
    return run(s, *lines)[0]


def test_happy_path_and_state():
    s = session()
    assert s.greeting().encode() == b"220 mx.example.org ESMTP Postroom\r\n"
    c, reps = run(s, "EHLO client.example", "MAIL FROM:<x@remote.example>", "RCPT TO:<joe@example.org>",
                  "DATA", b"Subject: hi\r\n\r\nbody\r\n")
    assert c == [250, 250, 250, 354, 250]
    ehlo = reps[0].encode().decode()
    for ext in ("PIPELINING", "SIZE 1000", "8BITMIME", "ENHANCEDSTATUSCODES", "STARTTLS", "DSN",
                "SMTPUTF8", "CHUNKING"):
        assert f"250-{ext}\r\n" in ehlo or f"250 {ext}\r\n" in ehlo
    assert "AUTH" not in ehlo  # not offered without TLS
    assert s.state is State.READY
    assert s.backend.delivered[0][2] == b"Subject: hi\r\n\r\nbody\r\n"


@pytest.mark.parametrize("lines,expected", [
    (["MAIL FROM:<a@b.example>"], [503]),
    (["HELO x", "RCPT TO:<joe@example.org>"], [250, 503]),
    (["HELO x", "DATA"], [250, 503]),
    (["HELO x", "MAIL FROM:<a@b.example>", "DATA"], [250, 250, 554]),
    (["HELO x", "MAIL FROM:<a@b.example>", "MAIL FROM:<a@b.example>"], [250, 250, 503]),
    (["EHLO x", "MAIL FROM:<a@b.example>", "RCPT TO:<joe@example.org>", "AUTH PLAIN"], [250, 250, 250, 503]),
    (["EHLO x", "MAIL FROM:<a@b.example>", "RSET", "RCPT TO:<joe@example.org>"], [250, 250, 250, 503]),
    (["NOOP", "RSET", "HELP", "VRFY joe", "EXPN team"], [250, 250, 214, 252, 502]),
    (["FOO"], [500]),
    (["EHLO"], [501]),
    (["HELO x", "MAIL TO:<a@b.example>"], [250, 501]),
    (["HELO x", "MAIL FROM:<a@b.example> SIZE=10"], [250, 555]),  # params need EHLO
    (["EHLO x", "MAIL FROM:<a@b.example> FOO=bar"], [250, 555]),
    (["EHLO x", "MAIL FROM:<a@b.example> SIZE=1001"], [250, 552]),
    (["EHLO x", "MAIL FROM:<a@b.example> SIZE=1000 BODY=8BITMIME RET=HDRS ENVID=a+2Bb"], [250, 250]),
    (["EHLO x", "MAIL FROM:<a@b.example> BODY=BINARYMIME"], [250, 501]),
    (["EHLO x", "MAIL FROM:<a@b.example> SIZE=999"], [250, 452]),  # fits the limit, not the disk
    # Non-ASCII digits ("²".isdigit() is True, int("²") raises): found by fuzzing, was a 421 + traceback.
    (["EHLO x", "MAIL FROM:<a@b.example> SIZE=²"], [250, 501]),
    (["EHLO x", "MAIL FROM:<a@b.example> SIZE=٣"], [250, 501]),
    (["EHLO x", "MAIL FROM:<a@b.example>", "RCPT TO:<joe@example.org>", "BDAT ² LAST"], [250, 250, 250, 501]),
    (["EHLO x", "MAIL FROM:<ü@b.example>"], [250, 553]),
    (["EHLO x", "MAIL FROM:<ü@b.example> SMTPUTF8"], [250, 250]),
    (["EHLO x", "MAIL FROM:<a@b.example>", "RCPT TO:<nobody@example.org>"], [250, 250, 550]),
    (["EHLO x", "MAIL FROM:<a@b.example>", "RCPT TO:<x@elsewhere.example>"], [250, 250, 554]),
    (["EHLO x", "MAIL FROM:<a@b.example>", "RCPT TO:<joe%elsewhere.example@example.org>"], [250, 250, 550]),
    (["EHLO x", "MAIL FROM:<a@b.example>", "RCPT TO:<joe@example.org.>"], [250, 250, 501]),
    (["EHLO x", "MAIL FROM:<a@b.example>", "RCPT TO:<joe@example.org> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;joe@example.org"],
     [250, 250, 250]),
    (["EHLO x", "MAIL FROM:<a@b.example>", "RCPT TO:<joe@example.org> NOTIFY=NEVER,SUCCESS"], [250, 250, 501]),
    (["EHLO x", "MAIL FROM:<a@b.example>", "RCPT TO:<joe@example.org> ORCPT=rfc822"], [250, 250, 501]),
    (["EHLO x", "MAIL FROM:<a@b.example>", "RCPT TO:<Postmaster>"], [250, 250, 550]),
    (["EHLO x", "MAIL FROM:<a@b.example>", "RCPT TO:<team@example.org>", "RCPT TO:<joe@example.org>",
      "RCPT TO:<ann@example.org>", "RCPT TO:<joe@example.org>"], [250, 250, 250, 250, 250, 452]),
    (["EHLO x", "AUTH PLAIN AGpvZQBwdw=="], [250, 538]),
    (["EHLO x", "STARTTLS now"], [250, 501]),
    (["QUIT"], [221]),
])
def test_transcripts(lines, expected):
    assert codes(session(), *lines) == expected


def test_enhanced_codes_everywhere_but_greeting_and_ehlo():
    _, reps = run(session(), "EHLO x", "NOOP", "MAIL FROM:<a@b.example>", "RCPT TO:<q@example.org>", "FOO")
    assert reps[0].status is None
    assert all(rep.status for rep in reps[1:])


def test_errors_end_session():
    s = session()
    c, reps = run(s, *["FOO"] * 5)
    assert c == [500, 500, 500, 500, 421]
    assert s.expect is Expect.CLOSE


def test_starttls_resets_state_and_offers_auth():
    s = session()
    c, _ = run(s, "EHLO x", "STARTTLS")
    assert c == [250, 220] and s.expect is Expect.TLS
    s.tls_started("TLSv1.3")
    c, reps = run(s, "MAIL FROM:<a@b.example>", "EHLO x", "STARTTLS")
    assert c == [503, 250, 503]
    assert "250-AUTH PLAIN LOGIN" in reps[1].encode().decode()
    assert "STARTTLS" not in reps[1].encode().decode()


def test_auth_plain_login_and_cancel():
    s = session(tls_active=True)
    plain = base64.b64encode(b"\0joe@example.org\0pw").decode()
    assert codes(s, "EHLO x", f"AUTH PLAIN {plain}", "AUTH PLAIN") == [250, 235, 503]
    assert s.login == "joe@example.org"

    s = session(tls_active=True)
    assert codes(s, "EHLO x", "AUTH LOGIN") == [250, 334]
    assert s.expect is Expect.SASL

    async def steps():
        a = await s.sasl_line(base64.b64encode(b"ann@example.org") + b"\r\n")
        b = await s.sasl_line(base64.b64encode(b"wrong") + b"\r\n")
        return a, b
    a, b = asyncio.run(steps())
    assert a.encode() == b"334 UGFzc3dvcmQ6\r\n" and b.code == 535 and s.login is None

    s = session(tls_active=True)
    codes(s, "EHLO x", "AUTH PLAIN")
    assert asyncio.run(s.sasl_line(b"*\r\n")).code == 501
    assert s.expect is Expect.LINE
    assert codes(s, "AUTH CRAM-MD5", "AUTH PLAIN !!!") == [504, 501]


def test_submission_requires_auth_and_sender_match():
    s = session(submission=True)
    assert codes(s, "EHLO x", "MAIL FROM:<joe@example.org>") == [250, 530]
    s = session(submission=True, tls_active=True)
    plain = base64.b64encode(b"\0joe@example.org\0pw").decode()
    assert codes(s, "EHLO x", "MAIL FROM:<joe@example.org>", f"AUTH PLAIN {plain}",
                 "MAIL FROM:<ann@example.org>", "MAIL FROM:<team@example.org>", "RSET",
                 "MAIL FROM:<joe+x@example.org>", "RCPT TO:<someone@elsewhere.example>") == [
        250, 530, 235, 553, 250, 250, 250, 250]
    s = session(submission=True, tls_active=True, require_sender_match=False)
    codes(s, "EHLO x", f"AUTH PLAIN {plain}")
    assert codes(s, "MAIL FROM:<ann@example.org>") == [250]


def test_trusted_network_may_relay():
    assert codes(session(trusted=True), "EHLO x", "MAIL FROM:<a@b.example>", "RCPT TO:<x@elsewhere.example>") == [
        250, 250, 250]


def test_vrfy_expn_enabled():
    s = session(vrfy=True, expn=True)
    c, reps = run(s, "VRFY joe@example.org", "VRFY nobody@example.org", "VRFY x@elsewhere.example",
                  "EXPN team@example.org", "EXPN nobody@example.org", "VRFY")
    assert c == [250, 550, 252, 250, 550, 501]
    assert reps[3].encode() == b"250-2.1.5 <joe@example.org>\r\n250 2.1.5 <ann@example.org>\r\n"


def test_bdat():
    s = session()
    c = codes(s, "EHLO x", "MAIL FROM:<a@b.example>", "RCPT TO:<joe@example.org>", "BDAT 5")
    assert c == [250, 250, 250, None] and s.expect is Expect.CHUNK and s.chunk_size == 5

    async def chunks():
        a = await s.bdat_chunk(b"Hi: x")
        assert await s.command(b"DATA\r\n") is not None  # 503 inside BDAT
        assert await s.command(b"BDAT 7 LAST\r\n") is None
        return a, await s.bdat_chunk(b"\r\n\r\nyo\r\n")
    a, b = asyncio.run(chunks())
    assert a.code == 250 and b.code == 250
    assert s.backend.delivered[0][2] == b"Hi: x\r\n\r\nyo\r\n"


def test_bdat_out_of_order_is_read_and_refused():
    s = session()
    assert codes(s, "EHLO x", "BDAT 3 LAST") == [250, None]
    assert s.expect is Expect.CHUNK
    assert asyncio.run(s.bdat_chunk(b"abc")).code == 503
    assert codes(s, "BDAT x") == [501] and s.expect is Expect.CLOSE


def test_bdat_too_big():
    s = session()
    codes(s, "EHLO x", "MAIL FROM:<a@b.example>", "RCPT TO:<joe@example.org>", "BDAT 2000 LAST")
    assert asyncio.run(s.bdat_chunk(b"", dropped=2000)).code == 552
    assert s.state is State.READY


def test_bad_bytes_in_command():
    s = session()
    assert asyncio.run(s.command(b"NOOP\rMAIL\r\n")).code == 500
    assert asyncio.run(s.command(b"\xff\xfe\r\n")).code == 500
    assert asyncio.run(s.command(b"GET / HTTP/1.1\r\n")).code == 421


def test_etrn():
    """RFC 1985: only for clients that may relay; 250 started, 251 nothing waiting, 458/459."""
    codes, reps = run(session(), "EHLO c.example", "ETRN busy.example")
    assert "ETRN" in reps[0].lines
    assert codes[1] == 459  # not authenticated, not trusted
    codes, _ = run(session(trusted=True), "EHLO c.example", "ETRN busy.example", "ETRN @busy.example",
                   "ETRN idle.example", "ETRN other.example", "ETRN #queue", "ETRN", "ETRN bad..domain")
    assert codes == [250, 250, 250, 251, 458, 458, 501, 501]
    codes, _ = run(session(trusted=True), "ETRN busy.example", "EHLO c.example", "MAIL FROM:<a@b.example>",
                   "ETRN busy.example")
    assert codes == [503, 250, 250, 503]  # after EHLO and outside a transaction only


def test_an_unavailable_store_at_rcpt_is_a_temporary_error_and_the_session_goes_on():
    """A database restarting under RCPT (scale-out on PostgreSQL): 451, not a 421 that drops the
    session with a traceback logged; the next RCPT, once the store is back, is accepted."""
    from postroom.errors import StoreUnavailable

    s = session()
    real = s.backend.resolve
    calls = []

    async def flaky(path):
        calls.append(path)
        if len(calls) == 1:
            raise StoreUnavailable("connection lost")
        return await real(path)

    s.backend.resolve = flaky
    got, replies = run(s, "EHLO c.example", "MAIL FROM:<x@else.example>", "RCPT TO:<joe@example.org>",
                       "RCPT TO:<joe@example.org>")
    assert got == [250, 250, 451, 250]
    assert replies[2].status == "4.3.0"
    assert s.errors == 0


@pytest.mark.parametrize("kw", [{}, {"allow_plaintext_auth": True}, {"tls_active": True}, {"starttls": False},
                                {"gssapi": ("GSSAPI",)}])
def test_ehlo_reply_wire_form_is_the_generic_encoding(kw):
    # The extension lines' wire form is kept per process (proto._ehlo_tail): what goes out
    # must still be Reply.encode's form of the reply's lines, for every set of extensions.
    for name in ("client.example", "other.example", "[192.0.2.1]"):
        s = session(**kw)
        _, [reply] = run(s, f"EHLO {name}")
        assert reply.lines[0] == f"mx.example.org Hello {name} [192.0.2.9]"
        assert list(reply.lines[1:]) == s.extensions()
        assert reply.encode() == r(250, None, *reply.lines).encode()


def test_ehlo_reply_follows_the_session_after_starttls_and_auth():
    s = session(allow_plaintext_auth=True)
    _, [before] = run(s, "EHLO a.example")
    assert "STARTTLS" in before.lines and any(x.startswith("AUTH ") for x in before.lines)
    s.tls_started("TLSv1.3")
    run(s, "EHLO a.example", "AUTH PLAIN " + base64.b64encode(b"\0joe@example.org\0pw").decode())
    _, [after] = run(s, "EHLO a.example")
    assert "STARTTLS" not in after.lines and not any(x.startswith("AUTH ") for x in after.lines)
    assert after.encode() == r(250, None, *after.lines).encode()


def test_the_backend_sees_the_client_as_it_is_now():
    # Session._peer gives the same Peer again while the client's identity is unchanged, and
    # a new one as soon as HELO, TLS or a login changes it.
    s = session(allow_plaintext_auth=True)
    run(s, "HELO one.example", "MAIL FROM:<a@b.example>", "RCPT TO:<joe@example.org>")
    run(s, "EHLO two.example", "AUTH PLAIN " + base64.b64encode(b"\0joe@example.org\0pw").decode(),
        "MAIL FROM:<joe@example.org>", "RCPT TO:<joe@example.org>", "DATA", b"Subject: x\r\n\r\nbody\r\n")
    [(peer, _, _)] = s.backend.delivered
    assert (peer.helo, peer.esmtp, peer.login, peer.tls) == ("two.example", True, "joe@example.org", None)
    s.tls_started("TLSv1.3 cipher")
    run(s, "EHLO three.example", "MAIL FROM:<c@d.example>", "RCPT TO:<ann@example.org>", "DATA",
        b"Subject: y\r\n\r\nbody\r\n")
    peer2 = s.backend.delivered[1][0]
    assert (peer2.helo, peer2.login, peer2.tls) == ("three.example", None, "TLSv1.3 cipher")
    assert s._peer() is s._peer()
