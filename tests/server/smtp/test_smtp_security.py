"""Attack classes: SMTP smuggling, STARTTLS command injection, recipient/size/error
limits, idle timeouts, garbage input. Raw transcripts, since clients never send these."""

import smtplib
import time

import pytest

from conftest import Raw, make_server, server_fixture

SMUGGLE = [b"\n.\n", b"\r.\n", b"\n.\r\n", b"\r.\r\n", b"\r\n.\n", b"\r\n.\r"]


@pytest.mark.parametrize("seq", SMUGGLE)
def test_smuggling_does_not_make_a_second_message(smtp_server, seq):
    before = {u: len(smtp_server.inbox(u)) for u in ("joe", "ann")}
    raw = Raw(smtp_server.ports["smtp"])
    raw.start("EHLO attacker.example", "MAIL FROM:<a@remote.example>", "RCPT TO:<joe@example.test>")
    assert raw.cmd("DATA").startswith("354")
    raw.send(b"Subject: first\r\n\r\nhello" + seq +
             b"MAIL FROM:<ceo@example.test>\r\nRCPT TO:<ann@example.test>\r\nDATA\r\n"
             b"Subject: forged\r\n\r\nsmuggled\r\n.\r\n")
    reply = raw.reply()
    assert reply.startswith("250 2.0.0 Ok: queued as")
    assert raw.cmd("QUIT").startswith("221")  # nothing else was answered in between
    assert len(smtp_server.inbox("ann")) == before["ann"]
    msgs = smtp_server.inbox("joe")
    assert len(msgs) == before["joe"] + 1
    assert b"smuggled" in msgs[-1] and msgs[-1].count(b"\n") == msgs[-1].count(b"\r\n")


def test_starttls_injection_is_discarded(smtp_server):
    raw = Raw(smtp_server.ports["smtp"])
    raw.reply()
    raw.cmd("EHLO x")
    # The injected commands travel in plaintext with STARTTLS (CVE-2011-0411 class).
    raw.send(b"STARTTLS\r\nMAIL FROM:<evil@remote.example>\r\nRCPT TO:<joe@example.test>\r\n")
    assert raw.reply() == "220 2.0.0 Ready to start TLS"
    raw.starttls()
    # Had the injected MAIL survived, this would be a 503 nested MAIL, or RCPT would work.
    assert raw.cmd("RCPT TO:<joe@example.test>") == "503 5.5.1 Send HELO/EHLO first"
    raw.cmd("EHLO x")
    assert raw.cmd("RCPT TO:<joe@example.test>") == "503 5.5.1 Bad sequence of commands"


def test_recipient_limit(smtp_server):
    with smtplib.SMTP("127.0.0.1", smtp_server.ports["smtp"]) as c:
        c.ehlo()
        c.mail("a@remote.example")
        for i in range(100):
            assert c.rcpt("joe@example.test")[0] == 250
        assert c.rcpt("joe@example.test") == (452, b"4.5.3 Too many recipients")
        assert c.data(b"Subject: many\r\n\r\nx\r\n")[0] == 250  # the first 100 still get it


def test_nul_and_bare_cr_in_commands(smtp_server):
    raw = Raw(smtp_server.ports["smtp"])
    raw.reply()
    assert raw.cmd(b"EHLO x\0y\r\n").startswith("500 5.5.2")
    assert raw.cmd(b"NOOP\rRSET\r\n").startswith("500 5.5.2")
    assert raw.cmd(b"\xff\xfe\r\n").startswith("500 5.5.2")
    assert raw.cmd(b"NOOP\n") == "250 2.0.0 OK"  # a bare LF ends a command line (lenient)


def test_huge_bdat_is_skipped_and_refused(smtp_server):
    raw = Raw(smtp_server.ports["smtp"])
    raw.start("EHLO x", "MAIL FROM:<a@remote.example>", "RCPT TO:<joe@example.test>")
    n = 300_000
    raw.send(b"BDAT %d LAST\r\n" % n + b"x" * n)
    assert raw.reply().startswith("552 5.3.4")
    assert raw.cmd("NOOP") == "250 2.0.0 OK"


quick_timeout_server = server_fixture(idle_timeout="1s")


def test_idle_timeout(quick_timeout_server):
    raw = Raw(quick_timeout_server.ports["smtp"])
    raw.reply()
    t = time.monotonic()
    assert raw.reply() == "421 4.4.2 mx.example.test Idle timeout, closing connection"
    assert raw.closed() and time.monotonic() - t < 5


def test_client_gone_in_the_middle_of_data(quick_timeout_server):
    srv = quick_timeout_server
    before = len(srv.inbox("joe"))
    raw = Raw(srv.ports["smtp"])
    raw.start("EHLO x", "MAIL FROM:<a@remote.example>", "RCPT TO:<joe@example.test>")
    raw.cmd("DATA")
    raw.send(b"Subject: half\r\n\r\nincomplete")
    raw.sock.shutdown(1)  # the client goes away mid-message: nothing is delivered
    assert raw.closed()
    time.sleep(0.2)
    assert len(srv.inbox("joe")) == before


def test_connections_per_ip_limit(smtp_server):
    conns = []
    try:
        for _ in range(50):
            c = Raw(smtp_server.ports["smtp"])
            assert c.reply().startswith("220 ")
            conns.append(c)
        extra = Raw(smtp_server.ports["smtp"])
        assert extra.reply() == "421 4.7.0 Too many connections, try again later"
        assert extra.closed()
    finally:
        for c in conns:
            c.close()


def test_shutdown_sends_421_to_idle_clients(tmp_path_factory):
    srv = make_server(tmp_path_factory, idle_timeout="60s")
    try:
        raw = Raw(srv.ports["smtp"])
        raw.reply()
        raw.cmd("EHLO x")
        t = time.monotonic()
        srv.loop.call_soon_threadsafe(srv.ctx.stopping.set)
        assert raw.reply() == "421 4.3.2 mx.example.test Service shutting down, closing connection"
        assert raw.closed() and time.monotonic() - t < 5
    finally:
        srv.stop()


slow_data_server = server_fixture('data_timeout = "1s"\nmin_data_rate = 200')


def _trickle(raw: Raw, data: bytes, per_second: int, seconds: float) -> float:
    """Send ``data`` piecewise at ``per_second`` bytes/s; return when the server hung up
    (seconds after the start), or ``seconds`` if it never did."""
    t0 = time.monotonic()
    step = max(1, per_second // 10)
    for i in range(0, len(data), step):
        if time.monotonic() - t0 >= seconds:
            break
        try:
            raw.send(data[i:i + step])
        except OSError:
            break
        time.sleep(0.1)
    return time.monotonic() - t0


def test_trickled_data_is_cut_off_and_a_steady_sender_is_not(slow_data_server):
    """Postfix's smtpd_min_data_rate: a message trickled slower than min_data_rate runs out of
    time (data_timeout plus a second per min_data_rate bytes) however short each pause is;
    one sent at least that fast is accepted even when it takes several data_timeouts."""
    srv = slow_data_server
    before = len(srv.inbox("joe"))
    for verb in ("DATA", "BDAT"):
        raw = Raw(srv.ports["smtp"])
        raw.start("EHLO x", "MAIL FROM:<a@remote.example>", "RCPT TO:<joe@example.test>")
        body = b"Subject: slow\r\n\r\n" + b"x" * 2000 + b"\r\n"
        if verb == "DATA":
            assert raw.cmd("DATA").startswith("354")
        else:
            raw.send(b"BDAT %d LAST\r\n" % len(body))
        # 40 bytes/s, a pause of 0.1 s between pieces: before, each read was within data_timeout
        took = _trickle(raw, body, 40, 10)
        assert raw.reply() == "421 4.4.2 mx.example.test Idle timeout, closing connection"
        assert 1.0 <= took < 3, (verb, took)  # 1 s, plus 1 s per 200 bytes received
        raw.close()

        raw = Raw(srv.ports["smtp"])
        raw.start("EHLO x", "MAIL FROM:<a@remote.example>", "RCPT TO:<joe@example.test>")
        body = b"Subject: steady\r\n\r\n" + b"y" * 600 + b"\r\n"
        if verb == "DATA":
            assert raw.cmd("DATA").startswith("354")
            body += b".\r\n"
        else:
            raw.send(b"BDAT %d LAST\r\n" % len(body))
        took = _trickle(raw, body, 300, 10)  # about 2 s: twice data_timeout, at 300 bytes/s
        assert took > 1.5
        assert raw.reply().startswith("250 ")
        raw.close()
    assert len(srv.inbox("joe")) == before + 2


small_memory_server = server_fixture(limits='message_memory = "300k"')


def test_messages_beyond_the_memory_budget_are_refused_for_now(small_memory_server):
    """Messages being received are held in memory: past [limits] message_memory (all sessions
    of the process together) a message is read to its end without being kept and gets
    452 4.3.1, so the sender retries later; once the others are done it goes through."""
    srv = small_memory_server
    budget = srv.ctx.state
    before = len(srv.inbox("joe"))
    holder = Raw(srv.ports["smtp"])  # 150 KB of a message, held open
    holder.start("EHLO a", "MAIL FROM:<a@remote.example>", "RCPT TO:<joe@example.test>")
    assert holder.cmd("DATA").startswith("354")
    holder.send(b"Subject: held\r\n\r\n" + (b"z" * 998 + b"\r\n") * 150)
    time.sleep(0.3)
    big = b"Subject: big\r\n\r\n" + (b"w" * 998 + b"\r\n") * 180  # 180 KB: 150 + 180 > 300
    for verb in ("DATA", "BDAT"):
        raw = Raw(srv.ports["smtp"])
        raw.start("EHLO b", "MAIL FROM:<b@remote.example>", "RCPT TO:<joe@example.test>")
        if verb == "DATA":
            assert raw.cmd("DATA").startswith("354")
            assert raw.cmd(big + b".\r\n") == "452 4.3.1 Insufficient system storage, try again later"
        else:
            assert raw.cmd(b"BDAT %d LAST\r\n" % len(big) + big) == \
                "452 4.3.1 Insufficient system storage, try again later"
        assert raw.cmd("NOOP") == "250 2.0.0 OK"  # in step
        raw.close()
    assert holder.cmd(b".\r\n").startswith("250 ")
    assert budget["message_memory"].used == 0  # all given back
    raw = Raw(srv.ports["smtp"])
    raw.start("EHLO b", "MAIL FROM:<b@remote.example>", "RCPT TO:<joe@example.test>")
    assert raw.cmd(b"BDAT 1000\r\n" + big[:1000]).startswith("250 ")
    assert raw.cmd(b"BDAT %d LAST\r\n" % (len(big) - 1000) + big[1000:]).startswith("250 ")
    raw.close()
    holder.close()
    time.sleep(0.2)
    assert budget["message_memory"].used == 0
    assert len(srv.inbox("joe")) == before + 2
