"""``[smtp] milters``: the milters every SMTP message is shown to, in order (docs/abuse.md).

Each entry is a socket string as Postfix writes it (``"inet:127.0.0.1:8891"``,
``"unix:/run/opendkim/opendkim.sock"``) or a table with ``socket`` and the per-milter
settings below. The defaults are Postfix's (milter_default_action and milter_*_timeout).
"""

from __future__ import annotations

from dataclasses import dataclass

from ...config import Section, parse_duration

ACTIONS = ("tempfail", "accept", "reject")


@dataclass(frozen=True, slots=True)
class MilterSpec:
    socket: str  # as configured, for logs
    unix_path: str | None  # "unix:PATH"
    host: str  # "inet:HOST:PORT" ("" for a unix socket)
    port: int
    default_action: str = "tempfail"  # what a milter that is down, slow or broken gives
    connect_timeout: float = 30.0  # connecting and option negotiation
    command_timeout: float = 30.0  # one reply to CONNECT, HELO, MAIL, RCPT, DATA, a header, EOH
    content_timeout: float = 300.0  # one reply to a body chunk or end of message
    listeners: tuple[str, ...] = ()  # the SMTP listeners it applies to; empty: all

    @property
    def name(self) -> str:
        return self.socket


def parse_socket(value: str) -> tuple[str | None, str, int]:
    """``unix:/path`` → (path, "", 0); ``inet:host:port`` / ``inet:[v6]:port`` → (None, host, port)."""
    kind, sep, rest = value.partition(":")
    if not sep:
        raise ValueError(f"{value!r}: expected unix:/path or inet:host:port")
    if kind == "unix":
        if not rest.startswith("/"):
            raise ValueError(f"{value!r}: a unix socket needs an absolute path")
        return rest, "", 0
    if kind in ("inet", "inet6"):
        host, colon, port = rest.rpartition(":")
        host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
        if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"{value!r}: expected inet:host:port")
        return None, host, int(port)
    raise ValueError(f"{value!r}: expected unix:/path or inet:host:port")


def parse_milters(sec: Section, listeners: tuple[str, ...] | None = None) -> tuple[MilterSpec, ...]:
    """Read ``milters`` from the ``[smtp]`` section; problems go to the section's list."""
    entries = sec.get("milters", list, [])
    out = []
    for i, entry in enumerate(entries):
        key = f"milters[{i}]"
        if isinstance(entry, str):
            entry = {"socket": entry}
        if not isinstance(entry, dict):
            sec.problem(key, f"expected a socket string or a table, got {entry!r}")
            continue
        sub = Section(entry, sec.key(key), sec.problems)
        d = MilterSpec("", None, "", 0)
        socket = sub.get("socket", str, "")
        action = sub.choice("default_action", ACTIONS, d.default_action)
        timeouts = [sub.convert(n, parse_duration, getattr(d, n))
                    for n in ("connect_timeout", "command_timeout", "content_timeout")]
        names = sub.strings("listeners")
        sub.finish()
        if not socket:
            sub.problem("socket", "missing (unix:/path or inet:host:port)")
            continue
        try:
            path, host, port = parse_socket(socket)
        except ValueError as exc:
            sub.problem("socket", str(exc))
            continue
        for n, t in zip(("connect_timeout", "command_timeout", "content_timeout"), timeouts):
            if t <= 0:
                sub.problem(n, "must be more than 0")
        if listeners is not None:
            for n in names:
                if n not in listeners:
                    sub.problem("listeners", f"{n!r} is not an SMTP listener")
        out.append(MilterSpec(socket, path, host, port, action, connect_timeout=timeouts[0],
                              command_timeout=timeouts[1], content_timeout=timeouts[2], listeners=names))
    return tuple(out)
