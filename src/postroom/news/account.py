"""The reserved internal account whose mailboxes are the newsgroups.

``news@news.invalid`` (RFC 2606 §2: ``.invalid`` can never be a real domain). Why it is
invisible where it must be:

- no row in ``domains``: the domain is added only for the moment the account is created
  and removed in the next call, so ``domain list`` never shows it and SMTP never treats
  ``news.invalid`` as local (its recipient lookup asks ``is_local_domain`` first), so no
  mail can be delivered to it;
- its password hash is ``!``, which no scheme verifies (auth.passwords.verify_password
  answers False for an unknown scheme): IMAP, POP3, ManageSieve and SMTP AUTH logins fail;
- ``user list`` skips it (:func:`is_reserved`), and so should any listing of accounts.

Created on first need (the first ``group add``), never at server start: an installation
without groups has no trace of it.
"""

from __future__ import annotations

from typing import Any

from ..errors import AccountExists, DomainNotFound

NEWS_DOMAIN = "news.invalid"
NEWS_ACCOUNT = "news@" + NEWS_DOMAIN
LOCKED_HASH = "!"  # never verifies


def is_reserved(address: str) -> bool:
    """Whether ``address`` is (in) the news layer's reserved domain."""
    return address.strip().lower().rpartition("@")[2] == NEWS_DOMAIN


async def news_account_id(store: Any, *, create: bool) -> int | None:
    """The reserved account's id; created when missing and ``create`` (else None)."""
    acct = await store.get_account(NEWS_ACCOUNT)
    if acct is not None:
        return int(acct.id)
    if not create:
        return None
    added_domain = False
    try:
        if not await store.has_domain(NEWS_DOMAIN):
            await store.add_domain(NEWS_DOMAIN)
            added_domain = True
        try:
            acct = await store.create_account(NEWS_ACCOUNT, LOCKED_HASH)
        except AccountExists:  # another process created it meanwhile
            acct = await store.get_account(NEWS_ACCOUNT)
    finally:
        if added_domain:
            try:
                await store.delete_domain(NEWS_DOMAIN)
            except DomainNotFound:
                pass
    assert acct is not None
    return int(acct.id)
