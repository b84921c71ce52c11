"""The POP3 command table and the one gate every command line passes.

Each verb names its handler, the states it is valid in and how many arguments it
takes. :func:`dispatch` checks all of that once, so handlers never repeat it, and
turns unexpected exceptions into a generic ``-ERR`` (the text goes to the log).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Awaitable, Callable

from ..wire import gate
from . import handlers as h
from .proto import (
    MAX_ARG_LENGTH, Action, Code, Command, CommandError, Reply, Response, State, err, parse_command,
)
from .session import Session

Handler = Callable[[Session, Command], Awaitable[Response]]

AUTH = frozenset({State.AUTHORIZATION})
TRANS = frozenset({State.TRANSACTION})
BOTH = AUTH | TRANS


@dataclass(frozen=True, slots=True)
class Spec(gate.Spec[Handler, State]):
    rest_arg: bool = False  # one argument: the rest of the line, spaces included (USER, PASS)
    long_args: bool = False  # exempt from the 40-octet limit (AUTH's initial response)

    def takes(self, count: int) -> bool:
        # The rest of the line is one argument whatever its spaces: dispatch checks it is there.
        return self.rest_arg or gate.Spec.takes(self, count)


COMMANDS: dict[str, Spec] = {
    # RFC 1939 §4, §7: AUTHORIZATION
    "USER": Spec(h.user, AUTH, 1, 1, rest_arg=True),
    "PASS": Spec(h.pass_, AUTH, 1, 1, rest_arg=True),
    "APOP": Spec(h.apop, AUTH, 2, 2),
    "QUIT": Spec(h.quit_, BOTH),
    # RFC 2595 §4, RFC 5034 §4, RFC 6856 §2
    "STLS": Spec(h.stls, AUTH),
    "AUTH": Spec(h.auth, AUTH, 0, 2, long_args=True),
    "UTF8": Spec(h.utf8, AUTH),
    # RFC 2449 §5: CAPA in both states
    "CAPA": Spec(h.capa, BOTH),
    # RFC 1939 §5, §7: TRANSACTION
    "STAT": Spec(h.stat, TRANS),
    "LIST": Spec(h.list_, TRANS, 0, 1),
    "RETR": Spec(h.retr, TRANS, 1, 1),
    "DELE": Spec(h.dele, TRANS, 1, 1),
    "NOOP": Spec(h.noop, TRANS),
    "RSET": Spec(h.rset, TRANS),
    "TOP": Spec(h.top, TRANS, 2, 2),
    "UIDL": Spec(h.uidl, TRANS, 0, 1),
}


async def dispatch(s: Session, line: bytes) -> Response:
    """Handle one line from the client and return what to send back."""
    if s.sasl is not None:
        return await _guarded(s, "AUTH", h.sasl_continue(s, line))
    try:
        cmd = parse_command(line)
    except CommandError as exc:
        return bad_command(s, str(exc))
    # RFC 1939 §3: a command in the wrong state gets -ERR.
    spec = gate.admit(COMMANDS, cmd.verb, s.state, len(cmd.args),
                      logged_in=s.state is not State.AUTHORIZATION)
    if isinstance(spec, str):
        return bad_command(s, spec)
    if spec.rest_arg:
        if not cmd.rest.strip():
            return bad_command(s, f"{cmd.verb} needs an argument")
    elif not spec.long_args and max(map(len, cmd.args), default=0) > MAX_ARG_LENGTH:
        return bad_command(s, "Argument too long")  # RFC 2449 §4
    # The guard is inline rather than a wrapping coroutine: one coroutine less per command.
    try:
        return await spec.handler(s, cmd)
    except Exception:
        return _internal_error(s, cmd.verb)


async def _guarded(s: Session, verb: str, work: Awaitable[Response]) -> Response:
    try:
        return await work
    except Exception:
        return _internal_error(s, verb)


def _internal_error(s: Session, verb: str) -> Reply:
    # GUIDE principle 4: log the traceback, never send the exception text.
    s.ctx.log.exception("pop3: %s failed for %s", verb, s.peer_ip)
    return err("Internal error", Code.SYS_TEMP)


def bad_command(s: Session, text: str) -> Response:
    """-ERR for a line that was not a valid command; too many of them end the session."""
    s.bad_commands += 1
    if s.bad_commands >= s.settings.max_bad_commands:
        return err("Too many invalid commands", action=Action.CLOSE)
    return err(text)
