"""An account's flags and web-session state.

Functions (all async, ``store`` first; each returns the account as now stored and raises
AccountNotFound for an unknown address):

- ``get(store, address) -> Account | None``.
- ``set_admin(store, address, admin)``: may use ``/admin`` and API tokens.
- ``set_disabled(store, address, disabled)``: a disabled account logs in nowhere (mail
  protocols, web, API tokens) but still receives mail; disabling also ends its web
  sessions (bumps the epoch).
- ``set_totp_secret(store, address, secret | None)``: the base32 RFC 6238 secret, stored
  as given (the web checks codes; None turns the second factor off).
- ``change_password(store, address, password)``: hashes (argon2id, in a thread), stores,
  and bumps the epoch so that other web sessions end. App passwords stay valid: they are
  revoked one by one.
- ``log_out_everywhere(store, address)``: bumps the epoch only.

The session epoch is a counter a web session cookie carries; a session whose epoch is
not the account's current one is refused (docs/web-dev.md). Nothing else is kept per
session on the server.
"""

from __future__ import annotations

import asyncio

from ..auth.passwords import hash_password
from ..storage.api import Store
from ..storage.models import Account


async def get(store: Store, address: str) -> Account | None:
    return await store.get_account(address)


async def set_admin(store: Store, address: str, admin: bool) -> Account:
    return await store.set_account_attributes(address, admin=admin, bump_epoch=not admin)


async def set_disabled(store: Store, address: str, disabled: bool) -> Account:
    return await store.set_account_attributes(address, disabled=disabled, bump_epoch=disabled)


async def set_totp_secret(store: Store, address: str, secret: str | None) -> Account:
    return await store.set_account_attributes(address, totp_secret=secret)


async def change_password(store: Store, address: str, password: str) -> Account:
    hashed = await asyncio.to_thread(hash_password, password)
    await store.set_password_hash(address, hashed)
    return await store.set_account_attributes(address, bump_epoch=True)


async def log_out_everywhere(store: Store, address: str) -> Account:
    return await store.set_account_attributes(address, bump_epoch=True)
