"""One coroutine per ManageSieve command: (session, arguments) → response.

The dispatcher in :mod:`.commands` has already checked the state and the argument
count, so handlers only do their command. Scripts are checked by the same compiler
delivery uses (``sieve.settings.compile_with``) and kept through the Store interface;
store refusals become their RFC 5804 §1.3 response codes here.
"""

from __future__ import annotations

from .. import log
from ..auth import kerberos, login
from ..sieve.api import SieveError
from ..sieve.settings import compile_with, supported_extensions
from ..storage.api import (
    InvalidSieveScriptName,
    SieveScriptActive,
    SieveScriptExists,
    SieveScriptNotFound,
    SieveScriptQuota,
    sieve_script_name_problem,
)
from ..storage.models import Account
from ..wire import sasl
from .proto import (
    Action,
    Args,
    Challenge,
    Code,
    ProtocolError,
    Reply,
    Response,
    State,
    bye,
    literal,
    no,
    ok,
    quote,
    single_string,
    text_arg,
)
from .session import Session

IMPLEMENTATION = "Postroom"
VERSION = "1.0"  # RFC 5804 §1.7: the protocol version this server speaks

_auth_log = log.get("managesieve")
# Mechanisms we know and refuse on principle (RFC 5804 §1.3 AUTH-TOO-WEAK).
_WEAK_MECHANISMS = frozenset({"ANONYMOUS", "CRAM-MD5", "DIGEST-MD5"})


# -- capabilities (RFC 5804 §1.7) --------------------------------------------------
def capability_lines(s: Session) -> bytes:
    caps: list[tuple[str, str | None]] = [("IMPLEMENTATION", IMPLEMENTATION)]
    # RFC 5804 §1.7: before TLS, hide the mechanisms that may not be used in plaintext.
    mechanisms = [*sasl.MECHANISMS, *kerberos.mechanisms(s.ctx, "managesieve")]
    caps.append(("SASL", " ".join(mechanisms) if s.state is State.NONAUTH and s.plaintext_allowed else ""))
    extensions = supported_extensions()
    caps.append(("SIEVE", " ".join(extensions)))
    if s.tls_available and not s.tls_active and s.state is State.NONAUTH:
        caps.append(("STARTTLS", None))
    caps.append(("MAXREDIRECTS", str(s.sieve.max_redirects)))
    if "enotify" in extensions:
        caps.append(("NOTIFY", "mailto"))  # RFC 5804 §1.7: the enotify methods (RFC 5436)
    if s.account is not None:
        caps.append(("OWNER", s.account.address))
    caps.append(("UNAUTHENTICATE", None))  # RFC 5804 §2.14.1
    caps.append(("VERSION", VERSION))
    out = bytearray()
    for name, value in caps:
        out += quote(name)
        if value is not None:
            out += b" " + quote(value)
        out += b"\r\n"
    return bytes(out)


async def capability(s: Session, a: Args) -> Response:
    return ok(data=capability_lines(s))


async def noop(s: Session, a: Args) -> Response:
    if a.args:
        # RFC 5804 §2.13: echo the client's tag in a TAG response code.
        return ok("Done", Code.TAG, code_arg=text_arg(a.args[0], "tag"))
    return ok("Done")


async def logout(s: Session, a: Args) -> Response:
    return ok("Logout completed", action=Action.CLOSE)  # RFC 5804 §2.3


async def starttls(s: Session, a: Args) -> Response:
    if s.tls_active:
        return no("Already using TLS")
    if not s.tls_available:
        return no("TLS is not available")
    return ok("Begin TLS negotiation now", action=Action.START_TLS)


async def unauthenticate(s: Session, a: Args) -> Response:
    s.logout()
    return ok("Unauthenticated")


# -- authentication (RFC 5804 §2.1) ------------------------------------------------
async def authenticate(s: Session, a: Args) -> Response:
    name = text_arg(a.args[0], "mechanism").upper()
    mechanism: sasl.Mechanism | None = sasl.mechanism(name) or kerberos.mechanism(s.ctx, "managesieve", name)
    if mechanism is None:
        if name in _WEAK_MECHANISMS:
            return no("Mechanism too weak for this server", Code.AUTH_TOO_WEAK)
        return no("Unsupported authentication mechanism")
    if not s.plaintext_allowed:
        # RFC 5804 §2.1: PLAIN and LOGIN need the protection of TLS (STARTTLS first).
        return no("Plaintext authentication needs TLS; use STARTTLS first", Code.ENCRYPT_NEEDED)
    initial: bytes | None = None
    if len(a.args) == 2:
        raw = a.args[1]
        if isinstance(raw, int):
            raw = str(raw).encode()  # digits only: valid base64 all the same
        initial = sasl.decode_b64(raw, getattr(mechanism, "max_response", sasl.MAX_RESPONSE)) if raw else b""
        if initial is None:
            return no("Invalid base64 data")
    return await _sasl_step(s, mechanism, initial)


async def sasl_continue(s: Session, raw: bytes) -> Response:
    """The client's string answering a challenge, or ``"*"`` to cancel."""
    mechanism, s.sasl = s.sasl, None
    assert mechanism is not None
    try:
        value = single_string(raw)
    except ProtocolError as exc:
        return no(str(exc))
    if value == b"*":
        return no("Authentication cancelled")  # RFC 5804 §2.1
    data = sasl.decode_b64(value, getattr(mechanism, "max_response", sasl.MAX_RESPONSE)) if value else b""
    if data is None:
        return no("Invalid base64 data")
    return await _sasl_step(s, mechanism, data)


async def _sasl_step(s: Session, mechanism: sasl.Mechanism, data: bytes | None) -> Response:
    step = await login.sasl_step(s, mechanism, data, _auth_log)
    if isinstance(step, login.Continue):
        s.sasl = mechanism
        return Challenge(step.challenge)
    if isinstance(step, login.Refused):
        return _fail(s, throttled=step.throttled)
    return _login(s, step.account)


def _fail(s: Session, *, throttled: bool = False) -> Reply:
    s.auth_failures += 1
    if s.auth_failures >= s.settings.max_auth_failures:
        return bye("Too many failed logins")
    if throttled:
        return no("Too many failed logins; try again later", Code.TRYLATER)
    return no("Authentication failed")


def _login(s: Session, account: Account) -> Reply:
    s.account = account
    s.state = State.AUTH
    _auth_log.info("%s auth ok user=%r", s.tag, account.address)
    return ok("Logged in")


# -- scripts (RFC 5804 §2.5-§2.12) -------------------------------------------------
def _name(value: bytes | int) -> str:
    """A script name argument; RFC 5804 §1.6 rules give ``NO`` with the reason."""
    name = text_arg(value, "script name")
    problem = sieve_script_name_problem(name)
    if problem:
        raise ProtocolError(problem)
    return name


def _account_id(s: Session) -> int:
    assert s.account is not None  # the command table only lets these run after login
    return s.account.id


def _script_text(s: Session, value: bytes | int) -> str | Reply:
    """The script's text, or the refusal: too large, or not UTF-8 (RFC 5228 §2.1)."""
    if isinstance(value, int):
        raise ProtocolError("Expected the script as a string")
    if len(value) > s.sieve.max_script_size:
        return no(f"Script is larger than {s.sieve.max_script_size} octets", Code.QUOTA_MAXSIZE)
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return no("Script is not valid UTF-8")


def _check(s: Session, text: str) -> Reply | None:
    """``NO`` naming line and column when the script does not compile; ``OK (WARNINGS)``
    when the engine has remarks; None when it is clean."""
    try:
        script = compile_with(s.sieve, text)
    except SieveError as exc:
        return no(str(exc))
    warnings = [str(w) for w in getattr(script, "warnings", ()) or ()]
    if warnings:
        return ok("; ".join(warnings), Code.WARNINGS)
    return None


async def havespace(s: Session, a: Args) -> Response:
    name = _name(a.args[0])
    size = a.args[1]
    if not isinstance(size, int):
        raise ProtocolError("Expected the size as a number")
    if size > s.sieve.max_script_size:
        return no(f"Script is larger than {s.sieve.max_script_size} octets", Code.QUOTA_MAXSIZE)
    scripts = await s.ctx.store.list_sieve_scripts(_account_id(s))
    if len(scripts) >= s.sieve.max_scripts and all(i.name != name for i in scripts):
        return no(f"At most {s.sieve.max_scripts} scripts", Code.QUOTA_MAXSCRIPTS)
    return ok("Putscript would succeed")


async def putscript(s: Session, a: Args) -> Response:
    name = _name(a.args[0])
    text = _script_text(s, a.args[1])
    if isinstance(text, Reply):
        return text
    verdict = _check(s, text)
    if verdict is not None and not verdict.ok:
        return verdict
    try:
        # Returns once committed: RFC 5804 §2.6 "OK" means the script is stored.
        await s.ctx.store.put_sieve_script(_account_id(s), name, text, max_scripts=s.sieve.max_scripts)
    except SieveScriptQuota:
        return no(f"At most {s.sieve.max_scripts} scripts", Code.QUOTA_MAXSCRIPTS)
    except InvalidSieveScriptName as exc:
        return no(str(exc))
    return verdict or ok("Script stored")


async def checkscript(s: Session, a: Args) -> Response:
    text = _script_text(s, a.args[0])
    if isinstance(text, Reply):
        return text
    return _check(s, text) or ok("Script is valid")  # RFC 5804 §2.12


async def listscripts(s: Session, a: Args) -> Response:
    out = bytearray()
    for info in await s.ctx.store.list_sieve_scripts(_account_id(s)):
        out += quote(info.name) + (b" ACTIVE\r\n" if info.active else b"\r\n")
    return ok("Listscripts completed", data=bytes(out))


async def getscript(s: Session, a: Args) -> Response:
    name = _name(a.args[0])
    text = await s.ctx.store.get_sieve_script(_account_id(s), name)
    if text is None:
        return no("There is no script by that name", Code.NONEXISTENT)
    # RFC 5804 §2.9: the script as a string (always a literal: scripts span lines).
    return ok("Getscript completed", data=literal(text.encode("utf-8")) + b"\r\n")


async def setactive(s: Session, a: Args) -> Response:
    raw = text_arg(a.args[0], "script name")
    if raw == "":
        await s.ctx.store.set_active_sieve_script(_account_id(s), None)  # RFC 5804 §2.8
        return ok("No script is active now")
    name = _name(a.args[0])
    text = await s.ctx.store.get_sieve_script(_account_id(s), name)
    if text is None:
        return no("There is no script by that name", Code.NONEXISTENT)
    # A script stored under older limits or an older engine might no longer compile:
    # activating it would only make delivery fall back to keep.
    verdict = _check(s, text)
    if verdict is not None and not verdict.ok:
        return verdict
    try:
        await s.ctx.store.set_active_sieve_script(_account_id(s), name)
    except SieveScriptNotFound:  # deleted by another session in between
        return no("There is no script by that name", Code.NONEXISTENT)
    return ok("Script activated")


async def deletescript(s: Session, a: Args) -> Response:
    name = _name(a.args[0])
    try:
        await s.ctx.store.delete_sieve_script(_account_id(s), name)
    except SieveScriptNotFound:
        return no("There is no script by that name", Code.NONEXISTENT)
    except SieveScriptActive:
        return no("The active script cannot be deleted", Code.ACTIVE)  # RFC 5804 §2.10
    return ok("Script deleted")


async def renamescript(s: Session, a: Args) -> Response:
    old, new = _name(a.args[0]), _name(a.args[1])
    try:
        await s.ctx.store.rename_sieve_script(_account_id(s), old, new)
    except SieveScriptNotFound:
        return no("There is no script by that name", Code.NONEXISTENT)
    except SieveScriptExists:
        return no("A script with the new name already exists", Code.ALREADYEXISTS)  # RFC 5804 §2.11.1
    except InvalidSieveScriptName as exc:
        return no(str(exc))
    return ok("Script renamed")
