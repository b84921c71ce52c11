"""App passwords: one random password per device or mail client, revocable on its own.

Functions (all async, ``store`` first):

- ``create(store, account, name) -> (Credential, password)``: the password is returned
  once and never stored (only its SHA-256). Raises ValueError (bad name),
  CredentialExists (the account has one of that name), AccountNotFound.
- ``list_for(store, account) -> list[Credential]``: name, created, last used; never
  a secret.
- ``revoke(store, account, name) -> bool``: refused from the next login on, on every
  node (each login looks the password up in the store; nothing is cached).
- ``AppPasswordChecker(store).check(account, password) -> Credential | None``: what
  :class:`~postroom.auth.authenticator.Authenticator` asks after the account password did
  not match.

An app password works wherever the account password does for mail (IMAP, POP3, SMTP
AUTH, ManageSieve, NNTP) but not for the web login: a password kept on a phone must not
be enough to manage the account (the web passes ``app_passwords=False``).
"""

from __future__ import annotations

from ..storage.api import Store
from ..storage.models import Account, Credential
from .credentials import (
    UseRecorder,
    check_name,
    digest,
    new_app_password,
    normalize_app_password,
)

KIND = "app"


async def create(store: Store, account: Account, name: str) -> tuple[Credential, str]:
    password = new_app_password()
    raw = normalize_app_password(password)
    assert raw is not None
    cred = await store.add_credential(account.id, KIND, check_name(name), digest(raw))
    return cred, password


async def list_for(store: Store, account: Account) -> list[Credential]:
    return await store.list_credentials(account.id, KIND)


async def revoke(store: Store, account: Account, name: str) -> bool:
    return await store.delete_credential(account.id, KIND, name.strip())


class AppPasswordChecker:
    """Checks offered passwords against an account's app passwords: text that cannot be
    an app password costs nothing; one that can costs a SHA-256 and one index probe."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.uses = UseRecorder()

    async def check(self, account: Account, password: str) -> Credential | None:
        raw = normalize_app_password(password)
        if raw is None:
            return None
        cred = await self.store.find_credential(KIND, digest(raw))
        if cred is None or cred.account_id != account.id:
            return None
        when = self.uses.due(cred.id, cred.last_used)
        if when is not None:
            await self.store.touch_credential(cred.id, when)
        return cred
