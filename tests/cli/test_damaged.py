"""A store whose segment file lost its end (a partial restore, a lost block): the damaged
message fails alone, with a clear reply and one log line, and ``postroom verify`` finds it."""

from __future__ import annotations

import imaplib
import mailbox
import poplib
import smtplib
import ssl
from pathlib import Path
from typing import Any, Iterator

import pytest

from postroom import protocols
from postroom.cli import main
from postroom.config import load

from .serving import Serving, make_server_dir

USER, PASSWORD = "u@example.test", "damage test password"
pytestmark = pytest.mark.skipif(not {"smtp", "imap", "pop3"} <= protocols.available(),
                                reason="needs the SMTP, IMAP and POP3 listeners")


def body(n: int) -> bytes:
    return b"Subject: m%d\r\n\r\n" % n + (b"line of message %d, the quick brown fox\r\n" % n) * 120


def _tls() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    return ctx


@pytest.fixture(scope="module")
def damaged(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A server whose INBOX holds 3 messages, the third cut short on disk."""
    cfgp = make_server_dir(tmp_path_factory.mktemp("damaged") / "s")
    assert main(["-c", str(cfgp), "user", "add", USER, "--password", PASSWORD]) == 0
    srv = Serving(cfgp)
    try:
        ports = srv.wait_listening()
        with smtplib.SMTP("127.0.0.1", ports["smtp"]) as c:
            for n in range(1, 4):
                c.sendmail("a@remote.test", [USER], body(n))
    finally:
        srv.stop()
    [seg] = (load(cfgp).data_dir / "segments").glob("*.seg")
    seg.write_bytes(seg.read_bytes()[:-1000])
    srv = Serving(cfgp)
    try:
        yield {"cfgp": cfgp, "ports": srv.wait_listening(), "srv": srv}
    finally:
        srv.stop()


def test_imap_serves_the_readable_messages_then_says_corruption(damaged: dict[str, Any]) -> None:
    c = imaplib.IMAP4_SSL("127.0.0.1", damaged["ports"]["imaps"], ssl_context=_tls())
    c.login(USER, PASSWORD)
    assert c.select("INBOX") == ("OK", [b"3"])
    typ, data = c.fetch("1:*", "(UID BODY.PEEK[])")
    assert typ == "NO" and data == [b"[CORRUPTION] Some messages are damaged and cannot be read"]
    # The readable ones came before the NO (imaplib keeps them as pending untagged data).
    _, data = c.response("FETCH")
    got = [d[1] for d in data if isinstance(d, tuple)]  # as sent, after the trace headers SMTP adds
    assert len(got) == 2 and got[0].endswith(body(1)) and got[1].endswith(body(2))
    typ, data = c.fetch("1:2", "(BODY.PEEK[])")
    assert typ == "OK" and len([d for d in data if isinstance(d, tuple)]) == 2
    typ, data = c.fetch("3", "(UID RFC822.SIZE ENVELOPE BODYSTRUCTURE FLAGS)")  # all from the index
    assert typ == "OK" and b"UID 3" in data[0]
    typ, data = c.fetch("3", "(BODY.PEEK[TEXT])")
    assert typ == "NO" and data[0].startswith(b"[CORRUPTION] ")
    typ, data = c.search(None, "BODY", "message")  # the damaged one cannot match; the others do
    assert typ == "OK" and data == [b"1 2"]
    c.logout()
    log = damaged["srv"].log()
    assert "imap: uid 3 of mailbox" in log and "only" in log and "Traceback" not in log


def test_pop3_retr_of_the_damaged_message_is_a_permanent_error(damaged: dict[str, Any]) -> None:
    p = poplib.POP3_SSL("127.0.0.1", damaged["ports"]["pop3s"], context=_tls())
    p.user(USER)
    p.pass_(PASSWORD)
    assert b"\r\n".join(p.retr(1)[1]).endswith(body(1).rstrip(b"\r\n"))
    with pytest.raises(poplib.error_proto) as exc:
        p.retr(3)
    assert exc.value.args[0] == b"-ERR [SYS/PERM] Message is damaged and cannot be read"
    assert b"\r\n".join(p.retr(2)[1]).endswith(body(2).rstrip(b"\r\n"))  # the session goes on in step
    p.quit()
    log = damaged["srv"].log()
    assert "pop3: uid 3 of mailbox" in log and "Traceback" not in log


def test_verify_lists_the_damaged_message_and_export_skips_it(damaged: dict[str, Any], tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    cfgp = str(damaged["cfgp"])
    assert main(["-c", cfgp, "verify"]) == 1
    out, err = capsys.readouterr()
    assert out == "verified 3 messages of 1 accounts: 1 damaged\n"
    [line] = err.splitlines()
    assert line.startswith(f"postroom: damaged: {USER} INBOX uid 3: uid 3 of mailbox ") and "shorter" in line

    assert main(["-c", cfgp, "export", USER, str(tmp_path / "out"), "--format", "mbox"]) == 1
    out, err = capsys.readouterr()
    assert out == "exported 2 messages\n" and err.startswith("postroom: not exported: INBOX uid 3: ")
    box = mailbox.mbox(tmp_path / "out" / "INBOX.mbox")
    assert [m["Subject"] for m in box] == ["m1", "m2"]


def test_verify_of_a_healthy_store_exits_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfgp = make_server_dir(tmp_path / "s")
    assert main(["-c", str(cfgp), "user", "add", USER, "--password", PASSWORD]) == 0
    assert main(["-c", str(cfgp), "import", "mbox", USER, str(_mbox(tmp_path))]) == 0
    capsys.readouterr()
    assert main(["-c", str(cfgp), "verify"]) == 0
    assert capsys.readouterr().out == "verified 2 messages of 1 accounts: none damaged\n"


def _mbox(tmp_path: Path) -> Path:
    path = tmp_path / "in.mbox"
    box = mailbox.mbox(path)
    for n in (1, 2):
        box.add(body(n).replace(b"\r\n", b"\n"))
    box.close()
    return path


def test_verify_names_a_damaged_article_by_group_and_number(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    """Newsgroup articles are checked like mail; the reserved account is not counted as a user."""
    import asyncio

    from postroom.news.service import News, NewsSettings
    from postroom.storage.sqlite.store import SqliteStore

    cfgp = make_server_dir(tmp_path / "s")
    assert main(["-c", str(cfgp), "group", "add", "local.test"]) == 0
    data_dir = load(cfgp).data_dir

    async def post() -> None:
        async with SqliteStore(data_dir) as store:
            news = await News.for_store(store, NewsSettings("news.example.test"))
            try:
                for n in (1, 2):
                    raw = (b"From: a@example.test\r\nNewsgroups: local.test\r\nSubject: a%d\r\n"
                           b"Message-ID: <a%d@example.test>\r\n\r\n" % (n, n)) + body(n)
                    assert (await news.post(raw, user="a@example.test")).locations == [("local.test", n)]
            finally:
                await news.close()

    asyncio.run(post())
    capsys.readouterr()
    assert main(["-c", str(cfgp), "verify"]) == 0
    assert capsys.readouterr().out == "verified 2 messages (2 in newsgroups) of 0 accounts: none damaged\n"
    [seg] = (data_dir / "segments").glob("*.seg")
    seg.write_bytes(seg.read_bytes()[:-1000])
    assert main(["-c", str(cfgp), "verify"]) == 1
    out, err = capsys.readouterr()
    assert out == "verified 2 messages (2 in newsgroups) of 0 accounts: 1 damaged\n"
    [line] = err.splitlines()
    assert line.startswith("postroom: damaged: newsgroup local.test article 2: ") and "shorter" in line, line
