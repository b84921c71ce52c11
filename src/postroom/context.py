"""What a protocol handler gets besides its connection: config, store, TLS, auth, queue."""

from __future__ import annotations

import asyncio
import logging
import ssl
from dataclasses import dataclass, field
from typing import Any

from .auth import Authenticator
from .config import Config, Listener
from .outbound.api import OutboundQueue
from .storage.api import Store


@dataclass(slots=True)
class ServerContext:
    config: Config
    store: Store
    tls: ssl.SSLContext | None
    auth: Authenticator
    outbound: OutboundQueue | None = None
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("postroom"))
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    # Per-protocol parsed settings and shared state (e.g. "smtp" → SmtpSettings).
    state: dict[str, Any] = field(default_factory=dict)

    async def is_local_domain(self, domain: str) -> bool:
        d = domain.lower().rstrip(".")
        return d in self.config.domains or await self.store.has_domain(d)


@dataclass(slots=True)
class ConnectionInfo:
    """Per-connection facts the runtime knows before the protocol starts."""

    listener: Listener
    session_id: str
