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
- ``claim_totp_step(store, account_id, secret, step) -> bool``: counts the TOTP code of
  time step ``step`` as used; False when a code of that or a later step was accepted
  before (a replay, RFC 6238 §5.2) or the secret changed meanwhile.
- ``enable_totp(store, account_id, secret, step) -> bool``: turns the second factor on,
  the confirming code's step counted as used, and ends the web sessions (bumps the
  epoch: one opened with a stolen password must not outlive it); False when it is on
  already.
- ``end_web_session(store, account_id, digest, expires)``: one web session logged out
  (``digest``: the SHA-256 of its cookie's nonce), refused on every node until ``expires``;
  ``web_session_ended(store, digest) -> bool`` asks.
- ``change_password(store, address, password)``: hashes (argon2id, in a thread), stores,
  and bumps the epoch so that other web sessions end. App passwords stay valid: they are
  revoked one by one.
- ``log_out_everywhere(store, address)``: bumps the epoch only.

The session epoch is a counter a web session cookie carries; a session whose epoch is
not the account's current one is refused (docs/web-dev.md). The only other thing kept
per session on the server is the list of sessions logged out one by one.
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


async def claim_totp_step(store: Store, account_id: int, secret: str, step: int) -> bool:
    return await store.claim_totp_step(account_id, secret, step)


async def enable_totp(store: Store, account_id: int, secret: str, step: int) -> bool:
    return await store.enable_totp(account_id, secret, step)


async def end_web_session(store: Store, account_id: int, digest: bytes, expires: float) -> None:
    await store.end_web_session(account_id, digest, expires)


async def web_session_ended(store: Store, digest: bytes) -> bool:
    return await store.web_session_ended(digest)


async def change_password(store: Store, address: str, password: str) -> Account:
    hashed = await asyncio.to_thread(hash_password, password)
    await store.set_password_hash(address, hashed)
    return await store.set_account_attributes(address, bump_epoch=True)


async def log_out_everywhere(store: Store, address: str) -> Account:
    return await store.set_account_attributes(address, bump_epoch=True)
