"""Which protocol engines this build has, found by module name.

A protocol module (``postroom.smtp.server`` …) provides:

- ``async def handle(ctx: ServerContext, conn: Connection, listener: Listener) -> None`` —
  serve one accepted connection until it ends (the runtime closes the socket afterwards;
  with ``listener.tls == "implicit"`` the handshake is already done);
- optionally ``def check_settings(cfg: Config, problems: list[str]) -> None`` —
  validate its own config section for ``postroom check`` and ``serve``;
- optionally ``async def start_services(ctx) -> None`` and ``async def stop_services(ctx)``
  for background work (the outbound queue runner …), started once per worker process.

A protocol whose module is not present is simply not available, so each protocol
lands with its own issue without touching the runtime.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Callable

PROTOCOL_MODULES: dict[str, str] = {
    "smtp": "postroom.smtp.server",
    "submission": "postroom.smtp.server",
    "pop3": "postroom.pop3.server",
    "imap": "postroom.imap.server",
    "managesieve": "postroom.managesieve.server",
    "nntp": "postroom.nntp.server",
    "http": "postroom.http.server",
}

# Modules with background services or config sections that are not listeners.
SERVICE_MODULES: tuple[str, ...] = ("postroom.outbound.service", "postroom.resolver", "postroom.mailauth.settings",
                                     "postroom.sieve.settings", "postroom.auth.kerberos",
                                     "postroom.abuse.clamav", "postroom.abuse.attachments",
                                     "postroom.abuse.screen_settings",
                                     "postroom.abuse.limits", "postroom.abuse.rspamd", "postroom.web.settings")


def _import(name: str) -> ModuleType | None:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name and (name == exc.name or name.startswith(exc.name + ".")):
            return None  # the module itself is absent: protocol not in this build
        raise


def module_for(protocol: str) -> ModuleType | None:
    name = PROTOCOL_MODULES.get(protocol)
    return _import(name) if name else None


def available() -> set[str]:
    return {p for p in PROTOCOL_MODULES if module_for(p) is not None}


def service_modules() -> list[ModuleType]:
    mods = [m for m in (_import(n) for n in SERVICE_MODULES) if m is not None]
    seen: set[str] = set()
    for p in sorted(available()):
        mod = module_for(p)
        if mod is not None and mod.__name__ not in seen:
            seen.add(mod.__name__)
            mods.append(mod)
    return mods


def settings_parsers() -> list[Callable[..., None]]:
    return [m.check_settings for m in service_modules() if hasattr(m, "check_settings")]
