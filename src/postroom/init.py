"""``postroom init``: a working server directory in one command.

Writes ``postroom.toml`` with one listener per available protocol on its standard
port plus the offset (so a non-root user can use e.g. ``--port-offset 10000``),
creates the store with the domain, and a self-signed certificate.
"""

from __future__ import annotations

import asyncio
import ipaddress
from pathlib import Path

from . import protocols
from .config import STANDARD_LISTENERS, load
from .errors import UsageError
from .net.tls import write_self_signed
from .storage import open_store


def render_config(domain: str, hostname: str, listen: str, offset: int, available: set[str]) -> str:
    host = f"[{listen}]" if ":" in listen else listen
    lines = [
        "# Postroom configuration, written by `postroom init`.",
        "# Reference: docs/configuration.md. Validate changes with `postroom -c THIS check`.",
        f'hostname = "{hostname}"',
        f'domains = ["{domain}"]',
        "workers = 1",
        'log_level = "info"',
        "",
        "[storage]",
        'backend = "sqlite"',
        'path = "data"            # relative to this file',
        "",
        "[tls]",
        'cert = "tls/cert.pem"    # self-signed by init; replace with your own and send SIGHUP',
        'key = "tls/key.pem"',
        "",
        "[limits]",
        'message_size = "35M"',
        "connections = 1000",
        "connections_per_ip = 20",
        'idle_timeout = "5m"       # before login',
        'auth_idle_timeout = "30m" # after login',
        'login_timeout = "3m"      # IMAP, POP3: log in within this long of connecting',
        "",
    ]
    for name, (protocol, port, tls) in STANDARD_LISTENERS.items():
        if protocol not in available:
            continue
        lines += [f"[listeners.{name}]", f'address = "{host}:{port + offset}"', f'tls = "{tls}"', ""]
    return "\n".join(lines)


def init(directory: Path, domain: str, offset: int = 0, hostname: str | None = None,
         listen: str = "127.0.0.1", force: bool = False) -> Path:
    domain = domain.strip().lower().rstrip(".")
    if not domain or "@" in domain or " " in domain or "." not in domain:
        raise UsageError(f"--domain {domain!r} is not a domain name like example.org")
    if not 0 <= offset <= 65535 - 4190:
        raise UsageError("--port-offset must be between 0 and 61345")
    try:
        ipaddress.ip_address(listen)
    except ValueError:
        raise UsageError(f"--listen {listen!r} is not an IP address") from None
    hostname = hostname or f"mail.{domain}"
    directory = directory.resolve()
    cfg_path = directory / "postroom.toml"
    if cfg_path.exists() and not force:
        raise UsageError(f"{cfg_path} already exists (use --force to overwrite)")
    directory.mkdir(parents=True, exist_ok=True)
    cfg_path.write_text(render_config(domain, hostname, listen, offset, protocols.available()))
    cfg = load(cfg_path)
    if not (cfg.tls_cert.exists() and cfg.tls_key.exists()) or force:
        write_self_signed(cfg.tls_cert, cfg.tls_key, hostname)

    async def make_store() -> None:
        store = open_store(cfg)
        await store.open()
        try:
            await store.add_domain(domain)
        finally:
            await store.close()

    asyncio.run(make_store())
    print(f"created {cfg_path}")
    for lst in cfg.listeners:
        print(f"  {lst.name:<12} {lst.host}:{lst.port} ({lst.tls})")
    return cfg_path
