"""The NNTP command table and the one gate every command line passes.

Each verb names its handler, the states it is valid in and how many arguments it takes.
:func:`dispatch` checks all of that once, so handlers never repeat it, and
turns unexpected exceptions into ``403`` (the traceback goes to the log).

How a handler is written (the signature N3's :mod:`.peering` uses too)::

    async def handler(s: Session, cmd: Command) -> Response

``s`` is the connection's :class:`~.session.Session`: ``s.ctx`` (config, store, log),
``s.news`` (the :class:`postroom.news.service.News` of this process), ``s.settings``
(``[nntp]``), ``s.peer_ip``, ``s.tls_active``, ``s.user`` (the logged-in address or
None), ``s.group``/``s.article`` (the selected group and current article),
``s.streaming`` and ``s.peer`` (free for the peering code). ``cmd.verb`` is the upper-case
keyword, ``cmd.args`` the space-separated arguments (the gate has checked their count),
``cmd.rest`` the rest of the line as sent. A handler never sees the socket: it returns a
:class:`~.proto.Reply` (``reply(235, "Article transferred OK")``; ``body`` for a multi-line
answer, already dot-terminated: :func:`.proto.listing` or ``wire.dotstuff.stuffed``), or a
:class:`~.proto.ReadArticle` when an article follows: ``ReadArticle(reply(335, "Send it"),
then)`` for IHAVE, ``ReadArticle(None, then)`` for TAKETHIS; the server then reads the
dot-terminated article (bounded by ``max_article_size``) and awaits ``then(s, raw)``, raw
being the un-stuffed bytes or None when the article was too large (read to its end and
dropped), and sends what ``then`` returns. Peering handlers are picked up from
``peering.HANDLERS`` (``{"IHAVE": ..., "CHECK": ..., "TAKETHIS": ..., "MODE STREAM": ...}``);
when that module is absent those commands answer 500 and CAPABILITIES does not list them.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from types import ModuleType

from ..wire import gate
from . import handlers as h
from .proto import (
    MAX_ARG_LENGTH,
    MAX_COMMAND_LINE,
    Action,
    Command,
    CommandError,
    Reply,
    Response,
    State,
    parse_command,
    reply,
)
from .session import Session

Handler = Callable[[Session, Command], Awaitable[Response]]

ANY = frozenset(State)
UNAUTH = frozenset({State.UNAUTHENTICATED})


@dataclass(frozen=True, slots=True)
class Spec(gate.Spec[Handler, State]):
    #: The handler checks its own arguments (peering: TAKETHIS must read its article whatever
    #: the arguments were, or the session would lose sync).
    any_args: bool = False

    def takes(self, count: int) -> bool:
        return self.any_args or gate.Spec.takes(self, count)


def _load_peering() -> ModuleType | None:
    """N3's peering module, if this build has it (like protocols._import)."""
    name = __package__ + ".peering"
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name == name:
            return None
        raise


_peering = _load_peering()
PEERING: Mapping[str, Handler] = getattr(_peering, "HANDLERS", {}) if _peering is not None else {}

COMMANDS: dict[str, Spec] = {
    # RFC 3977 §5: session administration
    "CAPABILITIES": Spec(h.capabilities, ANY, 0, 1),
    "MODE": Spec(h.mode, ANY, 1, 1),
    "QUIT": Spec(h.quit_, ANY),
    # RFC 4642 STARTTLS, RFC 4643 AUTHINFO (the handler answers 502 once logged in)
    "STARTTLS": Spec(h.starttls, ANY),
    "AUTHINFO": Spec(h.authinfo, ANY, 1, 64),  # USER and PASS take the rest of the line
    # RFC 3977 §6.1: group and article selection
    "GROUP": Spec(h.group, ANY, 1, 1),
    "LISTGROUP": Spec(h.listgroup, ANY, 0, 2),
    "LAST": Spec(h.last, ANY),
    "NEXT": Spec(h.next_, ANY),
    # RFC 3977 §6.2: retrieval
    "ARTICLE": Spec(h.article, ANY, 0, 1),
    "HEAD": Spec(h.article, ANY, 0, 1),
    "BODY": Spec(h.article, ANY, 0, 1),
    "STAT": Spec(h.article, ANY, 0, 1),
    # RFC 3977 §6.3: posting (permission is the handler's: 440 or 480)
    "POST": Spec(h.post, ANY),
    # RFC 3977 §7: information
    "DATE": Spec(h.date, ANY),
    "HELP": Spec(h.help_, ANY),
    "NEWGROUPS": Spec(h.newgroups, ANY, 2, 3),
    "NEWNEWS": Spec(h.newnews, ANY, 3, 4),
    "LIST": Spec(h.list_, ANY, 0, 2),
    # RFC 3977 §8: overview and headers, and the RFC 2980 names older readers use
    "OVER": Spec(h.over, ANY, 0, 1),
    "XOVER": Spec(h.over, ANY, 0, 1),
    "HDR": Spec(h.hdr, ANY, 1, 2),
    "XHDR": Spec(h.hdr, ANY, 1, 2),
}
# RFC 3977 §6.3.2 IHAVE, RFC 4644 CHECK/TAKETHIS: N3's handlers when present.
for _verb in ("IHAVE", "CHECK", "TAKETHIS"):
    if _verb in PEERING:
        COMMANDS[_verb] = Spec(PEERING[_verb], ANY, any_args=True)


def capability_flags() -> dict[str, bool]:
    """Which optional parts this build has, for CAPABILITIES."""
    return {"IHAVE": "IHAVE" in PEERING,
            "STREAMING": "CHECK" in PEERING and "TAKETHIS" in PEERING and "MODE STREAM" in PEERING}


async def dispatch(s: Session, line: bytes) -> Response:
    """Handle one line from the client and return what to send back."""
    if s.sasl is not None:
        try:
            return await h.sasl_continue(s, line)
        except Exception:  # noqa: BLE001 - logged with its traceback, answered 403
            return _internal_error(s, "AUTHINFO SASL")
    try:
        cmd = parse_command(line)
    except CommandError as exc:
        return bad_command(s, 500, str(exc))
    # RFC 4643 §2.4.2: AUTHINFO SASL (with its initial response) may be up to 12288 octets;
    # every other command line at most 512 (RFC 3977 §3.1). The server reads up to the former.
    sasl_line = cmd.verb == "AUTHINFO" and cmd.args[:1] != () and cmd.args[0].upper() == "SASL"
    if len(line) > MAX_COMMAND_LINE and not sasl_line:
        return bad_command(s, 500, "Line too long")
    spec = COMMANDS.get(cmd.verb)
    if spec is None:
        return bad_command(s, 500, "Unknown command")  # RFC 3977 §3.2.1
    # Most commands are valid in every state: an identity test spares hashing the enum (a
    # Python-level __hash__ on 3.11) on every command.
    if spec.states is not ANY and s.state not in spec.states:
        return reply(502, f"{cmd.verb} is not allowed now")
    # (No argument is longer than the line: most lines need no look at each argument.)
    if not spec.takes(len(cmd.args)) or (not spec.any_args and not sasl_line and len(line) > MAX_ARG_LENGTH
                                         and max(map(len, cmd.args), default=0) > MAX_ARG_LENGTH):
        return bad_command(s, 501, "Syntax error")  # RFC 3977 §3.2.1
    try:
        return await spec.handler(s, cmd)
    except Exception:  # noqa: BLE001 - logged with its traceback, answered 403
        return _internal_error(s, cmd.verb)


def _internal_error(s: Session, verb: str) -> Reply:
    # GUIDE principle 4: log the traceback, never send the exception text.
    s.ctx.log.exception("nntp: %s failed for %s", verb, s.peer_ip)
    return reply(403, "Internal fault")  # RFC 3977 §3.2.1


def bad_command(s: Session, code: int, text: str) -> Reply:
    """500/501 for a line that was not a valid command; too many of them end the session."""
    s.bad_commands += 1
    if s.bad_commands >= s.settings.max_bad_commands:
        return reply(400, "Too many invalid commands", action=Action.CLOSE)
    return reply(code, text)
