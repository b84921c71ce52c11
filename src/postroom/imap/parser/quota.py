"""Arguments of the QUOTA commands (RFC 9208 §4.1, formal syntax §7)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import ParseError
from .args import mailbox_name
from .base import Reader

_NUMBER64 = re.compile(rb"\d{1,19}")  # number64 (RFC 9051 §9): up to 2^63 - 1


def getquotaroot(r: Reader) -> str:
    """getquotaroot = "GETQUOTAROOT" SP mailbox"""
    r.sp()
    name = mailbox_name(r.astring())
    r.end()
    return name


def quota_root(r: Reader) -> str:
    """getquota = "GETQUOTA" SP quota-root-name; quota-root-name = astring"""
    r.sp()
    root = r.astring().decode("utf-8", "replace")
    r.end()
    return root


@dataclass(frozen=True, slots=True)
class SetQuotaArgs:
    root: str
    limits: tuple[tuple[str, int], ...]  # (resource name upper-cased, limit)


def setquota(r: Reader) -> SetQuotaArgs:
    """setquota = "SETQUOTA" SP quota-root-name SP setquota-list
    setquota-list = "(" [setquota-resource *(SP setquota-resource)] ")"
    setquota-resource = resource-name SP resource-limit"""
    r.sp()
    root = r.astring().decode("utf-8", "replace")
    r.sp()

    def item() -> tuple[str, int]:
        name = r.keyword()
        r.sp()
        m = _NUMBER64.match(r.buf, r.pos)
        if m is None or int(m.group()) >= 2**63:
            raise ParseError("Expected a resource limit")
        r.pos = m.end()
        return name, int(m.group())

    limits = r.paren_list(item)
    r.end()
    return SetQuotaArgs(root, tuple(limits))
