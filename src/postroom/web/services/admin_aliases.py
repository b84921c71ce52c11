"""Aliases (and catch-alls) for ``/admin/aliases`` and ``/api/v1/admin/aliases``.

A source is ``local@domain`` or ``@domain`` (catch-all) in a served domain; targets are
addresses, one per line in the form. The rules are ``postroom alias``'s; a source that
is also an account is refused, because the account would never see its mail.

A list address may be bound to newsgroups (``postroom group set NAME --list ADDRESS``,
postroom/news/lists.py): its mail is also posted there. The rows say so, from the news
layer's group table (the same one its mail gateway reads).
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from ..errors import Conflict, Invalid, NotFound
from ..site import ctx_of
from .admin_common import address, clean_text, domain_name

MAX_TARGETS = 1000


@dataclass(frozen=True, slots=True)
class AliasRow:
    source: str
    targets: tuple[str, ...]
    newsgroups: tuple[str, ...] = ()  # groups bound to this address as a mailing list

    def as_json(self) -> dict[str, object]:
        return {"source": self.source, "targets": list(self.targets), "newsgroups": list(self.newsgroups)}


def source_of(value: str) -> str:
    text = clean_text(value, "source", 330).lower()
    if text.startswith("@"):
        return "@" + domain_name(text[1:], "source")
    return address(text, "source")


def targets_of(value: str | list[str]) -> list[str]:
    lines = value.splitlines() if isinstance(value, str) else list(value)
    if len(lines) > MAX_TARGETS:
        raise Invalid(f"at most {MAX_TARGETS} targets", "targets")
    found: list[str] = []
    for line in lines:
        if isinstance(value, str) and not line.strip():
            continue
        t = address(line, "targets")
        if t not in found:
            found.append(t)
    if not found:
        raise Invalid("give at least one target address", "targets")
    return found


async def bound_lists(request: web.Request) -> dict[str, tuple[str, ...]]:
    """List address → the newsgroups bound to it (empty outside a running server)."""
    ctx = ctx_of(request)
    if "runtime" not in ctx.state:  # News.for_context is the server's; the CLI has its own
        return {}
    from ...news.service import News

    bound: dict[str, list[str]] = {}
    for group in await (await News.for_context(ctx)).list_groups():
        if group.list_address:
            bound.setdefault(group.list_address.lower(), []).append(group.name)
    return {address: tuple(sorted(names)) for address, names in bound.items()}


async def list_all(request: web.Request) -> list[AliasRow]:
    bound = await bound_lists(request)
    return [AliasRow(a.source, tuple(a.targets), bound.get(a.source, ()))
            for a in sorted(await ctx_of(request).store.list_aliases(), key=lambda a: a.source)]


async def get(request: web.Request, value: str) -> AliasRow:
    source = source_of(value)
    found = await ctx_of(request).store.get_alias(source)
    if found is None:
        raise NotFound(f"no alias {source}", "source")
    return AliasRow(found.source, tuple(found.targets), (await bound_lists(request)).get(found.source, ()))


async def put(request: web.Request, source_value: str, targets_value: str | list[str],
              create: bool) -> AliasRow:
    """Add (``create``: refused if it exists) or replace an alias."""
    store = ctx_of(request).store
    source = source_of(source_value)
    targets = targets_of(targets_value)
    domain = source.rpartition("@")[2]
    if not await store.has_domain(domain):
        raise Invalid(f"{domain} is not served here", "source")
    if source in targets:
        raise Invalid("an alias cannot point to itself", "targets")
    if not source.startswith("@") and await store.get_account(source) is not None:
        raise Conflict(f"{source} is an account; an alias of the same name would hide its mail", "source")
    existing = await store.get_alias(source)
    if create and existing is not None:
        raise Conflict(f"{source} already exists; edit it instead", "source")
    if not create and existing is None:
        raise NotFound(f"no alias {source}", "source")
    await store.set_alias(source, targets)
    return AliasRow(source, tuple(targets), (await bound_lists(request)).get(source, ()))


async def delete(request: web.Request, value: str) -> None:
    row = await get(request, value)
    await ctx_of(request).store.delete_alias(row.source)
