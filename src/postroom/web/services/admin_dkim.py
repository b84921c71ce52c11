"""DKIM keys and the DNS records of a domain, for ``/admin/dkim`` and ``/api/v1/admin/dkim``.

Keys are made, activated and retired by :mod:`postroom.mailauth.keys` (what ``postroom
dkim`` calls), in a thread since RSA generation and the key files' fsyncs block. The
records to publish are ``postroom dns records``' plan (:func:`dnsrecords.wanted`) and the
live check is ``postroom dns check``'s (:func:`dnsrecords.check`) through the ``[dns]``
resolver, so the page, the API and the CLI can never disagree.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from ...mailauth import dnsrecords, keys
from ..errors import Conflict, Invalid, NotFound
from ..site import ctx_of
from .admin_common import clean_text, domain_name

_SELECTOR = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
RSA_BITS = 2048  # RFC 8301 §3.2's floor; larger keys do not fit every DNS host's TXT records


@dataclass(frozen=True, slots=True)
class KeyRow:
    selector: str
    algorithm: str
    state: str
    created: float
    record_name: str
    record: str  # the TXT text

    def as_json(self) -> dict[str, Any]:
        return {"selector": self.selector, "algorithm": self.algorithm, "state": self.state,
                "created": self.created, "record_name": self.record_name, "record": self.record}


def _row(k: keys.DkimKey) -> KeyRow:
    return KeyRow(k.selector, k.algorithm, k.state, k.created, k.record_name, k.txt_record())


async def served(request: web.Request, value: str) -> str:
    domain = domain_name(value, "domain")
    ctx = ctx_of(request)
    if domain not in ctx.config.domains and not await ctx.store.has_domain(domain):
        raise NotFound(f"{domain} is not served here", "domain")
    return domain


def selector(value: str) -> str:
    sel = clean_text(value, "selector", 64).lower()
    if not _SELECTOR.match(sel):
        raise Invalid("a selector is letters, digits and '-', up to 63", "selector")
    return sel


async def list_keys(request: web.Request, domain_value: str) -> list[KeyRow]:
    domain = await served(request, domain_value)
    data_dir = ctx_of(request).config.data_dir
    return [_row(k) for k in await asyncio.to_thread(keys.list_keys, data_dir, domain)]


async def keygen(request: web.Request, domain_value: str, algorithm: str, selector_value: str = "") -> KeyRow:
    domain = await served(request, domain_value)
    if algorithm not in keys.ALGORITHMS:
        raise Invalid("the algorithm is rsa or ed25519", "algorithm")
    sel = selector(selector_value) if selector_value.strip() else None
    try:
        key = await asyncio.to_thread(keys.keygen, ctx_of(request).config.data_dir, domain, sel, algorithm,
                                      RSA_BITS)
    except keys.DkimKeyError as exc:
        raise Conflict(str(exc), "selector") from None
    return _row(key)


async def change(request: web.Request, domain_value: str, selector_value: str, action: str) -> list[KeyRow]:
    """activate (the key of the same algorithm that was active is retired) or retire."""
    domain = await served(request, domain_value)
    sel = selector(selector_value)
    data_dir = ctx_of(request).config.data_dir
    if action not in ("activate", "retire"):
        raise Invalid("the action is activate or retire", "action")
    try:
        if action == "activate":
            await asyncio.to_thread(keys.activate, data_dir, domain, sel)
        else:
            await asyncio.to_thread(keys.retire, data_dir, domain, sel)
    except keys.DkimKeyError as exc:
        raise NotFound(str(exc), "selector") from None
    return await list_keys(request, domain)


@dataclass(frozen=True, slots=True)
class RecordRow:
    kind: str
    name: str
    rdtype: str
    value: str
    comment: str
    status: str  # ok | missing | different | temporary failure | "" (not checked)
    detail: str
    warning: str

    def as_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "type": self.rdtype, "value": self.value,
                "comment": self.comment, "status": self.status, "detail": self.detail, "warning": self.warning}


async def records(request: web.Request, domain_value: str, live: bool = True) -> tuple[list[RecordRow], list[str]]:
    """The records to publish and, with ``live``, what DNS answers for each now; and notes."""
    from ...resolver import shared

    domain = await served(request, domain_value)
    cfg = ctx_of(request).config
    plan = dnsrecords.wanted(cfg, domain, await asyncio.to_thread(keys.list_keys, cfg.data_dir, domain))
    wanted = [r for r in plan.records if r.publish]
    if not live:
        return [RecordRow(r.kind, r.name, r.rdtype, r.value, r.comment, "", "", "") for r in wanted], []
    findings, notes = await dnsrecords.check(shared(cfg), plan)
    return [RecordRow(f.record.kind, f.record.name, f.record.rdtype, f.record.value, f.record.comment, f.status,
                      f.detail, f.warning) for f in findings], notes
