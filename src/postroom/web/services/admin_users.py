"""Accounts for ``/admin/users`` and ``/api/v1/admin/users``.

Flags, quotas and passwords go through :mod:`postroom.accounts` and the store's quota
calls, the same ones ``postroom user`` uses. Nothing here returns a password hash: the
rows carry only what an admin may see. A password reset bumps the session epoch (every
web session of the account ends); disabling does too (``accounts.attributes``).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from aiohttp import web

from ...accounts import attributes
from ...auth.passwords import hash_password
from ...errors import AccountExists, AccountNotFound
from ...news.account import is_reserved
from ...storage.models import Account, Quota
from ..errors import Conflict, Forbidden, Invalid, NotFound
from ..site import ctx_of, viewer
from .admin_common import address, count, password, size


@dataclass(frozen=True, slots=True)
class UserRow:
    address: str
    admin: bool
    disabled: bool
    totp: bool
    storage_used: int
    storage_limit: int | None
    messages_used: int
    message_limit: int | None

    def as_json(self) -> dict[str, object]:
        return {"address": self.address, "admin": self.admin, "disabled": self.disabled, "totp": self.totp,
                "storage_used": self.storage_used, "storage_limit": self.storage_limit,
                "messages_used": self.messages_used, "message_limit": self.message_limit}


def _row(account: Account, quota: Quota | None) -> UserRow:
    q = quota or Quota(None, None)
    return UserRow(account.address, account.admin, account.disabled, bool(account.totp_secret),
                   q.storage_used, q.storage_limit, q.messages_used, q.message_limit)


async def list_all(request: web.Request) -> list[UserRow]:
    store = ctx_of(request).store
    rows = []
    for account in sorted(await store.list_accounts(), key=lambda a: a.address):
        if not is_reserved(account.address):  # the newsgroups' internal account
            rows.append(_row(account, await store.get_quota(account.id, with_usage=True)))
    return rows


async def _account(request: web.Request, value: str) -> Account:
    addr = address(value)
    account = await ctx_of(request).store.get_account(addr)
    if account is None or is_reserved(addr):
        raise NotFound(f"no account {addr}", "address")
    return account


async def get(request: web.Request, value: str) -> UserRow:
    account = await _account(request, value)
    return _row(account, await ctx_of(request).store.get_quota(account.id, with_usage=True))


async def add(request: web.Request, addr: str, new_password: str, admin: bool = False) -> UserRow:
    store = ctx_of(request).store
    addr = address(addr)
    if is_reserved(addr):
        raise Invalid(f"{addr} is reserved for the server", "address")
    new_password = password(new_password, addr)
    domain = addr.rpartition("@")[2]
    if not await store.has_domain(domain):
        raise Invalid(f"{domain} is not served here; add the domain first", "address")
    if await store.get_account(addr) is not None:
        raise Conflict(f"{addr} already exists", "address")
    hashed = await asyncio.to_thread(hash_password, new_password)
    try:
        await store.create_account(addr, hashed)
    except AccountExists:
        raise Conflict(f"{addr} already exists", "address") from None
    if admin:
        await attributes.set_admin(store, addr, True)
    return await get(request, addr)


def _not_self(request: web.Request, account: Account, what: str) -> None:
    if account.address == viewer(request).address:
        raise Forbidden(f"you cannot {what} your own account here (another admin can)")


async def update(request: web.Request, addr: str, *, admin: bool | None = None, disabled: bool | None = None,
                 storage: str | int | None = None, messages: str | int | None = None,
                 set_quota: bool = False) -> UserRow:
    """Change flags and/or limits; every value is checked before anything is stored."""
    store = ctx_of(request).store
    account = await _account(request, addr)
    limits = (size(storage, "storage"), count(messages, "messages")) if set_quota else None
    if admin is False and account.admin:
        _not_self(request, account, "remove the admin flag of")
    if disabled:
        _not_self(request, account, "disable")
    try:
        if admin is not None and admin != account.admin:
            await attributes.set_admin(store, account.address, admin)
        if disabled is not None and disabled != account.disabled:
            await attributes.set_disabled(store, account.address, disabled)
        if limits is not None:
            await store.set_quota(account.address, *limits)
    except AccountNotFound:
        raise NotFound(f"no account {account.address}", "address") from None
    return await get(request, account.address)


async def reset_password(request: web.Request, addr: str, new_password: str) -> UserRow:
    store = ctx_of(request).store
    account = await _account(request, addr)
    new_password = password(new_password, account.address)
    await attributes.change_password(store, account.address, new_password)  # bumps the session epoch
    return await get(request, account.address)


async def delete(request: web.Request, addr: str) -> None:
    account = await _account(request, addr)
    _not_self(request, account, "delete")
    try:
        await ctx_of(request).store.delete_account(account.address)
    except AccountNotFound:
        raise NotFound(f"no account {account.address}", "address") from None
