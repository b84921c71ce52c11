"""``postroom ratelimit list|clear``: who is near or over a rate limit, and forgiving them.

Reads the counters the running server keeps (:mod:`postroom.abuse.counters`), so it
works while the server runs, on any node of a PostgreSQL installation. The server
writes its counts every second and reads them back as often: what ``list`` shows, and
what ``clear`` forgives, reaches it within a second or two.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from ..config import Config
from ..errors import UsageError
from .counters import FILE_NAME, Row, SharedStore, open_store
from .limits import DEFAULTS, RateSettings, parse


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("ratelimit", help="SMTP rate limits: who is near or over one; clear counters")
    ps = p.add_subparsers(dest="ratelimit_cmd", metavar="COMMAND", required=True)
    ls = ps.add_parser("list", help="keys near (past tarpit_from) or over their limit, with counts and window")
    ls.add_argument("--all", action="store_true", help="every key counted in its window, however low")
    cl = ps.add_parser("clear", help="forget a key's counts (KEY: an IP, network, user or domain, or a "
                                     "whole key such as user:remote_recipients:joe@example.org)")
    cl.add_argument("key", nargs="?")
    cl.add_argument("--all", action="store_true", help="forget every counter")
    p.set_defaults(run=cmd_ratelimit)


def _limit_of(key: str, s: RateSettings) -> int:
    scope, _, rest = key.partition(":")
    event = rest.partition(":")[0]
    name = f"{scope}_{event}"
    return s.limit(name).count if name in DEFAULTS else 0


def _window(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def format_rows(rows: list[Row], s: RateSettings, everything: bool) -> list[str]:
    out = []
    for row in rows:
        limit = _limit_of(row.key, s)
        if limit and row.count >= limit:
            state = "OVER"
        elif limit and row.count >= limit * s.tarpit_from:
            state = "near (slowed)" if not row.key.startswith("user:") else "near"
        elif everything:
            state = "ok"
        else:
            continue
        shown = f"{row.count}/{limit}" if limit else f"{row.count}/-"
        out.append(f"{row.key}  {shown} per {_window(row.window)}  {state}")
    return out


async def _run(cfg: Config, args: argparse.Namespace) -> int:
    s = parse(cfg, [])
    if cfg.backend != "postgresql" and not (cfg.data_dir / FILE_NAME).exists():
        counters: SharedStore | None = None  # nothing counted yet: do not create the file
    else:
        counters = open_store(cfg)
        await counters.open()
    try:
        if args.ratelimit_cmd == "list":
            lines = format_rows(await counters.rows(), s, args.all) if counters else []
            for line in lines:
                print(line)
            if not lines:
                print("no client or user is near a limit" if not args.all else "nothing counted")
            return 0
        if bool(args.key) == bool(args.all):
            raise UsageError("ratelimit clear: give a KEY or --all")
        n = await counters.clear(None if args.all else args.key) if counters else 0
        print(f"cleared {n} key(s)")
        return 0
    finally:
        if counters is not None:
            await counters.close()


def cmd_ratelimit(cfg: Config, args: argparse.Namespace) -> int:
    return asyncio.run(_run(cfg, args))


__all__ = ["cmd_ratelimit", "format_rows", "register"]
