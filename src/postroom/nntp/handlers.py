"""One coroutine per NNTP reader command: (session, command) → reply (RFC 3977, 4642, 4643).

The gate in :mod:`.commands` has already checked the verb, the state, the argument
count and whether reading needs a login, so handlers only do their command. They
reach news only through :class:`postroom.news.service.News` (``s.news``) and never see
the socket.
"""

from __future__ import annotations

import time

from .. import log
from ..auth import kerberos, login
from ..news.article import header_fields, unfold
from ..news.reading import overview_field as _field
from ..news.reading import overview_line
from ..news.records import Article, GroupStatus, Overview, PostRefused
from ..news.wildmat import WildmatError, compile_wildmat
from ..wire import sasl
from ..wire.dotstuff import stuffed
from .proto import (
    Action,
    Command,
    ReadArticle,
    Reply,
    Response,
    State,
    format_date,
    is_message_id,
    listing,
    parse_date_time,
    parse_number,
    parse_range,
    reply,
    split_article,
)
from .session import Session

IMPLEMENTATION = "Postroom"
_log = log.get("nntp")

# RFC 3977 §8.4: the overview fields, in order; Xref is served as a full field.
OVERVIEW_FMT = ["Subject:", "From:", "Date:", "Message-ID:", "References:", ":bytes", ":lines", "Xref:full"]
# RFC 3977 §8.6: ":" says HDR takes any header; the two metadata items are listed too.
HDR_FIELDS = [":", ":bytes", ":lines"]
LIST_KEYWORDS = ("ACTIVE", "ACTIVE.TIMES", "NEWSGROUPS", "OVERVIEW.FMT", "HEADERS", "DISTRIB.PATS")


# -- greeting, capabilities, modes (RFC 3977 §5) ----------------------------------
async def greeting(s: Session) -> Reply:
    """RFC 3977 §5.1.1: 200 when this client may post, 201 when not."""
    if await s.news.can_post(user=s.user):
        return reply(200, f"{s.ctx.config.hostname} Postroom NNTP service ready, posting allowed")
    return reply(201, f"{s.ctx.config.hostname} Postroom NNTP service ready, posting prohibited")


def capability_lines(s: Session, may_post: bool) -> list[str]:
    from .commands import capability_flags

    flags = capability_flags()
    caps = ["VERSION 2", f"IMPLEMENTATION {IMPLEMENTATION}", "READER"]
    if may_post:
        caps.append("POST")
    if flags["IHAVE"]:
        caps.append("IHAVE")
    if flags["STREAMING"]:
        caps.append("STREAMING")  # RFC 4644 §2.1
    caps += ["NEWNEWS", "OVER MSGID", "HDR", "LIST " + " ".join(LIST_KEYWORDS)]
    if s.state is State.UNAUTHENTICATED:
        if s.tls_available and not s.tls_active:
            caps.append("STARTTLS")  # RFC 4642 §2.1: not after TLS or authentication
        if s.plaintext_allowed:
            caps.append("AUTHINFO USER SASL")  # RFC 4643 §2.1
            caps.append("SASL " + " ".join([*sasl.MECHANISMS, *kerberos.mechanisms(s.ctx, "nntp")]))
        else:
            # RFC 4643 §2.1: AUTHINFO without arguments: possible, but not on this connection yet.
            caps.append("AUTHINFO")
    return caps


async def capabilities(s: Session, cmd: Command) -> Response:
    # RFC 3977 §5.2.2: an argument is allowed and may be ignored.
    may_post = await s.news.can_post(user=s.user)
    return reply(101, "Capability list:", listing(capability_lines(s, may_post)))


async def mode(s: Session, cmd: Command) -> Response:
    what = cmd.args[0].upper()
    if what == "READER":
        # RFC 3977 §5.3: we are always a reader server; the answer is the greeting again.
        return await greeting(s)
    if what == "STREAM":
        from .commands import PEERING

        handler = PEERING.get("MODE STREAM")
        if handler is not None:
            return await handler(s, cmd)
    return reply(501, "Unknown MODE variant")


async def quit_(s: Session, cmd: Command) -> Response:
    return reply(205, "Connection closing", action=Action.CLOSE)


async def date(s: Session, cmd: Command) -> Response:
    return reply(111, format_date(time.time()))  # RFC 3977 §7.1


_HELP = [
    "ARTICLE [message-id|number]", "AUTHINFO USER name|PASS password|SASL mechanism [initial-response]",
    "BODY [message-id|number]", "CAPABILITIES [keyword]", "DATE", "GROUP newsgroup",
    "HDR header [message-id|range]", "HEAD [message-id|number]", "HELP", "LAST",
    "LIST [ACTIVE|ACTIVE.TIMES|NEWSGROUPS [wildmat]]|[OVERVIEW.FMT|HEADERS|DISTRIB.PATS]",
    "LISTGROUP [newsgroup [range]]", "MODE READER", "NEWGROUPS [yy]yymmdd hhmmss [GMT]",
    "NEWNEWS wildmat [yy]yymmdd hhmmss [GMT]", "NEXT", "OVER [range|message-id]", "POST", "QUIT",
    "STARTTLS", "STAT [message-id|number]", "XHDR header [message-id|range]", "XOVER [range]",
]


async def help_(s: Session, cmd: Command) -> Response:
    from .commands import PEERING

    extra = []
    if "IHAVE" in PEERING:
        extra.append("IHAVE message-id")
    if "CHECK" in PEERING:
        extra += ["CHECK message-id", "MODE STREAM", "TAKETHIS message-id"]
    return reply(100, "Help text follows", listing(sorted(_HELP + extra)))


# -- STARTTLS (RFC 4642) ------------------------------------------------------------
async def starttls(s: Session, cmd: Command) -> Response:
    if s.tls_active or s.state is State.AUTHENTICATED:
        return reply(502, "STARTTLS not allowed now")  # RFC 4642 §2.2.1: once, and not after AUTHINFO
    if not s.tls_available:
        return reply(580, "Can not initiate TLS negotiation")
    return reply(382, "Continue with TLS negotiation", action=Action.START_TLS)


# -- AUTHINFO (RFC 4643) --------------------------------------------------------------
_TLS_REQUIRED = reply(483, "Encryption required: use STARTTLS or NNTPS first")
_AUTH_FAILED = "Authentication failed"


async def authinfo(s: Session, cmd: Command) -> Response:
    if s.state is State.AUTHENTICATED:
        return reply(502, "Already authenticated")  # RFC 4643 §2.2
    sub = cmd.args[0].upper()
    if sub not in ("USER", "PASS", "SASL"):
        return reply(501, "Syntax: AUTHINFO USER|PASS|SASL")
    # RFC 4643 §2.3.1/§2.4: USER and PASS take the rest of the line; SASL a mechanism and
    # an optional initial response.
    _, _, rest = cmd.rest.strip().partition(" ")
    rest = rest.strip()
    if sub == "SASL":
        return await _sasl_start(s, cmd.args[1:])
    if not rest:
        return reply(501, f"Syntax: AUTHINFO {sub} argument")
    if not s.plaintext_allowed:
        return _TLS_REQUIRED
    if sub == "USER":
        s.authinfo_user = rest
        return reply(381, "Password required")
    if s.authinfo_user is None:
        return reply(482, "Authentication commands issued out of sequence")
    name, s.authinfo_user = s.authinfo_user, None
    return _outcome(s, await login.check_password(s, name, rest, _log))


async def _sasl_start(s: Session, args: tuple[str, ...]) -> Response:
    if not args or len(args) > 2:
        return reply(501, "Syntax: AUTHINFO SASL mechanism [initial-response]")
    mechanism: sasl.Mechanism | None = sasl.mechanism(args[0]) or kerberos.mechanism(s.ctx, "nntp", args[0])
    if mechanism is None:
        return reply(503, "Mechanism not recognized")  # RFC 4643 §2.4.2
    if not s.plaintext_allowed:
        return _TLS_REQUIRED  # PLAIN and LOGIN send the password as it is
    initial: bytes | None = None
    if len(args) == 2:
        initial = sasl.decode_b64(args[1], getattr(mechanism, "max_response", sasl.MAX_RESPONSE))  # "=" is an empty initial response
        if initial is None:
            return reply(504, "Base64 encoding error")
    return await _sasl_step(s, mechanism, initial)


async def sasl_continue(s: Session, line: bytes) -> Response:
    """The client's answer to a 383 challenge (RFC 4643 §2.4.2)."""
    mechanism, s.sasl = s.sasl, None
    assert mechanism is not None
    if sasl.is_cancel(line):
        return reply(481, "Authentication cancelled")
    data = sasl.decode_b64(line, getattr(mechanism, "max_response", sasl.MAX_RESPONSE))
    if data is None:
        return reply(504, "Base64 encoding error")
    return await _sasl_step(s, mechanism, data)


async def _sasl_step(s: Session, mechanism: sasl.Mechanism, data: bytes | None) -> Response:
    step = await login.sasl_step(s, mechanism, data, _log)
    if isinstance(step, login.Continue):
        s.sasl = mechanism
        return reply(383, step.challenge or "=")
    return _outcome(s, step)


def _outcome(s: Session, step: login.Accepted | login.Refused) -> Reply:
    if isinstance(step, login.Refused):
        s.auth_failures += 1
        close = Action.CLOSE if s.auth_failures >= s.settings.max_auth_failures else Action.NONE
        if step.throttled:
            return reply(481, "Too many failed logins; try again later", action=close)
        return reply(481, _AUTH_FAILED, action=close)
    s.account = step.account
    s.state = State.AUTHENTICATED
    _log.info("%s auth ok user=%r", s.tag, step.account.address)
    return reply(281, "Authentication accepted")


# -- groups and the current article (RFC 3977 §6.1) -----------------------------------
async def _no_group(s: Session, name: str) -> Reply:
    """411, or 480 when the group exists and a login might let this client read it."""
    if s.account is None and await s.news.group_info(name) is not None:
        return reply(480, "Authentication required for this newsgroup")  # RFC 4643 §2.2
    return reply(411, "No such newsgroup")


async def group(s: Session, cmd: Command) -> Response:
    g = await s.news.group(cmd.args[0], user=s.user)
    if g is None:
        return await _no_group(s, cmd.args[0])
    _select(s, g)
    return reply(211, f"{g.count} {g.low} {g.high} {g.name}")


def _select(s: Session, g: GroupStatus) -> None:
    s.group = g
    # RFC 3977 §6.1.1.2: the current article is the first one; none in an empty group.
    s.article = g.low if g.count > 0 else None


async def listgroup(s: Session, cmd: Command) -> Response:
    if cmd.args:
        g = await s.news.group(cmd.args[0], user=s.user)
        if g is None:
            return await _no_group(s, cmd.args[0])
    elif s.group is None:
        return reply(412, "No newsgroup selected")
    else:
        # Fresh figures for the selected group: articles may have arrived since GROUP.
        g = await s.news.group(s.group.name, user=s.user)
        if g is None:
            return reply(411, "No such newsgroup")
    lo, hi = g.low, g.high
    if len(cmd.args) == 2:
        rng = parse_range(cmd.args[1])
        if rng is None:
            return reply(501, "Syntax: LISTGROUP [newsgroup [range]]")
        lo, hi = max(lo, rng[0]), min(hi, rng[1])
    numbers = await s.news.numbers(g.name, lo, hi) if g.count and lo <= hi else []
    _select(s, g)
    return reply(211, f"{g.count} {g.low} {g.high} {g.name} list follows",
                 listing([str(n) for n in numbers]))


async def _neighbour(s: Session, forward: bool) -> int | None:
    """The next or previous existing article around the current one (NEXT, LAST), looked
    for in windows that double, so a long run of expired numbers costs few queries."""
    assert s.group is not None and s.article is not None
    name, window = s.group.name, 64
    if forward:
        fresh = await s.news.group(name, user=s.user)  # articles may have arrived since GROUP
        high = fresh.high if fresh is not None else 0
        lo = s.article + 1
        while lo <= high:
            hi = min(lo + window - 1, high)
            found = await s.news.numbers(name, lo, hi)
            if found:
                return min(found)
            lo, window = hi + 1, window * 2
        return None
    hi = s.article - 1
    while hi >= 1:
        lo = max(hi - window + 1, 1)
        found = await s.news.numbers(name, lo, hi)
        if found:
            return max(found)
        hi, window = lo - 1, window * 2
    return None


async def _stepped(s: Session, forward: bool) -> Response:
    if s.group is None:
        return reply(412, "No newsgroup selected")
    if s.article is None:
        return reply(420, "Current article number is invalid")
    n = await _neighbour(s, forward)
    if n is None:
        return reply(421, "No next article in this group") if forward else \
            reply(422, "No previous article in this group")
    s.article = n
    return reply(223, f"{n} {await _message_id_of(s, n)}")


async def last(s: Session, cmd: Command) -> Response:
    return await _stepped(s, forward=False)


async def next_(s: Session, cmd: Command) -> Response:
    return await _stepped(s, forward=True)


async def _message_id_of(s: Session, number: int) -> str:
    assert s.group is not None
    found = await s.news.header(s.group.name, "Message-ID", number, number)
    return found[0][1] if found and found[0][1] else "<0>"


# -- ARTICLE, HEAD, BODY, STAT (RFC 3977 §6.2) -----------------------------------------
_RETRIEVAL = {"ARTICLE": 220, "HEAD": 221, "BODY": 222, "STAT": 223}


async def article(s: Session, cmd: Command) -> Response:
    code = _RETRIEVAL[cmd.verb]
    arg = cmd.args[0] if cmd.args else None
    if arg is not None and arg.startswith("<"):
        # RFC 3977 §6.2.1.2: by message-id the current article does not change; n is 0.
        art = await _by_id(s, arg)
        return art if isinstance(art, Reply) else _article_reply(code, 0, art)
    if s.group is None:
        return reply(412, "No newsgroup selected")
    if arg is None:
        if s.article is None:
            return reply(420, "Current article number is invalid")
        number = s.article
    else:
        parsed = parse_number(arg)
        if parsed is None:
            return reply(501, "Syntax: ARTICLE [message-id|number]")
        number = parsed
    if code == 223:
        # STAT reads no bytes: the Message-ID comes from the header index.
        found = await s.news.header(s.group.name, "Message-ID", number, number)
        if not found:
            return _missing(arg)
        s.article = number
        return reply(223, f"{number} {found[0][1] or '<0>'}")
    stored = await s.news.article(s.group.name, number)
    if stored is None:
        return _missing(arg)
    s.article = number  # RFC 3977 §6.2.1.2: a number argument makes it current
    return _article_reply(code, number, stored)


# The exact lines the lean path takes (upper-case verb, one space, digits, CRLF: what readers
# send); any other spelling goes through the gate and article() above, with the same answer.
# Each verb's status line starts with (compared by identity in article_now).
_ARTICLE, _HEAD, _BODY, _STAT = b"220 ", b"221 ", b"222 ", b"223 "
_AT_HAND = {b"ARTICLE": _ARTICLE, b"HEAD": _HEAD, b"BODY": _BODY, b"STAT": _STAT}


def article_now(s: Session, line: bytes) -> list[bytes] | None:
    """The reply's chunks to ``ARTICLE n``, ``HEAD n``, ``BODY n`` or ``STAT n`` in the selected group when
    the answer needs no wait (``News.article_at_hand``): no Command, no gate, no coroutine, no
    records, and the stored bytes go out as they are read (status line, header, Xref, body,
    terminator: one vectored write). The same octets as :func:`article` through
    :func:`.commands.dispatch` (tests/server/nntp/test_nntp_at_hand.py checks it against that
    path) and the same state change (the number becomes the current article, RFC 3977
    §6.2.1.2). None for anything else (another form of line, no group selected, an AUTHINFO
    SASL exchange waiting, the article not at hand or missing, STAT of an article not read
    before, a message-id, an odd Message-ID): the caller dispatches the line as usual."""
    verb, _, arg = line.partition(b" ")
    prefix = _AT_HAND.get(verb)
    # (bytes.isdigit is ASCII digits only; 16 digits at most as parse_number wants, so the
    # line is far below the 512-octet limit the gate checks)
    if prefix is None or s.group is None or s.sasl is not None or arg[-2:] != b"\r\n":
        return None
    arg = arg[:-2]
    if not arg.isdigit() or len(arg) > 16:
        return None
    number = int(arg)
    if arg[:1] == b"0" and len(arg) > 1:
        arg = b"%d" % number  # the status line gives the number, not its spelling
    if prefix is _STAT:
        # STAT reads no bytes: the Message-ID ARTICLE learnt (the overview's, from the same
        # stored bytes) when the article was read before; else the overview is asked.
        try:
            known = s.news.known_at_hand(s.group.name, number)
        except Exception:  # noqa: BLE001 - the general path answers
            return None
        if known is None or known[7] is None:
            return None
        s.article = number
        return [prefix + arg + known[7]]
    try:
        got = s.news.article_at_hand(s.group.name, number)
    except Exception:  # noqa: BLE001 - the general path answers (403 and the log, if it fails there too)
        return None
    if got is None:
        return None
    raw, (_blob, _mid, at, body, xref, _head_dots, _body_dots, tail, dots) = got
    if at != body - 2 or tail is None or xref is None:
        return None  # no empty line after the header, or an odd Message-ID: _article_reply
    s.article = number
    status = prefix + arg + tail
    # What _article_reply sends, from the pieces: ARTICLE is raw with Xref before the empty
    # line, HEAD that up to the empty line, BODY what follows it. Dot-stuffing doubles the "."
    # at each of ``dots`` that falls in a piece (the news layer found them once); no line start
    # is at a piece's edge but the first (the header piece ends in CRLF, Xref starts with "X",
    # the part after it with the empty line's CR), so this is stuffed() of the joined reply.
    end = b".\r\n" if raw[-2:] == b"\r\n" else b"\r\n.\r\n"
    if prefix is _ARTICLE:
        if dots:
            return [status, _doubled(raw, 0, at, dots), xref, _doubled(raw, at, len(raw), dots), end]
        return [status, raw[:at], xref, raw[at:], end]
    if prefix is _HEAD:
        return [status, _doubled(raw, 0, at, dots) if dots else raw[:at], xref, b".\r\n"]
    if body == len(raw):
        return [status, b".\r\n"]
    return [status, _doubled(raw, body, len(raw), dots) if dots else raw[body:], end]


def _doubled(raw: bytes, lo: int, hi: int, dots: tuple[int, ...]) -> bytes:
    """``raw[lo:hi]`` with the "." at each offset of ``dots`` in that range sent twice (RFC 3977
    §3.1.1)."""
    out = []
    prev = lo
    for d in dots:
        if lo <= d < hi:
            out.append(raw[prev:d + 1])
            prev = d  # the next piece starts with the same "."
    out.append(raw[prev:hi])
    return b"".join(out)


async def _by_id(s: Session, arg: str) -> Article | Reply:
    """The article a message-id argument names, if this client may read it; else 501 or 430."""
    if not is_message_id(arg):
        return reply(501, "Invalid message-id")
    art = await s.news.article_by_id(arg, user=s.user)
    return art if art is not None else reply(430, "No article with that message-id")


def _missing(arg: str | None) -> Reply:
    if arg is None:
        return reply(420, "Current article number is invalid")
    return reply(423, "No article with that number")


def _article_reply(code: int, number: int, art: Article) -> Reply:
    head = f"{number} {art.message_id}"
    if code == 220:
        return reply(220, head, _block(art.raw, art.head_dots or art.body_dots))
    if code == 223:
        return reply(223, head)
    if art.body_at >= 2:  # the news layer said where the body starts
        if code == 221:
            return reply(221, head, _block(art.raw[:art.body_at - 2], art.head_dots))
        return reply(222, head, _block(art.raw[art.body_at:], art.body_dots))
    header, body = split_article(art.raw)
    if code == 221:
        return reply(221, head, stuffed(header + b"\r\n"))
    return reply(222, head, stuffed(body))


def _block(data: bytes, dots: bool) -> tuple[bytes, ...]:
    """``data`` as a dot-terminated block (RFC 3977 §3.1.1); with ``dots`` False the caller
    knows no line starts with "." and the scan for one is skipped."""
    if dots or not data.endswith(b"\r\n"):
        return stuffed(data)
    return (data, b".\r\n")


# -- POST (RFC 3977 §6.3.1) -------------------------------------------------------------
async def post(s: Session, cmd: Command) -> Response:
    if not await s.news.can_post(user=s.user):
        if s.account is None:
            return reply(480, "Authentication required for posting")  # RFC 4643 §2.2
        return reply(440, "Posting not permitted")
    return ReadArticle(reply(340, "Send article to be posted. End with <CR-LF>.<CR-LF>"), _posted)


async def _posted(s: Session, raw: bytes | None) -> Response:
    if raw is None:
        return reply(441, f"Article too large (at most {s.settings.max_article_size} octets)")
    try:
        done = await s.news.post(raw, user=s.user)
    except PostRefused as exc:
        # Local POST refusals are 441 (RFC 3977 §6.3.1); anything else would confuse a reader.
        return reply(441, exc.text)
    _log.info("%s post %s to %s", s.tag, done.message_id,
              ",".join(f"{g}:{n}" for g, n in done.locations))
    return reply(240, f"Article received {done.message_id}")


# -- information (RFC 3977 §7) -----------------------------------------------------------
def _since(args: tuple[str, ...]) -> float | None:
    return parse_date_time(args[0], args[1], args[2] if len(args) > 2 else None)


def _active_line(g: GroupStatus) -> str:
    return f"{g.name} {g.high} {g.low} {g.posting}"


async def newgroups(s: Session, cmd: Command) -> Response:
    since = _since(cmd.args)
    if since is None:
        return reply(501, "Syntax: NEWGROUPS [yy]yymmdd hhmmss [GMT]")
    groups = await s.news.new_groups(since, user=s.user)
    return reply(231, "List of new newsgroups follows", listing([_active_line(g) for g in groups]))


def _wildmat_ok(pattern: str) -> bool:
    try:
        compile_wildmat(pattern)
    except WildmatError:
        return False
    return True


async def newnews(s: Session, cmd: Command) -> Response:
    pattern = cmd.args[0]
    since = _since(cmd.args[1:])
    if since is None or not _wildmat_ok(pattern):
        return reply(501, "Syntax: NEWNEWS wildmat [yy]yymmdd hhmmss [GMT]")
    ids = await s.news.new_news(pattern, since, user=s.user)
    return reply(230, "List of new articles follows", listing(ids))


async def list_(s: Session, cmd: Command) -> Response:
    keyword = cmd.args[0].upper() if cmd.args else "ACTIVE"
    arg = cmd.args[1] if len(cmd.args) > 1 else None
    if keyword in ("ACTIVE", "ACTIVE.TIMES", "NEWSGROUPS"):
        if arg is not None and not _wildmat_ok(arg):
            return reply(501, "Invalid wildmat")
        groups = await s.news.groups(arg, user=s.user)
        if keyword == "ACTIVE":
            lines = [_active_line(g) for g in groups]
        elif keyword == "ACTIVE.TIMES":
            # RFC 3977 §7.6.4: name, creation time, creator (we keep no creator: the admin).
            lines = [f"{g.name} {int(g.created)} news@{s.settings.path_host}" for g in groups]
        else:
            lines = [f"{g.name}\t{_field(g.description)}" for g in groups]
        return reply(215, "Information follows", listing(lines))
    if keyword == "OVERVIEW.FMT":
        if arg is not None:
            return reply(501, "LIST OVERVIEW.FMT takes no argument")
        return reply(215, "Order of fields in overview database", listing(OVERVIEW_FMT))
    if keyword == "HEADERS":
        if arg is not None and arg.upper() not in ("MSGID", "RANGE"):
            return reply(501, "Syntax: LIST HEADERS [MSGID|RANGE]")
        return reply(215, "Headers and metadata items supported", listing(HDR_FIELDS))
    if keyword == "DISTRIB.PATS":
        if arg is not None:
            return reply(501, "LIST DISTRIB.PATS takes no argument")
        # RFC 3977 §7.6.5: we keep no distribution patterns: the list is empty.
        return reply(215, "Default distributions follow", listing([]))
    return reply(501, "Unknown LIST keyword")


# -- OVER and HDR (RFC 3977 §8) -------------------------------------------------------------
def _range_of(s: Session, arg: str | None) -> tuple[int, int] | Reply:
    """The numbers OVER/HDR ask for: a range argument, or the current article."""
    if s.group is None:
        return reply(412, "No newsgroup selected")
    if arg is None:
        if s.article is None:
            return reply(420, "Current article number is invalid")
        return s.article, s.article
    rng = parse_range(arg)
    if rng is None:
        return reply(501, "Syntax error in range")
    return rng


def _fields_of(raw: bytes) -> dict[str, str]:
    """The first occurrence of each header field of ``raw``, unfolded (by lower-case name)."""
    out: dict[str, str] = {}
    for name, value in header_fields(raw)[0]:
        out.setdefault(name, unfold(value))
    return out


def _metadata(raw: bytes) -> dict[str, str]:
    """RFC 3977 §8.1: ``:bytes`` (the article's octets) and ``:lines`` (its body lines)."""
    _, body = split_article(raw)
    return {":bytes": str(len(raw)), ":lines": str(body.count(b"\n"))}


async def over(s: Session, cmd: Command) -> Response:
    arg = cmd.args[0] if cmd.args else None
    code = 224
    if arg is not None and arg.startswith("<"):
        art = await _by_id(s, arg)
        if isinstance(art, Reply):
            return art
        f, meta = _fields_of(art.raw), _metadata(art.raw)
        # RFC 3977 §8.3.2: by message-id the number field is 0.
        line = overview_line(Overview(0, f.get("subject", ""), f.get("from", ""), f.get("date", ""),
                                      f.get("message-id", art.message_id), f.get("references", ""),
                                      int(meta[":bytes"]), int(meta[":lines"]), f.get("xref", "")))
        return reply(code, "Overview information follows", listing([line]))
    rng = _range_of(s, arg)
    if isinstance(rng, Reply):
        return rng
    assert s.group is not None
    # The lines come ready from the stored rows (News.overview_lines): no record per article.
    block = await s.news.overview_lines(s.group.name, rng[0], rng[1]) if rng[0] <= rng[1] else b""
    if not block:
        if arg is None:
            return reply(420, "Current article number is invalid")
        return reply(423, "No articles in that range")
    return reply(code, "Overview information follows", (block, b".\r\n"))


async def hdr(s: Session, cmd: Command) -> Response:
    # RFC 3977 §8.5 HDR answers 225; RFC 2980 §2.6 XHDR answers 221 with the same lines.
    code = 225 if cmd.verb == "HDR" else 221
    field = cmd.args[0]
    lower = field.lower()
    if lower.endswith(":") and not lower.startswith(":"):
        lower = lower[:-1]  # "Subject:" is accepted for "Subject"
    if not lower or (lower.startswith(":") and lower not in (":bytes", ":lines")):
        return reply(501, "Unknown metadata item")
    arg = cmd.args[1] if len(cmd.args) > 1 else None
    if arg is not None and arg.startswith("<"):
        art = await _by_id(s, arg)
        if isinstance(art, Reply):
            return art
        values = _metadata(art.raw) if lower.startswith(":") else _fields_of(art.raw)
        # RFC 3977 §8.5.2: by message-id the number is 0.
        return reply(code, "Headers follow", listing([f"0 {_field(values.get(lower, ''))}"]))
    rng = _range_of(s, arg)
    if isinstance(rng, Reply):
        return rng
    assert s.group is not None
    rows = await s.news.header(s.group.name, field.rstrip(":") if not lower.startswith(":") else lower,
                               rng[0], rng[1]) if rng[0] <= rng[1] else []
    if not rows:
        if arg is None:
            return reply(420, "Current article number is invalid")
        return reply(423, "No articles in that range")
    return reply(code, "Headers follow", listing([f"{n} {_field(v)}" for n, v in rows]))
