"""Sieve extensions. Each module registers its commands, tests, tags, match types and
comparators in :data:`postroom.sieve.registry.REGISTRY` when imported; add a new module
to :data:`MODULES` to enable it (docs/sieve.md, "Adding an extension")."""

from __future__ import annotations

import importlib

__all__ = ["MODULES", "load"]

MODULES: tuple[str, ...] = (
    "fileinto", "reject", "imap4flags", "variables", "relational", "numeric", "subaddress",
    "ihave", "environment", "date", "body", "vacation", "encoded_character",
    "spamtest", "mailbox", "special_use", "regex", "editheader", "duplicate", "enotify", "fcc", "include", "mime",
)

_loaded = False


def load() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for name in MODULES:
        importlib.import_module(f"{__name__}.{name}")
