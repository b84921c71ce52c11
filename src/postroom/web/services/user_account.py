"""A user's own password and app passwords: the checks behind ``/settings/password``,
``/settings/app-passwords`` and their API routes under ``/api/v1/me/``.

Every function acts on the signed-in account (``viewer(request)``), never on an address
from the request, so one user cannot reach another's credentials.

Password change: the current password is checked through the mail protocols'
authenticator (a wrong one counts on the same per-IP and per-user failure counters as a
wrong IMAP password, so the form cannot be used to guess it). The new one must pass
:func:`password_problem`; storing it bumps the session epoch (every other web session
ends) and drops the account from this process's verified-credentials cache (other
processes notice by themselves: their cache entries carry the old hash).
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from ...accounts import app_passwords, attributes
from ...accounts.credentials import check_name
from ...storage.api import CredentialExists
from ...storage.models import Account, Credential
from ..errors import Conflict, Forbidden, Invalid, NotFound
from ..site import ctx_of, viewer

MIN_PASSWORD = 10
MAX_PASSWORD = 1024
MIN_DISTINCT = 5
MAX_APP_PASSWORDS = 50


def password_problem(password: str, address: str) -> str | None:
    """Why ``password`` is too weak for ``address`` (None: acceptable).

    A floor, not a score: long enough to resist online guessing behind the login
    throttle, not one character repeated, not the address or its local part."""
    if len(password) < MIN_PASSWORD:
        return f"use at least {MIN_PASSWORD} characters"
    if len(password) > MAX_PASSWORD:
        return f"use at most {MAX_PASSWORD} characters"
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in password):
        return "no control characters"
    if len(set(password)) < MIN_DISTINCT:
        return f"use at least {MIN_DISTINCT} different characters"
    local = address.split("@", 1)[0].lower()
    if local and len(local) >= 3 and local in password.lower():
        return "do not use your address in the password"
    return None


async def _account(request: web.Request) -> Account:
    account = await ctx_of(request).store.get_account_by_id(viewer(request).account_id)
    if account is None:
        raise NotFound("your account no longer exists")
    return account


async def change_password(request: web.Request, current: str, new: str, confirm: str | None = None) -> Account:
    """Check and store a new password; returns the account as stored (its new epoch).

    ``confirm`` (the form's second copy) is compared when given; the API sends none."""
    ctx = ctx_of(request)
    v = viewer(request)
    if not current:
        raise Invalid("enter your current password", "current")
    if len(current) > MAX_PASSWORD:
        raise Forbidden("the current password is not right", "current")
    problem = password_problem(new, v.address)
    if problem:
        raise Invalid(f"the new password is too weak: {problem}", "new")
    if confirm is not None and confirm != new:
        raise Invalid("the two copies of the new password differ", "confirm")
    if new == current:
        raise Invalid("the new password is the current one", "new")
    result = await ctx.auth.authenticate(v.address, current, request.remote or "", app_passwords=False)
    if result.throttled:
        raise Forbidden("too many failed logins from your address; wait a few minutes", "current")
    if result.account is None or result.account.id != v.account_id:
        raise Forbidden("the current password is not right", "current")
    account = await attributes.change_password(ctx.store, v.address, new)
    ctx.auth.verified.forget(v.address.strip().lower())
    return account


# -- app passwords ---------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class MailSetting:
    """One line of "how to set up your mail client" shown with a new app password."""

    protocol: str
    host: str
    port: int
    security: str  # "SSL/TLS" or "STARTTLS"


def mail_settings(request: web.Request) -> list[MailSetting]:
    """The IMAP and SMTP submission listeners a mail client can use, from the config."""
    cfg = ctx_of(request).config
    wanted = {"imap": "IMAP", "submission": "SMTP", "submissions": "SMTP", "pop3": "POP3"}
    out = []
    for ls in cfg.listeners:
        label = wanted.get(ls.protocol)
        if label is None or ls.tls not in ("implicit", "starttls"):
            continue
        out.append(MailSetting(label, cfg.hostname, ls.port, "SSL/TLS" if ls.tls == "implicit" else "STARTTLS"))
    return sorted(out, key=lambda s: (s.protocol, s.port))


async def list_app_passwords(request: web.Request) -> list[Credential]:
    return await app_passwords.list_for(ctx_of(request).store, await _account(request))


async def create_app_password(request: web.Request, name: str) -> tuple[Credential, str]:
    """A new app password: (its record, the secret, shown this once)."""
    account = await _account(request)
    store = ctx_of(request).store
    try:
        name = check_name(name)
    except ValueError as exc:
        raise Invalid(str(exc), "name") from None
    if len(await app_passwords.list_for(store, account)) >= MAX_APP_PASSWORDS:
        raise Conflict(f"at most {MAX_APP_PASSWORDS} app passwords; revoke one first", "name")
    try:
        return await app_passwords.create(store, account, name)
    except CredentialExists:
        raise Conflict("you already have an app password of that name", "name") from None


async def revoke_app_password(request: web.Request, name: str) -> None:
    if not await app_passwords.revoke(ctx_of(request).store, await _account(request), name):
        raise NotFound("you have no app password of that name", "name")


async def revoke_all_app_passwords(request: web.Request) -> int:
    """Revoke every app password of the account (a lost phone whose name nobody recalls);
    returns how many there were."""
    store = ctx_of(request).store
    account = await _account(request)
    count = 0
    for cred in await app_passwords.list_for(store, account):
        count += await app_passwords.revoke(store, account, cred.name)
    return count
