"""What the web needs to know and change about an account, behind one small interface.

The attributes live in the store (``admin``, ``disabled``, ``session_epoch``,
``totp_secret`` on :class:`~postroom.storage.models.Account`) and are changed through
:mod:`postroom.accounts` (the web-store part of issue #21). The web reads them only
here, so the session middleware, the login and the TOTP pages depend on
:class:`Identity` and not on the store's or that package's details; tests may install
another implementation as ``ctx.state["web.identity"]``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ..context import ServerContext


@dataclass(frozen=True, slots=True)
class WebAccount:
    id: int
    address: str
    is_admin: bool
    disabled: bool
    totp_secret: str | None
    session_epoch: int


class Identity(Protocol):
    async def account(self, address: str) -> WebAccount | None: ...
    async def account_by_id(self, account_id: int) -> WebAccount | None: ...
    async def set_totp_secret(self, address: str, secret: str | None) -> None: ...
    async def claim_totp_step(self, account_id: int, secret: str, step: int) -> bool: ...
    async def enable_totp(self, account_id: int, secret: str, step: int) -> bool: ...
    async def end_session(self, account_id: int, digest: bytes, expires: float) -> None: ...
    async def session_ended(self, digest: bytes) -> bool: ...
    async def bump_session_epoch(self, address: str) -> None: ...
    async def account_for_api_token(self, token: str) -> WebAccount | None: ...


def _accounts(name: str) -> ModuleType:
    return importlib.import_module(f"postroom.accounts.{name}")


def web_account(account: Any) -> WebAccount:
    return WebAccount(int(account.id), str(account.address), bool(getattr(account, "admin", False)),
                      bool(getattr(account, "disabled", False)), getattr(account, "totp_secret", None) or None,
                      int(getattr(account, "session_epoch", 0) or 0))


class StoreIdentity:
    """:class:`Identity` on the server's store and :mod:`postroom.accounts`."""

    def __init__(self, ctx: ServerContext) -> None:
        self.store = ctx.store

    async def account(self, address: str) -> WebAccount | None:
        account = await self.store.get_account(address.strip().lower())
        return web_account(account) if account is not None else None

    async def account_by_id(self, account_id: int) -> WebAccount | None:
        account = await self.store.get_account_by_id(account_id)
        return web_account(account) if account is not None else None

    async def set_totp_secret(self, address: str, secret: str | None) -> None:
        await _accounts("attributes").set_totp_secret(self.store, address, secret)

    async def claim_totp_step(self, account_id: int, secret: str, step: int) -> bool:
        return bool(await _accounts("attributes").claim_totp_step(self.store, account_id, secret, step))

    async def enable_totp(self, account_id: int, secret: str, step: int) -> bool:
        return bool(await _accounts("attributes").enable_totp(self.store, account_id, secret, step))

    async def end_session(self, account_id: int, digest: bytes, expires: float) -> None:
        await _accounts("attributes").end_web_session(self.store, account_id, digest, expires)

    async def session_ended(self, digest: bytes) -> bool:
        return bool(await _accounts("attributes").web_session_ended(self.store, digest))

    async def bump_session_epoch(self, address: str) -> None:
        await _accounts("attributes").log_out_everywhere(self.store, address)

    async def account_for_api_token(self, token: str) -> WebAccount | None:
        found = await _accounts("tokens").resolve(self.store, token)
        if found is None:
            return None
        # resolve() gives the token's account (or the token record naming it).
        address = getattr(found, "address", None) or getattr(found, "account", None)
        if isinstance(address, str):
            return await self.account(address)
        account_id = getattr(found, "account_id", None)
        return await self.account_by_id(int(account_id)) if account_id is not None else None


def identity_for(ctx: ServerContext) -> Identity:
    found = ctx.state.get("web.identity")
    if found is None:
        found = StoreIdentity(ctx)
        ctx.state["web.identity"] = found
    return found  # type: ignore[no-any-return]
