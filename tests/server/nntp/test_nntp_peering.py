"""Peering: IHAVE (RFC 3977 §6.3.2), streaming (RFC 4644) and the outgoing feed.

The server's ``[[nntp.peers]]`` name two peers: ``peer.test`` may send from 127.0.0.2 (the
tests bind their client sockets there; other connections come from 127.0.0.1 and are
not peers) and is fed by us at a fake peer server run by the test (:class:`FakePeer`);
``acct.test`` is a peer by its logged-in account. The feed's retry after an outage and
after a restart runs against a second Postroom of its own.
"""

from __future__ import annotations

import socket
import socketserver
import threading
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
from nntp_harness import Harness, article, unique, write_config
from nntpclient import NNTPClient

PEER_IP = "127.0.0.2"


class FakePeer:
    """A news server the feed talks to: records what it is offered and given.

    ``streaming``: advertise STREAMING (else IHAVE only); ``refuse``: answer every offer
    with "try later" (436/431) while set; ``have``: Message-IDs it already has."""

    def __init__(self, streaming: bool = True, port: int = 0) -> None:
        self.streaming = streaming
        self.refuse = False
        self.have: set[str] = set()
        self.received: dict[str, bytes] = {}
        self.offers: list[tuple[str, str]] = []
        self.port = port
        self.server: socketserver.ThreadingTCPServer | None = None

    def start(self) -> None:
        peer = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                w = self.wfile.write
                w(b"200 fake peer ready\r\n")
                for line in self.rfile:
                    verb, _, arg = line.decode().strip().partition(" ")
                    verb = verb.upper()
                    if verb == "QUIT":
                        w(b"205 bye\r\n")
                        return
                    if verb == "CAPABILITIES":
                        w(b"101 caps\r\nVERSION 2\r\nIHAVE\r\n" + (b"STREAMING\r\n" if peer.streaming else b"")
                          + b".\r\n")
                    elif verb == "MODE" and arg.upper() == "STREAM" and peer.streaming:
                        w(b"203 streaming ok\r\n")
                    elif verb in ("CHECK", "IHAVE"):
                        peer.offers.append((verb, arg))
                        if arg in peer.have or arg in peer.received:
                            w(b"438 " + arg.encode() + b"\r\n" if verb == "CHECK" else b"435 no thanks\r\n")
                        elif peer.refuse:
                            w(b"431 " + arg.encode() + b" later\r\n" if verb == "CHECK" else b"436 later\r\n")
                        elif verb == "CHECK":
                            w(b"238 " + arg.encode() + b"\r\n")
                        else:
                            w(b"335 send it\r\n")
                            self.wfile.flush()
                            peer.received[arg] = self._article()
                            w(b"235 thanks\r\n")
                    elif verb == "TAKETHIS":
                        peer.offers.append((verb, arg))
                        peer.received[arg] = self._article()
                        w(b"239 " + arg.encode() + b"\r\n")
                    else:
                        w(b"500 what?\r\n")
                    self.wfile.flush()

            def _article(self) -> bytes:
                lines = []
                for ln in self.rfile:
                    if ln == b".\r\n":
                        break
                    lines.append(ln[1:] if ln.startswith(b"..") else ln)
                return b"".join(lines)

        socketserver.ThreadingTCPServer.allow_reuse_address = True
        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def wait_for(self, mid: str, timeout: float = 20.0) -> bytes:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if mid in self.received:
                return self.received[mid]
            time.sleep(0.05)
        raise AssertionError(f"{mid} never reached the fake peer (offers: {self.offers})")


def peer_settings(feed_port: int, streaming: bool = True) -> str:
    return (
        'path_host = "postroom.test"\nfeed_retry = ["1s"]\nfeed_max_attempts = 50\n'
        f'peers = [{{ name = "peer.test", host = "127.0.0.1:{feed_port}", groups = "peer.*,!peer.secret", '
        f'streaming = {"true" if streaming else "false"}, accept_from = ["{PEER_IP}"] }}, '
        '{ name = "acct.test", account = "feeder@example.test" }]\n')


@pytest.fixture(scope="module")
def fake() -> Iterator[FakePeer]:
    p = FakePeer(streaming=True)
    p.start()
    yield p
    p.stop()


@pytest.fixture(scope="module")
def srv(fake: FakePeer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    pytest.importorskip("postroom.news.service")
    with closing(Harness(write_config(tmp_path_factory.mktemp("peering"), peer_settings(fake.port)))) as h:
        yield h


def peer_client(srv: Harness, source: str = PEER_IP) -> NNTPClient:
    sock = socket.create_connection(("127.0.0.1", srv.ports["nntp"]), timeout=30, source_address=(source, 0))
    c = NNTPClient(sock)
    c.greeting = c.status()
    return c


def peer_article(group: str, *, path: str = "peer.test!not-for-mail", mid: str | None = None,
                 body: bytes = b"") -> tuple[str, bytes]:
    mid = mid or f"<{unique('peerart')}@peer.test>"
    raw = article(group, mid=mid, extra=f"Path: {path}\r\n", body=body)
    return mid, raw


def ihave(c: NNTPClient, mid: str, raw: bytes) -> tuple[int, int, str]:
    code, _text = c.cmd(f"IHAVE {mid}")
    if code != 335:
        return code, 0, _text
    c.send(NNTPClient.stuff(raw))
    code2, text2 = c.status()
    return code, code2, text2


def takethis(c: NNTPClient, mid: str, raw: bytes) -> tuple[int, str]:
    c.send(f"TAKETHIS {mid}\r\n".encode() + NNTPClient.stuff(raw))
    return c.status()


# -- IHAVE -------------------------------------------------------------------------------------
def test_ihave_from_peer_is_stored_with_our_path(srv: Harness) -> None:
    g = srv.add_group(unique("peer.ihave"))
    mid, raw = peer_article(g, body=b".leading dot\r\nline\r\n")
    with peer_client(srv) as c:
        assert ihave(c, mid, raw)[:2] == (335, 235)
        assert c.cmd(f"IHAVE {mid}")[0] == 435  # RFC 3977 §6.3.2.2: duplicate, not wanted
    with srv.client("none") as r:
        code, _t, got = r.article(mid)
        assert code == 220
        assert b"Path: postroom.test!peer.test!not-for-mail" in got
        assert b"\r\n.leading dot\r\nline" in got


def test_ihave_from_unknown_host_is_refused(srv: Harness) -> None:
    g = srv.add_group(unique("peer.flood"))
    mid, _raw = peer_article(g)
    with srv.client("none") as c:  # from 127.0.0.1: not a peer
        assert c.cmd(f"IHAVE {mid}")[0] == 502
        assert c.cmd("MODE STREAM")[0] == 502
        assert c.cmd(f"CHECK {mid}")[0] == 502
        c.send_line(f"TAKETHIS {mid}")
        assert c.status()[0] == 502
        assert c.closed()  # the article it would send next is not read: the connection ends
    assert not srv.call(srv.news.seen(mid))
    # A flood of offers: one 502 line each, nothing read, nothing stored, the session goes on.
    mids = [peer_article(g)[0] for _ in range(200)]
    with srv.client("none") as c:
        answers = c.pipeline(f"IHAVE {m}" for m in mids)
        assert {code for code, _t, _b in answers} == {502}
        assert c.cmd("DATE")[0] == 111
    assert srv.call(srv.news.numbers(g, 1, 10**9)) == []


def test_account_marked_as_peer_may_ihave(srv: Harness) -> None:
    from postroom.auth import hash_password

    g = srv.add_group(unique("peer.acct"))
    acc = srv.call(srv.store.create_account("feeder@example.test", hash_password("secret")))
    other = srv.new_user()
    mid, raw = peer_article(g, path="acct.test!x")
    with srv.login(other) as c:
        assert c.cmd(f"IHAVE {mid}")[0] == 502
    with srv.login(acc) as c:
        assert ihave(c, mid, raw)[:2] == (335, 235)


def test_ihave_errors(srv: Harness) -> None:
    g = srv.add_group(unique("peer.err"))
    with peer_client(srv) as c:
        assert c.cmd("IHAVE not-an-id")[0] == 501
        assert c.cmd("IHAVE")[0] == 501
        # A loop: our path identity already in Path (RFC 5537 §3.3): 437, and remembered.
        mid, raw = peer_article(g, path="peer.test!postroom.test!origin")
        assert ihave(c, mid, raw)[:2] == (335, 437)
        assert c.cmd(f"IHAVE {mid}")[0] == 435
        # The article's Message-ID is not the one offered.
        mid, raw = peer_article(g)
        assert ihave(c, f"<other.{unique('x')}@peer.test>", raw)[:2] == (335, 437)
        # Missing required headers: rejected, nothing stored.
        mid = f"<{unique('nohdr')}@peer.test>"
        raw = f"Message-ID: {mid}\r\nNewsgroups: {g}\r\n\r\nbody\r\n".encode()
        assert ihave(c, mid, raw)[:2] == (335, 437)
        # Too large: read to its end and refused; the session stays in sync.
        mid, raw = peer_article(g, body=b"x" * 70 + b"\r\n" * 1 + (b"y" * 998 + b"\r\n") * 1100)
        assert ihave(c, mid, raw)[:2] == (335, 437)
        assert c.cmd("DATE")[0] == 111
    assert srv.call(srv.news.numbers(g, 1, 10**9)) == []


def test_transient_failure_means_try_later(srv: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    g = srv.add_group(unique("peer.fail"))
    mid, raw = peer_article(g)

    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(srv.news, "post", broken)
    with peer_client(srv) as c:
        assert ihave(c, mid, raw)[:2] == (335, 436)  # RFC 3977 §6.3.2.2: try again later
    with peer_client(srv) as c:
        code, text = takethis(c, mid, raw)
        assert code == 400 and "disk" not in text  # no "later" code for TAKETHIS: 400, closed
        assert c.closed()
    monkeypatch.undo()
    with peer_client(srv) as c:  # offered again: taken, since nothing was recorded
        assert ihave(c, mid, raw)[:2] == (335, 235)


# -- streaming (RFC 4644) -------------------------------------------------------------------------
def test_streaming_check_and_takethis(srv: Harness) -> None:
    g = srv.add_group(unique("peer.stream"))
    with peer_client(srv) as c:
        code, text, caps = c.cmd_multi("CAPABILITIES")
        assert b"STREAMING" in caps and b"IHAVE" in caps
        assert c.cmd("MODE STREAM")[0] == 203
        arts = [peer_article(g) for _ in range(3)]
        # CHECKs pipelined: each answer carries its Message-ID (RFC 4644 §2.4).
        c.send(b"".join(f"CHECK {m}\r\n".encode() for m, _r in arts))
        for m, _r in arts:
            code, text = c.status()
            assert (code, text.split()[0]) == (238, m)
        # TAKETHIS pipelined too.
        c.send(b"".join(f"TAKETHIS {m}\r\n".encode() + NNTPClient.stuff(r) for m, r in arts))
        for m, _r in arts:
            code, text = c.status()
            assert (code, text.split()[0]) == (239, m)
        m0 = arts[0][0]
        assert c.cmd(f"CHECK {m0}")[:1] == (438,)
        assert takethis(c, m0, arts[0][1])[0] == 439  # a duplicate sent anyway
        # A loop and a bad Message-ID are rejected; the stream stays in sync.
        mid, raw = peer_article(g, path="postroom.test!peer.test")
        assert takethis(c, mid, raw)[0] == 439
        assert takethis(c, "garbage", peer_article(g)[1])[0] == 439
        assert c.cmd("CHECK garbage")[0] == 501
        assert c.cmd("DATE")[0] == 111
    assert len(srv.call(srv.news.numbers(g, 1, 10**9))) == 3


# -- the outgoing feed ----------------------------------------------------------------------------
def test_local_post_is_fed_to_the_peer_by_streaming(srv: Harness, fake: FakePeer) -> None:
    g = srv.add_group(unique("peer.feed"))
    secret = srv.add_group("peer.secret")
    with srv.client("none") as c:
        code, text = c.post(article(g, subject="to the peer"))
        assert code == 240, text
        mid = text.split()[-1]
        code, text = c.post(article(secret))
        assert code == 240, text
        secret_mid = text.split()[-1]
    got = fake.wait_for(mid)
    assert b"Path: postroom.test!not-for-mail" in got
    assert b"Xref:" not in got
    assert ("CHECK", mid) in fake.offers and ("TAKETHIS", mid) in fake.offers
    time.sleep(1.5)
    assert secret_mid not in fake.received  # groups = "peer.*,!peer.secret"


def test_article_from_peer_is_not_fed_back(srv: Harness, fake: FakePeer) -> None:
    g = srv.add_group(unique("peer.back"))
    mid, raw = peer_article(g)
    with peer_client(srv) as c:
        assert ihave(c, mid, raw)[:2] == (335, 235)
    with srv.client("none") as c:  # a marker posted after it: once it arrives, the other would have
        code, text = c.post(article(g))
        assert code == 240, text
        marker = text.split()[-1]
    fake.wait_for(marker)
    assert all(m != mid for _v, m in fake.offers)


def test_feed_retries_after_outage_and_restart(tmp_path: Path) -> None:
    pytest.importorskip("postroom.news.service")
    peer = FakePeer(streaming=False)  # IHAVE this time
    peer.start()
    port = peer.port
    peer.stop()  # the peer is down when we post
    cfg = write_config(tmp_path, peer_settings(port, streaming=False))
    h = Harness(cfg)
    try:
        g = h.add_group(unique("peer.outage"))
        with h.client("none") as c:
            mid1 = c.post(article(g))[1].split()[-1]
        time.sleep(2.5)  # a few failed connections: rescheduled, not lost
        peer = FakePeer(streaming=False, port=port)
        peer.refuse = True  # up, but "try later" (436)
        peer.start()
        deadline = time.monotonic() + 20
        while not any(m == mid1 for _v, m in peer.offers) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ("IHAVE", mid1) in peer.offers and mid1 not in peer.received
        peer.refuse = False
        peer.wait_for(mid1)
        peer.stop()
        with h.client("none") as c:
            mid2 = c.post(article(g))[1].split()[-1]
        rows = h.call(h.news.state.query("SELECT peer, attempts FROM feed WHERE message_id = ?", mid2))
        assert rows and rows[0][0] == "peer.test"
    finally:
        h.close()
    # Postroom restarts with the article still queued; the peer comes back meanwhile.
    peer = FakePeer(streaming=False, port=port)
    peer.start()
    with closing(Harness(cfg)) as h2:
        peer.wait_for(mid2)
        deadline = time.monotonic() + 10
        while h2.call(h2.news.state.query("SELECT 1 FROM feed")) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert h2.call(h2.news.state.query("SELECT 1 FROM feed")) == []
    peer.stop()
    assert list(peer.received) == [mid2]  # mid1 was not sent twice
