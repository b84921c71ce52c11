"""Not-authenticated state (RFC 3501 §6.2): STARTTLS, AUTHENTICATE, LOGIN."""

from __future__ import annotations

from ... import log
from ...auth import kerberos
from ...auth.login import Refused
from ...storage.models import Account
from ...wire import sasl
from ..errors import Bad, No
from ..parser.args import AuthenticateArgs, LoginArgs
from ..responses import After, Reply
from ..session import Session, State
from .anystate import capabilities

_auth_log = log.get("imap")


async def starttls(s: Session, _: None) -> Reply:
    if s.tls_active:
        raise Bad("TLS is already active")
    if not s.starttls_available:
        raise No("TLS is not available")
    return Reply("Begin TLS negotiation now", after=After.STARTTLS)


def _require_privacy(s: Session) -> None:
    if not s.login_allowed:
        # RFC 3501 §6.2.3 LOGINDISABLED; response code from RFC 5530 §3.
        raise No("Use STARTTLS before logging in", b"PRIVACYREQUIRED")


async def _finish_login(s: Session, user: str, password: str) -> Reply:
    result = await s.ctx.auth.authenticate(user, password, s.peer_ip)
    if result.account is None:
        _auth_log.info("%s auth %s user=%r", s.tag, "throttled" if result.throttled else "failed", user[:100])
        if result.throttled:
            raise No("Too many failed logins, try again later", b"UNAVAILABLE")
        raise No("Authentication failed", b"AUTHENTICATIONFAILED")
    _logged_in(s, result.account)
    # RFC 3501 §7.1: capabilities may change after login; send them in the OK.
    return Reply("Logged in", code=b"CAPABILITY " + capabilities(s))


def _logged_in(s: Session, account: Account) -> None:
    s.account = account
    s.state = State.AUTHENTICATED
    _auth_log.info("%s auth ok user=%r", s.tag, account.address)


async def login(s: Session, a: LoginArgs) -> Reply:
    _require_privacy(s)
    try:
        user, password = a.user.decode("utf-8"), a.password.decode("utf-8")
    except UnicodeDecodeError:
        raise No("Authentication failed", b"AUTHENTICATIONFAILED") from None
    return await _finish_login(s, user, password)


async def authenticate(s: Session, a: AuthenticateArgs) -> Reply:
    """RFC 3501 §6.2.2 with RFC 4959 SASL-IR; challenges go out as ``+ base64``."""
    _require_privacy(s)
    mech = sasl.mechanism(a.mechanism) or kerberos.mechanism(s.ctx, "imap", a.mechanism)
    if mech is None:
        raise No("Unsupported authentication mechanism")
    limit = getattr(mech, "max_response", sasl.MAX_RESPONSE)
    data: bytes | None = None
    if a.initial is not None:
        data = sasl.decode_b64(a.initial, limit)
        if data is None:
            raise Bad("Invalid base64 in initial response")
    result = mech.step(data)
    while isinstance(result, sasl.Challenge):
        await s.io.send(b"+ " + sasl.encode_b64(result.data).encode() + b"\r\n")
        line = await s.io.read_line(s.settings.preauth_timeout)
        if sasl.is_cancel(line):
            raise Bad("Authentication cancelled")
        data = sasl.decode_b64(line, limit)
        if data is None:
            raise Bad("Invalid base64 in response")
        result = mech.step(data)
    if isinstance(result, sasl.Failed):
        _auth_log.info("%s auth failed (%s: %s)", s.tag, mech.name, result.reason)
        raise No("Authentication failed", b"AUTHENTICATIONFAILED")
    if isinstance(result, sasl.Identified):
        step = await kerberos.finish(s, result, _auth_log)
        if isinstance(step, Refused):
            if step.throttled:
                raise No("Too many failed logins, try again later", b"UNAVAILABLE")
            raise No("Authentication failed", b"AUTHENTICATIONFAILED")
        _logged_in(s, step.account)
        return Reply("Logged in", code=b"CAPABILITY " + capabilities(s))
    if result.authzid and result.authzid.lower() != result.username.lower():
        raise No("Acting as another user is not allowed", b"AUTHORIZATIONFAILED")
    return await _finish_login(s, result.username, result.password)
