"""Whole sessions through the command table, without sockets (fake store)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from typing import Any, Awaitable, Callable

import pytest

from postroom.pop3.proto import Action, State
from postroom.pop3.settings import Pop3Settings

from pop3_fakes import FakeStore, Transcript, make_ctx

MSG1 = b"Subject: one\r\n\r\nbody one\r\n"
MSG2 = b"Subject: two\r\n\r\n.leading dot\r\n..two dots\r\nend\r\n"


@pytest.fixture
def env() -> tuple[FakeStore, Any]:
    store = FakeStore()
    alice = store.add_account("alice@example.test", "secret", apop_secret="tanstaaf")
    store.add_message(alice, MSG1)
    store.add_message(alice, MSG2)
    store.add_account("bob@example.test", "bobpw")
    return store, alice


def run(fn: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(fn())


def test_authorization_state_refuses_transaction_commands(env: Any) -> None:
    store, _ = env

    async def go() -> None:
        t = Transcript(make_ctx(store))
        for verb in ("STAT", "LIST", "RETR 1", "DELE 1", "NOOP", "RSET", "TOP 1 1", "UIDL"):
            assert (await t.send(verb)).startswith(b"-ERR"), verb
        assert t.session.state is State.AUTHORIZATION
    run(go)


def test_user_pass_and_transaction_commands(env: Any) -> None:
    store, alice = env

    async def go() -> None:
        t = Transcript(make_ctx(store))
        assert await t.send("PASS secret") == b"-ERR Send USER first\r\n"
        assert await t.send("USER alice@example.test") == b"+OK Send your password\r\n"
        assert (await t.send("PASS secret")).startswith(b"+OK Logged in, 2 messages")
        assert t.session.state is State.TRANSACTION
        assert await t.send("STAT") == f"+OK 2 {len(MSG1) + len(MSG2)}\r\n".encode()
        assert await t.send("LIST") == (f"+OK 2 messages\r\n1 {len(MSG1)}\r\n2 {len(MSG2)}\r\n.\r\n"
                                        .encode())
        assert await t.send("LIST 2") == f"+OK 2 {len(MSG2)}\r\n".encode()
        assert (await t.send("LIST 3")).startswith(b"-ERR")
        assert await t.send("UIDL") == b"+OK 2 messages\r\n1 1234.1\r\n2 1234.2\r\n.\r\n"
        assert await t.send("UIDL 1") == b"+OK 1 1234.1\r\n"
        assert await t.send("RETR 2") == (f"+OK {len(MSG2)} octets\r\n".encode() +
                                          b"Subject: two\r\n\r\n..leading dot\r\n...two dots\r\nend\r\n.\r\n")
        assert await t.send("TOP 2 1") == b"+OK Top of message follows\r\nSubject: two\r\n\r\n..leading dot\r\n.\r\n"
        assert (await t.send("TOP 2 x")).startswith(b"-ERR")
        assert await t.send("NOOP") == b"+OK\r\n"
        assert await t.send("DELE 1") == b"+OK Message 1 deleted\r\n"
        assert (await t.send("DELE 1")).startswith(b"-ERR")
        assert (await t.send("RETR 1")).startswith(b"-ERR")
        assert await t.send("STAT") == f"+OK 1 {len(MSG2)}\r\n".encode()
        assert await t.send("RSET") == f"+OK 2 messages ({len(MSG1) + len(MSG2)} octets)\r\n".encode()
        assert await t.send("DELE 2") == b"+OK Message 2 deleted\r\n"
        for verb in ("USER x", "PASS y", "APOP a b", "STLS", "AUTH PLAIN", "UTF8"):
            assert (await t.send(verb)).startswith(b"-ERR"), verb
        assert store.locked == {alice.id}
        reply = await t.send("QUIT")
        assert reply == b"+OK Logging out (1 messages left)\r\n"
        assert t.last is not None and t.last.action is Action.CLOSE
        assert t.session.state is State.UPDATE
        assert store.locked == set()
        assert list(store.messages[alice.id]) == [1]
        assert "\\Seen" not in store.flags(alice, 1)  # never retrieved
    run(go)


def test_retr_sets_seen_at_quit_only(env: Any) -> None:
    store, alice = env

    async def go() -> None:
        t = Transcript(make_ctx(store))
        await t.login()
        await t.send("RETR 1")
        assert "\\Seen" not in store.flags(alice, 1)
        await t.send("QUIT")
        assert "\\Seen" in store.flags(alice, 1)
    run(go)


def test_dropped_connection_deletes_nothing(env: Any) -> None:
    store, alice = env

    async def go() -> None:
        t = Transcript(make_ctx(store))
        await t.login()
        await t.send("DELE 1")
        await t.send("DELE 2")
        await t.session.close()  # what the server does when the socket goes away
        assert len(store.messages[alice.id]) == 2
        assert store.locked == set()
    run(go)


def test_in_use(env: Any) -> None:
    store, _ = env

    async def go() -> None:
        ctx = make_ctx(store)
        a, b = Transcript(ctx), Transcript(ctx)
        assert (await a.login()).startswith(b"+OK")
        assert await b.login() == b"-ERR [IN-USE] Maildrop is in use by another session\r\n"
        assert b.session.state is State.AUTHORIZATION
        await a.send("QUIT")
        assert (await b.login()).startswith(b"+OK")
    run(go)


def test_wrong_password_is_auth_code(env: Any) -> None:
    store, _ = env

    async def go() -> None:
        t = Transcript(make_ctx(store))
        assert (await t.login(password="nope")) == b"-ERR [AUTH] Authentication failed\r\n"
        assert (await t.login(user="nobody@example.test")) == b"-ERR [AUTH] Authentication failed\r\n"
        assert (await t.send("PASS secret")).startswith(b"-ERR Send USER")  # USER is forgotten
    run(go)


def test_throttled_after_failures_and_connection_closed(env: Any) -> None:
    store, _ = env

    async def go() -> None:
        ctx = make_ctx(store)
        settings = Pop3Settings(max_auth_failures=100)
        t = Transcript(ctx, settings)
        for _ in range(5):
            assert (await t.login(password="bad")).startswith(b"-ERR [AUTH]")
        # The authenticator now refuses this IP without checking, even the right password.
        assert (await t.login()).startswith(b"-ERR [SYS/TEMP]")
        t2 = Transcript(ctx, Pop3Settings(max_auth_failures=2))
        await t2.login(password="bad")
        await t2.login(password="bad")
        assert t2.last is not None and t2.last.action is Action.CLOSE
    run(go)


def test_plaintext_refused_without_tls(env: Any) -> None:
    store, _ = env

    async def go() -> None:
        t = Transcript(make_ctx(store), tls_active=False)
        capa = await t.send("CAPA")
        assert b"\r\nSTLS\r\n" in capa and b"USER" not in capa and b"SASL" not in capa
        assert (await t.send("USER alice@example.test")).startswith(b"-ERR [AUTH] Plaintext")
        assert (await t.send("AUTH PLAIN")).startswith(b"-ERR [AUTH] Plaintext")
        assert await t.send("STLS") == b"+OK Begin TLS negotiation\r\n"
        assert t.last is not None and t.last.action is Action.START_TLS
        t.session.tls_started()
        assert (await t.send("STLS")).startswith(b"-ERR")
        capa = await t.send("CAPA")
        assert b"STLS" not in capa and b"\r\nUSER\r\n" in capa and b"SASL PLAIN LOGIN" in capa
        allowed = Transcript(make_ctx(store), Pop3Settings(allow_plaintext_auth=True), tls_active=False)
        assert (await allowed.login()).startswith(b"+OK")
    run(go)


def test_capa_lists_rfc2449_capabilities(env: Any) -> None:
    store, _ = env

    async def go() -> None:
        t = Transcript(make_ctx(store), tls_active=False)
        lines = (await t.send("CAPA")).split(b"\r\n")
        assert lines[0].startswith(b"+OK") and lines[-2:] == [b".", b""]
        for cap in (b"TOP", b"UIDL", b"RESP-CODES", b"AUTH-RESP-CODE", b"PIPELINING", b"EXPIRE NEVER",
                    b"IMPLEMENTATION Postroom", b"STLS", b"UTF8"):
            assert cap in lines, cap
        t.session.tls_started()
        await t.login()
        lines = (await t.send("CAPA")).split(b"\r\n")
        assert b"TOP" in lines and b"USER" not in lines and b"STLS" not in lines
    run(go)


def test_apop(env: Any) -> None:
    store, _ = env

    async def go() -> None:
        t = Transcript(make_ctx(store), tls_active=False)
        ts = t.session.timestamp
        assert ts.startswith("<") and ts.endswith("@mail.example.test>")
        assert Transcript(make_ctx(store)).session.timestamp != ts
        assert (await t.send("APOP alice@example.test " + "0" * 32)) == b"-ERR [AUTH] Authentication failed\r\n"
        assert (await t.send("APOP bob@example.test " + "0" * 32)).startswith(
            b"-ERR [AUTH] APOP is not enabled for this user")
        digest = hashlib.md5((ts + "tanstaaf").encode()).hexdigest()
        assert (await t.send(f"APOP alice@example.test {digest}")).startswith(b"+OK Logged in")
    run(go)


def test_rfc1939_apop_example_digest() -> None:
    # RFC 1939 §7's worked example, to be sure the digest is computed the same way.
    ts = "<1896.697170952@dbc.mtview.ca.us>"
    assert hashlib.md5((ts + "tanstaaf").encode()).hexdigest() == "c4c9334bac560ecc979e58001b3e22fb"


def _b64(s: bytes) -> str:
    return base64.b64encode(s).decode()


def test_auth_plain_with_and_without_initial_response(env: Any) -> None:
    store, _ = env

    async def go() -> None:
        t = Transcript(make_ctx(store))
        cred = _b64(b"\0alice@example.test\0secret")
        assert (await t.send(f"AUTH PLAIN {cred}")).startswith(b"+OK Logged in")
        await t.send("QUIT")
        t = Transcript(make_ctx(store))
        assert await t.send("AUTH PLAIN") == b"+ \r\n"
        assert (await t.send(cred)).startswith(b"+OK Logged in")
        await t.send("QUIT")
        t = Transcript(make_ctx(store))
        assert (await t.send("AUTH PLAIN " + _b64(b"bob@example.test\0alice@example.test\0secret"))
                ).startswith(b"-ERR [AUTH]")
        assert (await t.send("AUTH PLAIN !!!")) == b"-ERR Invalid base64 data\r\n"
        assert (await t.send("AUTH PLAIN =")).startswith(b"-ERR")  # empty message
        assert (await t.send("AUTH CRAM-MD5")) == b"-ERR Unsupported authentication mechanism\r\n"
        assert (await t.send("AUTH")) == b"+OK Mechanisms follow\r\nPLAIN\r\nLOGIN\r\n.\r\n"
    run(go)


def test_auth_login_and_cancel(env: Any) -> None:
    store, _ = env

    async def go() -> None:
        t = Transcript(make_ctx(store))
        assert await t.send("AUTH LOGIN") == f"+ {_b64(b'Username:')}\r\n".encode()
        assert await t.send(_b64(b"alice@example.test")) == f"+ {_b64(b'Password:')}\r\n".encode()
        assert (await t.send(_b64(b"secret"))).startswith(b"+OK Logged in")
        await t.send("QUIT")
        t = Transcript(make_ctx(store))
        assert await t.send("AUTH LOGIN " + _b64(b"alice@example.test")) == f"+ {_b64(b'Password:')}\r\n".encode()
        assert await t.send("*") == b"-ERR Authentication cancelled\r\n"
        assert t.session.state is State.AUTHORIZATION
        assert (await t.send("NOOP")).startswith(b"-ERR")  # back to commands
    run(go)


def test_bad_commands_end_the_session(env: Any) -> None:
    store, _ = env

    async def go() -> None:
        t = Transcript(make_ctx(store), Pop3Settings(max_bad_commands=3))
        assert await t.send("FOO") == b"-ERR Unknown command\r\n"
        assert await t.send("LIST 1") == b"-ERR LIST is only valid after login\r\n"
        r = await t.send("BAR")
        assert r == b"-ERR Too many invalid commands\r\n"
        assert t.last is not None and t.last.action is Action.CLOSE
    run(go)


def test_argument_checks(env: Any) -> None:
    store, _ = env

    async def go() -> None:
        t = Transcript(make_ctx(store))
        assert await t.send("USER") == b"-ERR USER needs an argument\r\n"
        await t.login()
        assert await t.send("RETR") == b"-ERR Wrong number of arguments\r\n"
        assert await t.send("RETR 1 2") == b"-ERR Wrong number of arguments\r\n"
        assert await t.send("RETR 0") == b"-ERR Invalid message number\r\n"
        assert await t.send("RETR " + "1" * 41) == b"-ERR Argument too long\r\n"
    run(go)


def test_utf8_command(env: Any) -> None:
    store, _ = env

    async def go() -> None:
        t = Transcript(make_ctx(store))
        assert await t.send("UTF8") == b"+OK UTF8 enabled\r\n"
        assert t.session.utf8
    run(go)


def test_retr_of_message_expunged_meanwhile(env: Any) -> None:
    store, alice = env

    async def go() -> None:
        t = Transcript(make_ctx(store))
        await t.login()
        del store.messages[alice.id][1]  # IMAP expunged it after the snapshot
        assert await t.send("RETR 1") == b"-ERR [SYS/TEMP] Message is no longer available\r\n"
        assert (await t.send("RETR 2")).startswith(b"+OK")
    run(go)


def test_internal_errors_are_generic(env: Any, caplog: pytest.LogCaptureFixture) -> None:
    store, _ = env

    async def boom(*a: object) -> None:
        raise RuntimeError("secret internals")

    async def go() -> None:
        t = Transcript(make_ctx(store))
        await t.login()
        store.store_flags = boom  # type: ignore[method-assign]
        await t.send("DELE 1")
        reply = await t.send("QUIT")
        assert reply == b"-ERR [SYS/TEMP] Some deleted messages were not removed\r\n"
        assert store.locked == set()
        t = Transcript(make_ctx(store))
        store.get_account = boom  # type: ignore[method-assign]
        reply = await t.login()
        assert reply == b"-ERR [SYS/TEMP] Internal error\r\n"
        assert b"secret" not in reply
    run(go)
