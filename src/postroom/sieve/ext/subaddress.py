"""RFC 5233 subaddress: ``:user`` and ``:detail`` address parts, "+" as the separator.

An address without the separator has no detail: ``:detail`` does not match it at all
(§4), while ``user+`` has an empty detail."""

from __future__ import annotations

from ..registry import REGISTRY, AddressPart

SEPARATOR = "+"


def _user(local: str, domain: str | None) -> str | None:
    return local.split(SEPARATOR, 1)[0]


def _detail(local: str, domain: str | None) -> str | None:
    if SEPARATOR not in local:
        return None
    return local.split(SEPARATOR, 1)[1]


REGISTRY.extension("subaddress")
REGISTRY.address_parts["user"] = AddressPart("user", _user, extension="subaddress")
REGISTRY.address_parts["detail"] = AddressPart("detail", _detail, extension="subaddress")
