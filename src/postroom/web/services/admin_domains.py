"""Served domains for ``/admin/domains`` and ``/api/v1/admin/domains``.

The rules are ``postroom domain``'s: a domain listed in the config file cannot be deleted
here (the next start would add it back), nor one that still has accounts (their mail
would become unreachable); the admin deletes those accounts first.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from ...news.account import is_reserved
from ..errors import Conflict, NotFound
from ..site import ctx_of
from .admin_common import domain_name


@dataclass(frozen=True, slots=True)
class DomainRow:
    name: str
    accounts: int
    aliases: int
    in_config: bool  # listed in the config file: managed there, not here

    def as_json(self) -> dict[str, object]:
        return {"name": self.name, "accounts": self.accounts, "aliases": self.aliases,
                "in_config": self.in_config}


async def list_all(request: web.Request) -> list[DomainRow]:
    ctx = ctx_of(request)
    names = set(await ctx.store.list_domains()) | set(ctx.config.domains)
    accounts = [a.address for a in await ctx.store.list_accounts() if not is_reserved(a.address)]
    aliases = [a.source for a in await ctx.store.list_aliases()]
    return [DomainRow(n, sum(1 for a in accounts if a.endswith("@" + n)),
                      sum(1 for a in aliases if a.endswith("@" + n)), n in ctx.config.domains)
            for n in sorted(names)]


async def add(request: web.Request, name: str) -> DomainRow:
    store = ctx_of(request).store
    domain = domain_name(name)
    if await store.has_domain(domain):
        raise Conflict(f"{domain} is already served here", "name")
    await store.add_domain(domain)
    return DomainRow(domain, 0, 0, domain in ctx_of(request).config.domains)


async def delete(request: web.Request, name: str) -> None:
    ctx = ctx_of(request)
    domain = domain_name(name)
    if not await ctx.store.has_domain(domain) and domain not in ctx.config.domains:
        raise NotFound(f"{domain} is not served here", "name")
    if domain in ctx.config.domains:
        raise Conflict(f"{domain} is listed in the configuration file (domains = …); remove it there", "name")
    users = [a.address for a in await ctx.store.list_accounts() if a.address.endswith("@" + domain)]
    if users:
        raise Conflict(f"{domain} still has {len(users)} account(s) ({', '.join(users[:3])}"
                       f"{', …' if len(users) > 3 else ''}); delete them first", "name")
    await ctx.store.delete_domain(domain)
