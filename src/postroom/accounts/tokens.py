"""API tokens: how an admin's scripts call the JSON API (``Authorization: Bearer prt_...``).

Functions (all async, ``store`` first):

- ``create(store, account, name) -> (Credential, token)``: only for an admin account
  (NotAdmin otherwise); the token is returned once, only its SHA-256 is stored. Raises
  ValueError (bad name), CredentialExists, AccountNotFound.
- ``list_for(store, account) -> list[Credential]``.
- ``revoke(store, account, name) -> bool``.
- ``resolve(store, token) -> Account | None``: the account a bearer token acts as, or
  None when the token is unknown or revoked, or its account is disabled or no longer an
  admin (taking the flag away disarms the tokens without deleting them). Records the use.

Tokens need no CSRF token (a browser never sends them by itself) and no TOTP step: they
are made by an admin already past both.
"""

from __future__ import annotations

from ..errors import StoreError
from ..storage.api import Store
from ..storage.models import Account, Credential
from .credentials import UseRecorder, check_name, digest, is_api_token, new_api_token

KIND = "token"

_uses = UseRecorder()


class NotAdmin(StoreError):
    """API tokens are for admin accounts only."""


async def create(store: Store, account: Account, name: str) -> tuple[Credential, str]:
    if not account.admin:
        raise NotAdmin(account.address)
    token = new_api_token()
    cred = await store.add_credential(account.id, KIND, check_name(name), digest(token))
    return cred, token


async def list_for(store: Store, account: Account) -> list[Credential]:
    return await store.list_credentials(account.id, KIND)


async def revoke(store: Store, account: Account, name: str) -> bool:
    return await store.delete_credential(account.id, KIND, name.strip())


async def resolve(store: Store, token: str) -> Account | None:
    if not is_api_token(token):
        return None
    cred = await store.find_credential(KIND, digest(token))
    if cred is None:
        return None
    account = await store.get_account_by_id(cred.account_id)
    if account is None or account.disabled or not account.admin:
        return None
    when = _uses.due(cred.id, cred.last_used)
    if when is not None:
        await store.touch_credential(cred.id, when)
    return account
