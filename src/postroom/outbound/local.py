"""Is an address ours? And handing a notice (DSN) to a sender, local or remote.

:func:`local_accounts` is the one place that answers "local or remote" for outbound
code; SMTP and others may reuse it.
"""

from __future__ import annotations

import logging
from typing import Any

from .api import Envelope, Recipient

log = logging.getLogger("postroom.outbound")


async def local_accounts(ctx: Any, address: str) -> list[int] | None:
    """Account ids for ``address``; ``None`` if its domain is not local (deliver remotely);
    ``[]`` if the domain is local but nobody has that address.

    Exact accounts first, then an alias for the address, then the domain's catch-all
    (``@domain``); alias targets count only when they are local accounts themselves.
    """
    local, _, domain = address.rpartition("@")
    if not local or not domain:
        return None
    if not await ctx.is_local_domain(domain):
        return None
    addr = f"{local}@{domain.lower()}"
    for candidate in (addr, address.lower()):
        acct = await ctx.store.get_account(candidate)
        if acct is not None:
            return [acct.id]
    for source in (addr, f"@{domain.lower()}"):
        get_alias = getattr(ctx.store, "get_alias", None)
        alias = await get_alias(source) if get_alias else None
        if alias is not None:
            ids: list[int] = []
            for target in alias.targets:
                acct = await ctx.store.get_account(target.lower())
                if acct is not None and acct.id not in ids:
                    ids.append(acct.id)
            return ids
    return []


async def send_notice(ctx: Any, queue: Any, to: str, raw: bytes, body_8bit: bool = False) -> str:
    """Deliver a DSN to ``to``: into the store if local, else queued with the null sender.

    Returns a short description for the log. RFC 3461 §6.2 / RFC 5321 §4.5.5: the
    notice has the null reverse-path, so it can never cause a notice itself.
    """
    ids = await local_accounts(ctx, to)
    if ids is None:
        raw = await signed(ctx, raw)
        env = Envelope(sender="", recipients=(Recipient(to, notify=("NEVER",)),), body_8bit=body_8bit)
        qid = await queue.enqueue(env, raw)
        return f"queued as {qid}"
    if not ids:
        log.warning("notice for unknown local address %s dropped", to)
        return "dropped (no such local address)"
    # Local delivery runs the recipient's Sieve scripts, as for any other mail.
    from ..sieve.delivery import Incoming, LocalRecipient, deliver_local

    await deliver_local(ctx, Incoming(raw=raw, sender="", recipients=[LocalRecipient(i, "INBOX", to) for i in ids],
                                      crlf=False, body_8bit=body_8bit))
    return "delivered locally"


async def signed(ctx: Any, raw: bytes) -> bytes:
    """A notice Postroom wrote, DKIM-signed for its ``From:`` domain (the host name's) when
    that domain has an active key: receivers check bounces as they check any mail."""
    from ..mailauth.dnsbridge import run_blocking
    from ..mailauth.settings import settings_for
    from ..mailauth.signing import signature_for

    config = getattr(ctx, "config", None)
    if config is None or not hasattr(ctx, "state"):
        return raw
    settings = settings_for(ctx)
    if not settings.sign:
        return raw
    return await run_blocking(signature_for, config.data_dir, raw, settings.sign_headers) + raw
