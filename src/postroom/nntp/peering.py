"""Articles from other news servers: IHAVE (RFC 3977 §6.3.2) and streaming (RFC 4644).

Only configured peers (``[[nntp.peers]]``) may transfer articles: a connection is a peer's
when it comes from one of the peer's ``accept_from`` addresses, or when it logged in as the
peer's ``account``. Anyone else gets 502 (RFC 3977 §3.2.1: the command exists but is not
available to this connection), so a host cannot flood us with IHAVE offers, and a TAKETHIS
from it ends the connection rather than making us read an article we would drop.

What an offer is checked against, in order:

- the Message-ID's syntax (RFC 3977 §3.6);
- the history (:meth:`News.seen`): an article we have, had, refused or cancelled is not
  wanted again (435/438; a TAKETHIS of it is 439);
- articles being received right now by another session of this process: "try later"
  (436/431), so two peers offering the same article at once do not both send it;
- once the article is read: its size (``[nntp] max_article_size``; the server reads an
  over-large article to its end and drops it) and that its Message-ID is the one offered;
- then :meth:`News.post` with ``peer`` set, which refuses a loop (our path identity already
  in Path, RFC 5537 §3.3: 437/439, and remembered in the history so that it is not offered
  again), validates the headers, stores the article
  in every group in one delivery and records history and the outgoing feed in one commit
  before we answer 235/239: nothing is acknowledged before it is durable, nothing is
  stored half.

The handlers follow commands.py's signature and are exported in :data:`HANDLERS`.
"""

from __future__ import annotations

import ipaddress
import logging
import time

from ..news.article import header_value
from ..news.records import PostRefused
from .proto import Action, Command, ReadArticle, Reply, Response, is_message_id, reply
from .session import Session
from .settings import PeerSettings

_log = logging.getLogger("postroom.nntp")

#: Message-IDs this process is receiving right now (between the offer and the commit), with
#: the time after which the entry no longer counts: an entry whose session died before the
#: article ended is never removed by it. The server cuts off an article slower than 1 KB/s
#: after a minute (server.py), so a live transfer never outlasts its entry.
_receiving: dict[str, float] = {}

# What a refusal from News.post (whose code may be a POST, IHAVE or TAKETHIS one) becomes.
_IHAVE_CODES = {435: 435, 436: 436, 437: 437, 438: 435, 439: 437, 431: 436, 441: 437, 440: 437}


def _in_flight(mid: str) -> bool:
    until = _receiving.get(mid)
    if until is None:
        return False
    if time.monotonic() > until:
        del _receiving[mid]
        return False
    return True


def _receive(s: Session, mid: str) -> None:
    _receiving[mid] = time.monotonic() + 120.0 + s.settings.max_article_size / 1024


def peer_for(s: Session) -> PeerSettings | None:
    """The configured peer this connection is (by address or logged-in account), or None."""
    if s.peer is not None:
        return s.peer  # type: ignore[no-any-return]
    try:
        ip = ipaddress.ip_address(s.peer_ip)
    except ValueError:
        ip = None
    if ip is not None and ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    user = s.user.lower() if s.user else None
    for p in s.settings.peers:
        if (ip is not None and any(ip in net for net in p.accept_from)) or (user and p.account == user):
            s.peer = p
            return p
    return None


def path_entries(path: str) -> list[str]:
    """The path identities of a Path field body (RFC 5536 §3.1.5: ``!``-separated; the
    ``!!`` and ``!.SEEN.`` / ``!.POSTED`` diagnostics of RFC 5537 §3.2.1 are not hosts)."""
    out = []
    for part in path.split("!"):
        part = part.strip()
        if part and not part.startswith("."):
            out.append(part.lower())
    return out


def _refusal(s: Session, raw: bytes | None, offered: str) -> tuple[int, str] | None:
    """Why an article that was read cannot be taken (as an IHAVE code), or None."""
    if raw is None:
        return 437, f"Article too large (at most {s.settings.max_article_size} octets)"
    mid = header_value(raw, "message-id")
    if mid is None or mid != offered:
        return 437, "Message-ID of the article is not the one offered"
    return None


async def _store(s: Session, peer: PeerSettings, raw: bytes | None, offered: str) -> tuple[int, str]:
    """Check and store an article a peer sent; the IHAVE code and text to answer."""
    try:
        why = _refusal(s, raw, offered)
        if why is not None:
            _log.info("%s refused %s from %s: %d %s", s.tag, offered, peer.name, *why)
            return why
        assert raw is not None
        try:
            posted = await s.news.post(raw, user=s.user, peer=peer.name)
        except PostRefused as exc:
            # Unknown codes: a 4xx below 435 (400, 403) is transient, anything else final.
            code = _IHAVE_CODES.get(exc.code, 436 if exc.code < 435 else 437)
            _log.info("%s refused %s from %s: %d %s", s.tag, offered, peer.name, exc.code, exc.text)
            return code, exc.text
        except Exception:
            # GUIDE principle 4: the traceback to the log; the peer hears "try again later"
            # (nothing was acknowledged, so it keeps the article).
            s.ctx.log.exception("%s storing %s from %s failed", s.tag, offered, peer.name)
            return 436, "Transfer failed, try again later"
        _log.info("%s accepted %s from %s to %s", s.tag, offered, peer.name,
                  ",".join(f"{g}:{n}" for g, n in posted.locations))
        return 235, "Article transferred OK"
    finally:
        _receiving.pop(offered, None)


# -- IHAVE (RFC 3977 §6.3.2) ------------------------------------------------------------------
async def ihave(s: Session, cmd: Command) -> Response:
    peer = peer_for(s)
    if peer is None:
        return reply(502, "Permission denied: not a configured peer")
    if len(cmd.args) != 1 or not is_message_id(cmd.args[0]):
        return reply(501, "Syntax: IHAVE message-id")
    mid = cmd.args[0]
    if await s.news.seen(mid):
        return reply(435, "Article not wanted")
    if _in_flight(mid):
        return reply(436, "Transfer in progress elsewhere; try again later")
    _receive(s, mid)

    async def then(s: Session, raw: bytes | None) -> Response:
        code, text = await _store(s, peer, raw, mid)
        return reply(code, text)

    # RFC 3977 §6.3.2.2: a transient failure after the article was sent is 436.
    return ReadArticle(reply(335, "Send it; end with <CR-LF>.<CR-LF>"), then,
                       busy=Reply(436, "Server busy, try again later"))


# -- streaming (RFC 4644) -----------------------------------------------------------------------
async def mode_stream(s: Session, cmd: Command) -> Response:
    if peer_for(s) is None:
        return reply(502, "Permission denied: not a configured peer")
    s.streaming = True
    return reply(203, "Streaming permitted")  # RFC 4644 §2.3


async def check(s: Session, cmd: Command) -> Response:
    if peer_for(s) is None:
        return reply(502, "Permission denied: not a configured peer")
    if len(cmd.args) != 1 or not is_message_id(cmd.args[0]):
        return reply(501, "Syntax: CHECK message-id")
    mid = cmd.args[0]
    if await s.news.seen(mid):
        return reply(438, f"{mid} Article not wanted")  # RFC 4644 §2.4
    if _in_flight(mid):
        return reply(431, f"{mid} Transfer in progress elsewhere; try again later")
    return reply(238, f"{mid} Send it")


async def takethis(s: Session, cmd: Command) -> Response:
    peer = peer_for(s)
    if peer is None:
        # The article follows the command at once (RFC 4644 §2.5); rather than read what we
        # would drop, the connection ends: a host that is not a peer has no business here.
        return reply(502, "Permission denied: not a configured peer", action=Action.CLOSE)
    mid = cmd.args[0] if len(cmd.args) == 1 else ""
    wanted = is_message_id(mid) and not _in_flight(mid)
    if wanted and await s.news.seen(mid):
        wanted = False
    if wanted:
        _receive(s, mid)
    shown = mid if is_message_id(mid) else "<>"

    async def then(s: Session, raw: bytes | None) -> Response:
        if not wanted:
            # Syntax error, duplicate or received elsewhere right now: read and dropped.
            _log.info("%s refused %s from %s: 439 not wanted", s.tag, shown, peer.name)
            return reply(439, f"{shown} Article not wanted")
        code, text = await _store(s, peer, raw, mid)
        if code == 235:
            return reply(239, f"{mid} Article transferred OK")  # RFC 4644 §2.5
        if code == 436:
            # TAKETHIS has no "try later" code: a transient failure ends the connection
            # (400), so the peer keeps the article and offers it again later.
            return reply(400, "Service temporarily unavailable, try again later", action=Action.CLOSE)
        return reply(439, f"{mid} {text}")

    return ReadArticle(None, then, busy=Reply(400, "Server busy, try again later", action=Action.CLOSE))


HANDLERS = {"IHAVE": ihave, "MODE STREAM": mode_stream, "CHECK": check, "TAKETHIS": takethis}
