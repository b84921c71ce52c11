"""The ManageSieve command table and the one gate every command passes.

Each verb names its handler, the states it is valid in and how many arguments it
takes. :func:`dispatch` checks all of that once, so handlers never repeat it, turns
a malformed argument (:class:`ProtocolError`) into ``NO`` and unexpected exceptions
into a generic ``NO (TRYLATER)`` (the traceback goes to the log, GUIDE principle 4).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from ..wire.gate import Spec, admit
from . import handlers as h
from .proto import (
    Args,
    Code,
    Command,
    ProtocolError,
    Response,
    State,
    bye,
    first_word,
    no,
    tokenize,
)
from .session import Session

Handler = Callable[[Session, Args], Awaitable[Response]]

NONAUTH = frozenset({State.NONAUTH})
AUTH = frozenset({State.AUTH})
ANY = NONAUTH | AUTH

COMMANDS: dict[str, Spec[Handler, State]] = {
    # RFC 5804 §2.1-§2.4, §2.13, §2.14: session
    "AUTHENTICATE": Spec(h.authenticate, NONAUTH, 1, 2),
    "STARTTLS": Spec(h.starttls, NONAUTH),
    "LOGOUT": Spec(h.logout, ANY),
    "CAPABILITY": Spec(h.capability, ANY),
    "NOOP": Spec(h.noop, ANY, 0, 1),
    "UNAUTHENTICATE": Spec(h.unauthenticate, AUTH),
    # RFC 5804 §2.5-§2.12: scripts
    "HAVESPACE": Spec(h.havespace, AUTH, 2, 2),
    "PUTSCRIPT": Spec(h.putscript, AUTH, 2, 2),
    "LISTSCRIPTS": Spec(h.listscripts, AUTH),
    "SETACTIVE": Spec(h.setactive, AUTH, 1, 1),
    "GETSCRIPT": Spec(h.getscript, AUTH, 1, 1),
    "DELETESCRIPT": Spec(h.deletescript, AUTH, 1, 1),
    "RENAMESCRIPT": Spec(h.renamescript, AUTH, 2, 2),
    "CHECKSCRIPT": Spec(h.checkscript, AUTH, 1, 1),
}

# A literal dropped for its size refuses these with QUOTA/MAXSIZE (RFC 5804 §2.6).
_SCRIPT_VERBS = frozenset({"PUTSCRIPT", "CHECKSCRIPT"})


async def dispatch(s: Session, cmd: Command) -> Response:
    """Handle one complete command from the client and return what to send back."""
    if s.sasl is not None:
        if cmd.oversized:
            s.sasl = None
            return bad_command(s, "Response too long")
        try:
            return await h.sasl_continue(s, cmd.raw)
        except Exception:  # noqa: BLE001 - GUIDE principle 4: logged, generic reply
            return _internal_error(s, "AUTHENTICATE")
    if cmd.oversized:
        # The dropped literal is not in ``raw``: answer from the verb alone.
        if first_word(cmd.raw).decode("ascii", "replace") in _SCRIPT_VERBS and s.state is State.AUTH:
            return no(f"Script is larger than {s.sieve.max_script_size} octets", Code.QUOTA_MAXSIZE)
        return bad_command(s, "Argument too long")
    try:
        args = tokenize(cmd.raw)
    except ProtocolError as exc:
        return bad_command(s, str(exc))
    spec = admit(COMMANDS, args.verb, s.state, len(args.args), logged_in=s.state is State.AUTH)
    if isinstance(spec, str):
        return bad_command(s, spec)
    try:
        return await spec.handler(s, args)
    except ProtocolError as exc:
        return bad_command(s, str(exc))
    except Exception:  # noqa: BLE001 - GUIDE principle 4: logged, generic reply
        return _internal_error(s, args.verb)


def _internal_error(s: Session, verb: str) -> Response:
    s.ctx.log.exception("managesieve: %s failed for %s", verb, s.peer_ip)
    return no("Internal error; try again later", Code.TRYLATER)


def bad_command(s: Session, text: str) -> Response:
    """``NO`` for a command that was not valid; too many of them end the session."""
    s.bad_commands += 1
    if s.bad_commands >= s.settings.max_bad_commands:
        return bye("Too many invalid commands")
    return no(text)
