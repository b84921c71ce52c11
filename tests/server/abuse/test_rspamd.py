"""rspamd at the end of DATA, against a real rspamd (tests/rspamdpeer.py) over loopback.

One Postroom and one rspamd per module; the rspamd-down test runs last (it kills rspamd).
Tests that need other [rspamd] settings swap the parsed settings in ``ctx.state``.
"""

from __future__ import annotations

import dataclasses
import smtplib
import time
from collections.abc import Iterator

import pytest
from rspamdpeer import (
    GTUBE,
    HAM_MARKER,
    REWRITE_MARKER,
    SOFT_MARKER,
    SPAM_MARKER,
    Rspamd,
    hung_http,
    start_or_skip,
)
from scanner_harness import start_server

from postroom.abuse import rspamd

SENDER = "someone@remote.example"
BODY = ("Hello Joe, here are the minutes of the meeting about the garden fence, the hedge and the "
        "parking rota that we discussed on Tuesday evening in the village hall.\r\n")


def message(subject: str, extra: str = "", body: str = BODY) -> bytes:
    return (f"From: <{SENDER}>\r\nTo: <joe@example.test>\r\nSubject: {subject}\r\n{extra}"
            f"Date: Mon, 23 Nov 2026 10:00:00 +0000\r\nMessage-ID: <{time.monotonic_ns()}@remote.example>\r\n"
            f"MIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\n{body}").encode()


@pytest.fixture(scope="module")
def peer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rspamd]:
    r = start_or_skip(tmp_path_factory.mktemp("rspamd"))
    yield r
    r.stop()


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory, peer: Rspamd):  # type: ignore[no-untyped-def]
    s = start_server(tmp_path_factory, f'[rspamd]\nurl = "{peer.url}"\ncontroller_url = "{peer.controller_url}"\n'
                                       f'password = "{peer.password}"\ntimeout = "10s"\n')
    yield s
    s.stop()


@pytest.fixture
def settings(srv):  # type: ignore[no-untyped-def]
    """Call with keyword changes to [rspamd] for this test; restored afterwards."""
    original = rspamd.settings_for(srv.ctx)

    def change(**kw: object) -> None:
        srv.ctx.state["rspamd"] = dataclasses.replace(original, **kw)
    yield change
    srv.ctx.state["rspamd"] = original


def send(srv, msg: bytes, rcpt: str = "joe@example.test") -> tuple[int, str]:  # type: ignore[no-untyped-def]
    """(code, text) of the reply to DATA."""
    with smtplib.SMTP("127.0.0.1", srv.ports["smtp"], timeout=30) as c:
        c.ehlo("client.example")
        c.mail(SENDER)
        c.rcpt(rcpt)
        code, text = c.data(msg)
        return code, text.decode()


def mailbox(srv, user: str, name: str) -> list[bytes]:  # type: ignore[no-untyped-def]
    async def go() -> list[bytes]:
        store = srv.ctx.store
        acct = await store.get_account(f"{user}@example.test")
        mb = await store.get_mailbox(acct.id, name)
        return [await store.read_message(m) for m in await store.list_messages(mb.id)]
    return srv.call(go())  # type: ignore[no-any-return]


def find(srv, user: str, box: str, marker: str) -> bytes | None:  # type: ignore[no-untyped-def]
    for m in mailbox(srv, user, box):
        if marker.encode() in m:
            return m
    return None


def header_values(msg: bytes, name: str) -> list[str]:
    head = msg.split(b"\r\n\r\n", 1)[0].decode()
    prefix = name.lower() + ":"
    return [line.split(":", 1)[1].strip() for line in head.split("\r\n") if line.lower().startswith(prefix)]


def test_clean_message_lands_in_inbox_marked_not_spam(srv) -> None:  # type: ignore[no-untyped-def]
    subject = f"clean one {HAM_MARKER}"
    code, _ = send(srv, message(subject))
    assert code == 250
    m = find(srv, "joe", "INBOX", subject)
    assert m is not None
    assert header_values(m, "X-Spam-Status") == ["No, score=-2.00 required=15.00"]
    assert header_values(m, "X-Spam-Score") == ["-2.00"]
    assert header_values(m, "X-Spam-Action") == ["no action"]
    assert header_values(m, "X-Spam-Symbols") == ["POSTROOM_TEST_HAM(-2.00)"]
    assert header_values(m, "X-Spam") == []


def test_spam_lands_in_junk_with_its_headers(srv) -> None:  # type: ignore[no-untyped-def]
    subject = f"cheap watches {SPAM_MARKER}"
    code, _ = send(srv, message(subject))
    assert code == 250
    assert find(srv, "joe", "INBOX", subject) is None
    m = find(srv, "joe", "Junk", subject)
    assert m is not None
    assert header_values(m, "X-Spam") == ["Yes"]
    assert header_values(m, "X-Spam-Status") == ["Yes, score=8.00 required=15.00"]
    assert header_values(m, "X-Spam-Action") == ["add header"]
    assert "POSTROOM_TEST_SPAM(8.00)" in header_values(m, "X-Spam-Symbols")[0]


def test_junk_from_rewrite_subject_keeps_add_header_in_inbox(srv, settings) -> None:  # type: ignore[no-untyped-def]
    settings(junk_from="rewrite subject")
    subject = f"maybe spam {SPAM_MARKER} kept"
    assert send(srv, message(subject))[0] == 250
    m = find(srv, "joe", "INBOX", subject)
    assert m is not None and header_values(m, "X-Spam") == ["Yes"]


def test_rewrite_subject_puts_rspamds_subject_in_place(srv) -> None:  # type: ignore[no-untyped-def]
    subject = f"very spammy {REWRITE_MARKER}"
    assert send(srv, message(subject))[0] == 250
    m = find(srv, "joe", "Junk", subject)
    assert m is not None
    assert header_values(m, "Subject") == [f"***SPAM*** {subject}"]
    assert header_values(m, "X-Spam-Action") == ["rewrite subject"]


def test_gtube_is_rejected_with_550(srv) -> None:  # type: ignore[no-untyped-def]
    code, text = send(srv, message("gtube", body=GTUBE.decode() + "\r\n"))
    assert code == 550
    assert text.startswith("5.7.1") and "Gtube pattern" in text


def test_soft_reject_is_451(srv) -> None:  # type: ignore[no-untyped-def]
    code, text = send(srv, message(f"later {SOFT_MARKER}"))
    assert code == 451
    assert text.startswith("4.7.1") and "test soft reject" in text


def test_forged_spam_headers_are_removed(srv) -> None:  # type: ignore[no-untyped-def]
    subject = f"forged {HAM_MARKER}"
    forged = ("X-Spam-Score: -100\r\nX-Spam: No\r\nX-Spam-Status: No, score=-100.0\r\n  required=5.0\r\n"
              "X-Spamd-Result: default: False [-100.00 / 15.00]\r\nX-Spam-Flag: NO\r\n")
    assert send(srv, message(subject, extra=forged))[0] == 250
    m = find(srv, "joe", "INBOX", subject)
    assert m is not None
    assert header_values(m, "X-Spam-Score") == ["-2.00"]
    assert header_values(m, "X-Spam-Status") == ["No, score=-2.00 required=15.00"]
    for name in ("X-Spam", "X-Spamd-Result", "X-Spam-Flag"):
        assert header_values(m, name) == []
    assert b"required=5.0" not in m  # the forged field's continuation line went with it


def test_sieve_spamtest_sees_the_score(srv) -> None:  # type: ignore[no-untyped-def]
    script = ('require ["spamtest", "relational", "comparator-i;ascii-numeric", "fileinto"];\n'
              'if spamtest :value "ge" :comparator "i;ascii-numeric" "8" { fileinto "Archive"; stop; }\n'
              'if spamtest :value "eq" :comparator "i;ascii-numeric" "1" { fileinto "Drafts"; }\n')

    async def install() -> None:
        acct = await srv.ctx.store.get_account("ann@example.test")
        await srv.ctx.store.put_sieve_script(acct.id, "spam", script, activate=True)
    srv.call(install())
    spammy, clean = f"for ann {SPAM_MARKER}", f"ann clean {HAM_MARKER}"
    assert send(srv, message(spammy), rcpt="ann@example.test")[0] == 250
    assert send(srv, message(clean), rcpt="ann@example.test")[0] == 250
    # 8 points on spamtest's scale (100 % at 10) is "8"; -2 points is "1", certainly not spam.
    assert find(srv, "ann", "Archive", spammy) is not None
    assert find(srv, "ann", "Drafts", clean) is not None


def test_submission_is_not_scanned_by_default(srv) -> None:  # type: ignore[no-untyped-def]
    s = rspamd.settings_for(srv.ctx)
    assert s.applies_to("smtp", "smtp")
    assert not s.applies_to("submission", "submission")
    assert dataclasses.replace(s, listeners=("submission",)).applies_to("submission", "submission")


@pytest.fixture
def hung_rspamd() -> Iterator[str]:
    with hung_http() as url:
        yield url


def test_slow_rspamd_hits_the_timeout_and_tempfails(srv, settings, hung_rspamd) -> None:  # type: ignore[no-untyped-def]
    settings(url=hung_rspamd, timeout=0.5)
    started = time.monotonic()
    code, text = send(srv, message("slow scanner"))
    assert code == 451 and text.startswith("4.7.1")
    assert time.monotonic() - started < 10


def test_rspamd_killed_tempfails_or_accepts_unscanned(srv, peer, settings) -> None:  # type: ignore[no-untyped-def]
    peer.kill()  # last test of the module: rspamd stays down
    code, text = send(srv, message("while down 1"))
    assert code == 451 and text.startswith("4.7.1")
    settings(on_failure="accept")
    subject = "while down 2"
    assert send(srv, message(subject))[0] == 250
    m = find(srv, "joe", "INBOX", subject)
    assert m is not None
    assert header_values(m, "X-Spam-Status") == ["Unscanned"]
    assert header_values(m, "X-Spam") == []


def test_hostname_is_the_forward_confirmed_reverse_name(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import asyncio
    from types import SimpleNamespace

    from dnsfixture import DnsFixture

    from postroom.config import from_dict

    with DnsFixture() as dns_srv:
        dns_srv.set("4.3.2.1.in-addr.arpa", "PTR", ["mail.sender.example."])
        dns_srv.a("mail.sender.example", "1.2.3.4")
        dns_srv.set("5.3.2.1.in-addr.arpa", "PTR", ["liar.sender.example."])
        dns_srv.a("liar.sender.example", "1.2.3.99")
        cfg = from_dict({"hostname": "mx.example.test", "domains": ["example.test"], "listeners": {},
                         "dns": {"resolver": dns_srv.address, "timeout": "2s"}}, tmp_path / "p.toml")
        ctx = SimpleNamespace(config=cfg)

        async def names() -> list[str | None]:
            return [await rspamd._hostname(ctx, ip)  # type: ignore[arg-type]
                    for ip in ("1.2.3.4", "1.2.3.5", "1.2.3.6", "127.0.0.1", "10.1.2.3")]
        # Confirmed; PTR whose name points elsewhere; no PTR; loopback and private: not asked.
        assert asyncio.run(names()) == ["mail.sender.example", "unknown", "unknown", None, None]


def test_config_problems_are_reported(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from postroom.config import from_dict

    cfg = from_dict({"hostname": "mx.example.test", "domains": ["example.test"],
                     "listeners": {"smtp": {"address": "127.0.0.1:0"}},
                     "rspamd": {"url": "ftp://x", "on_failure": "maybe", "timeout": "0s",
                                "listeners": ["nope"], "junk_from": "always"}}, tmp_path / "p.toml")
    problems: list[str] = []
    rspamd.read_settings(cfg, problems)
    text = "\n".join(problems)
    for key in ("rspamd.url", "rspamd.on_failure", "rspamd.timeout", "rspamd.listeners", "rspamd.junk_from"):
        assert key in text, (key, text)

