"""Where a local address goes: aliases (and lists), accounts, ``user+tag@`` and catch-alls.

Lookup order for ``local@domain`` in a served domain (as Postfix's virtual maps):

1. an alias for exactly that address (its targets are resolved again, recursively,
   up to :data:`MAX_DEPTH` levels, with loop detection; targets outside the served
   domains become remote recipients);
2. an account with that address;
3. for ``base+tag@domain`` (RFC 5233 subaddress), steps 1-2 and the catch-all for
   ``base@domain`` — the tag is kept in nothing but the trace header;
4. the catch-all alias ``@domain``; a catch-all target ``@other.example`` keeps the
   local part (a domain alias).

Nothing found → None, and SMTP answers 550 5.1.1 at RCPT time.
"""

from __future__ import annotations

from typing import Awaitable, Callable

from ..storage.api import Store
from .transaction import Resolved

MAX_DEPTH = 8

IsLocal = Callable[[str], Awaitable[bool]]


def split(address: str) -> tuple[str, str]:
    local, _, domain = address.lower().rpartition("@")
    return local, domain


async def resolve(store: Store, is_local: IsLocal, address: str) -> Resolved | None:
    local_ids: dict[int, None] = {}
    remote: dict[str, None] = {}
    found = await _resolve(store, is_local, address.lower(), local_ids, remote, set(), 0)
    if not found or (not local_ids and not remote):
        return None
    return Resolved(tuple(local_ids), tuple(remote))


async def _resolve(store: Store, is_local: IsLocal, address: str, local_ids: dict[int, None],
                   remote: dict[str, None], seen: set[str], depth: int) -> bool:
    if address in seen or depth > MAX_DEPTH:
        return False  # a loop or a too-deep chain: treat that branch as undeliverable
    seen.add(address)
    local, domain = split(address)
    if await _expand_alias(store, is_local, address, local, local_ids, remote, seen, depth):
        return True
    account = await store.get_account(address)
    if account is not None:
        local_ids[account.id] = None
        return True
    if "+" in local:
        base = f"{local.split('+', 1)[0]}@{domain}"
        if base not in seen:
            return await _resolve(store, is_local, base, local_ids, remote, seen, depth + 1)
        return False
    return await _expand_alias(store, is_local, "@" + domain, local, local_ids, remote, seen, depth)


async def _expand_alias(store: Store, is_local: IsLocal, source: str, local: str,
                        local_ids: dict[int, None], remote: dict[str, None], seen: set[str],
                        depth: int) -> bool:
    alias = await store.get_alias(source)
    if alias is None:
        return False
    any_ok = False
    for target in alias.targets:
        t = target.strip().lower()
        if t.startswith("@"):
            t = local + t  # domain alias: same local part in the other domain
        if "@" not in t:
            continue
        if await is_local(split(t)[1]):
            if await _resolve(store, is_local, t, local_ids, remote, seen, depth + 1):
                any_ok = True
        else:
            remote[t] = None
            any_ok = True
    return any_ok


async def expand(store: Store, address: str) -> list[str] | None:
    """EXPN (RFC 5321 §3.5.2): an alias's members, or the mailbox itself."""
    address = address.lower()
    alias = await store.get_alias(address)
    if alias is not None:
        return list(alias.targets)
    if await store.get_account(address) is not None:
        return [address]
    return None
