"""The login steps every protocol takes alike once it has a user name and a password.

A protocol frames SASL its own way (POP3 sends base64 lines after ``+ ``, ManageSieve
quoted strings, each with its own cancel) and answers in its own words (``-ERR [AUTH]``,
``NO``/``BYE``). What lies between is the same everywhere and lives here: stepping the
:mod:`postroom.wire.sasl` mechanism, refusing proxy authorization, asking the
:class:`~postroom.auth.Authenticator`, counting the failures it does not see, and the
``auth failed`` / ``auth throttled`` log lines that fail2ban reads (docs/architecture.md,
Logging). The caller turns the :data:`Step` into its reply and, on :class:`Accepted`,
does its own login (POP3 locks the maildrop, ManageSieve just changes state).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from ..wire import sasl

if TYPE_CHECKING:
    from ..context import ServerContext
    from ..storage.models import Account


class Client(Protocol):
    """What a login needs from a protocol session (both sessions are dataclasses with these)."""

    @property
    def ctx(self) -> ServerContext: ...

    @property
    def peer_ip(self) -> str: ...

    @property
    def tag(self) -> str: ...


@dataclass(frozen=True, slots=True)
class Continue:
    """Send ``challenge`` (base64 already) as the protocol's continuation and keep the
    mechanism for the client's next response."""

    challenge: str


@dataclass(frozen=True, slots=True)
class Accepted:
    account: Account


@dataclass(frozen=True, slots=True)
class Refused:
    """Wrong credentials, or (``throttled``) refused unchecked: too many recent failures."""

    throttled: bool = False


Step = Continue | Accepted | Refused

#: A user name in a log line is cut here: it is client input and may be anything.
_LOGGED_NAME = 100


async def sasl_step(s: Client, mechanism: sasl.Mechanism, data: bytes | None,
                    log: logging.Logger) -> Step:
    """Feed the mechanism one decoded response (None: no initial response) and, when it
    has the credentials, check them."""
    result = mechanism.step(data)
    if isinstance(result, sasl.Challenge):
        return Continue(sasl.encode_b64(result.data))
    if isinstance(result, sasl.Failed):
        # A malformed exchange: nothing to count against a name (the reason is for the log).
        log.info("%s auth failed (%s: %s)", s.tag, mechanism.name, result.reason)
        return Refused()
    if isinstance(result, sasl.Identified):  # GSSAPI: the ticket proved who it is
        from . import kerberos

        return await kerberos.finish(s, result, log)
    if result.authzid and result.authzid.lower() != result.username.lower():
        # Logging in as someone else (proxy authorization, RFC 4616 §2) is not offered;
        # a client asking for it costs a failure like a wrong password.
        await count_failure(s, result.username, log)
        return Refused()
    return await check_password(s, result.username, result.password, log)


async def check_password(s: Client, name: str, password: str, log: logging.Logger) -> Accepted | Refused:
    """Ask the authenticator (which sleeps the failure penalty) and log a refusal.
    The success line is the caller's: it knows when the login is complete."""
    result = await s.ctx.auth.authenticate(name, password, s.peer_ip)
    if result.account is None:
        log.info("%s auth %s user=%r", s.tag,
                 "throttled" if result.throttled else "disabled" if result.disabled else "failed",
                 name[:_LOGGED_NAME])
        return Refused(throttled=result.throttled)
    return Accepted(result.account)


async def count_failure(s: Client, name: str, log: logging.Logger) -> None:
    """A failure the authenticator did not check itself (an APOP digest, a refused
    authzid) is logged, counted and delayed exactly like a wrong password."""
    log.info("%s auth failed user=%r", s.tag, name[:_LOGGED_NAME])
    await s.ctx.auth.record_failure(name, s.peer_ip)
