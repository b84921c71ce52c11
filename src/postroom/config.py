"""The one TOML configuration file, validated into typed settings.

Validation collects every problem with the key it concerns instead of stopping at
the first, so that ``postroom check`` can report all of them at once. Sections owned
by one protocol (``[smtp]``, ``[imap]`` …) are read with the same :class:`Section`
reader by that protocol's own settings module; :func:`load` only keeps them raw.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, TypeVar
from urllib.parse import urlsplit

from .errors import ConfigError

T = TypeVar("T")

# Standard port of every protocol Postroom knows, with the TLS mode its listener uses
# by default (RFC 8314 for implicit TLS ports).
STANDARD_LISTENERS: dict[str, tuple[str, int, str]] = {
    # name: (protocol, standard port, tls mode)
    "smtp": ("smtp", 25, "starttls"),
    "submission": ("submission", 587, "starttls"),
    "submissions": ("submission", 465, "implicit"),
    "imap": ("imap", 143, "starttls"),
    "imaps": ("imap", 993, "implicit"),
    "pop3": ("pop3", 110, "starttls"),
    "pop3s": ("pop3", 995, "implicit"),
    "managesieve": ("managesieve", 4190, "starttls"),
    "nntp": ("nntp", 119, "starttls"),
    "nntps": ("nntp", 563, "implicit"),
    "http": ("http", 80, "none"),
    "https": ("http", 443, "implicit"),
}
TLS_MODES = ("none", "starttls", "implicit")

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, None: 1}
_SIZE = re.compile(r"^\s*(\d+)\s*([kKmMgG]?)[bB]?\s*$")
_SIZE_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def parse_duration(value: object) -> float:
    """Seconds from ``30``, ``"30s"``, ``"10m"``, ``"4h"``, ``"5d"``; ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 30s, 10m, 4h or 5d")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError("must not be negative")
        return float(value)
    if isinstance(value, str):
        m = _DURATION.match(value)
        if m:
            return float(m.group(1)) * _DURATION_UNITS[m.group(2)]
    raise ValueError(f"{value!r} is not a duration such as 30s, 10m, 4h or 5d")


def parse_size(value: object) -> int:
    """Bytes from ``1048576``, ``"10M"``, ``"512k"``; ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError("expected a size such as 10M")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("must not be negative")
        return value
    if isinstance(value, str):
        m = _SIZE.match(value)
        if m:
            return int(m.group(1)) * _SIZE_UNITS[m.group(2).lower()]
    raise ValueError(f"{value!r} is not a size such as 10M or 512k")


def parse_hostport(value: object, default_host: str = "127.0.0.1") -> tuple[str, int]:
    """``"127.0.0.1:25"``, ``"[::1]:25"`` or ``"25"`` → (host, port)."""
    if isinstance(value, int) and not isinstance(value, bool):
        host, port_s = default_host, str(value)
    elif isinstance(value, str):
        v = value.strip()
        if v.startswith("["):
            host, _, rest = v[1:].partition("]")
            port_s = rest.lstrip(":")
        elif v.count(":") == 1:
            host, port_s = v.split(":")
        elif v.isascii() and v.isdigit():
            host, port_s = default_host, v
        else:
            raise ValueError(f"{value!r} is not HOST:PORT")
    else:
        raise ValueError("expected a string HOST:PORT")
    if not (port_s.isascii() and port_s.isdigit()) or not 0 <= int(port_s) <= 65535:
        raise ValueError(f"{value!r} has no valid port (0-65535)")
    return host or default_host, int(port_s)


class Section:
    """Typed reads from one TOML table that record problems instead of raising.

    ``Section(data, "smtp", problems).get("max_recipients", int, 100)`` returns the
    value or the default, and appends ``"smtp.max_recipients: …"`` to ``problems``
    when the value is of the wrong type. Unknown keys are reported by :meth:`finish`
    because a misspelt key silently ignored is a misconfiguration nobody notices.
    """

    def __init__(self, data: object, path: str, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        self.seen: set[str] = set()
        if data is None:
            data = {}
        if not isinstance(data, dict):
            problems.append(f"{path}: must be a table")
            data = {}
        self.data: dict[str, Any] = data

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def problem(self, name: str, message: str) -> None:
        self.problems.append(f"{self.key(name)}: {message}")

    def get(self, name: str, kind: type[T] | tuple[type, ...], default: T) -> T:
        self.seen.add(name)
        if name not in self.data:
            return default
        value = self.data[name]
        ok = isinstance(value, kind) and not (isinstance(value, bool) and kind in (int, float))
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)  # type: ignore[return-value]
        if not ok:
            kname = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
            self.problem(name, f"expected {_TYPE_WORDS.get(kname, kname)}, got {value!r}")
            return default
        return value  # type: ignore[return-value]

    def convert(self, name: str, fn: Callable[[object], T], default: T) -> T:
        """Read with a parser such as :func:`parse_duration`; its ValueError becomes a problem."""
        self.seen.add(name)
        if name not in self.data:
            return default
        try:
            return fn(self.data[name])
        except ValueError as exc:
            self.problem(name, str(exc))
            return default

    def strings(self, name: str, default: Iterable[str] = ()) -> tuple[str, ...]:
        value = self.get(name, list, list(default))
        out = []
        for i, item in enumerate(value):
            if not isinstance(item, str):
                self.problem(f"{name}[{i}]", f"expected a string, got {item!r}")
            else:
                out.append(item)
        return tuple(out)

    def choice(self, name: str, choices: Iterable[str], default: str) -> str:
        choices = tuple(choices)
        value = self.get(name, str, default)
        if value not in choices:
            self.problem(name, f"must be one of {', '.join(choices)}, got {value!r}")
            return default
        return value

    def sub(self, name: str) -> "Section":
        self.seen.add(name)
        return Section(self.data.get(name), self.key(name), self.problems)

    def finish(self) -> None:
        for name in self.data:
            if name not in self.seen:
                self.problem(name, "unknown key")


_TYPE_WORDS = {"str": "a string", "int": "an integer", "bool": "true or false", "list": "a list",
               "dict": "a table", "float": "a number"}


@dataclass(frozen=True, slots=True)
class Listener:
    name: str
    protocol: str
    host: str
    port: int
    tls: str  # one of TLS_MODES


@dataclass(frozen=True, slots=True)
class Limits:
    message_size: int = 36 * 1024 * 1024
    # Bytes of messages being received that one process holds at once (budget.py).
    message_memory: int = 512 * 1024 * 1024
    connections: int = 1000
    connections_per_ip: int = 20
    # Before authentication a client gets short timeouts and small line/literal limits.
    idle_timeout: float = 300.0
    auth_idle_timeout: float = 1800.0
    # IMAP and POP3: connected this long without logging in, however busy, is disconnected
    # (Dovecot's fixed 3 minutes), so trickled commands cannot hold connections for ever.
    login_timeout: float = 180.0
    line_length: int = 8192
    auth_failures_per_ip: int = 10  # failures per minute before delays grow
    # How long a verified password is remembered (auth/verified.py); 0 checks every login.
    auth_cache: float = 3600.0


@dataclass(frozen=True, slots=True)
class PgSettings:
    """Where the PostgreSQL store lives (``[storage] backend = "postgresql"``).

    The password is never part of the TOML: it is read from a file or an environment
    variable at connect time (so a rotated password needs no config reload), and when
    neither is set asyncpg falls back to PGPASSWORD and ~/.pgpass by itself.
    """

    url: str  # postgresql://USER@HOST:PORT/DBNAME; a password in it is refused
    password_file: Path | None = None
    password_env: str | None = None  # name of an environment variable holding the password
    pool_size: int = 10

    def password(self) -> str | None:
        """The password to connect with: the file first, then the environment variable.

        Raises :class:`ConfigError` when the file cannot be read: only at connect time,
        because the secret may be mounted after ``postroom check`` ran.
        """
        if self.password_file is not None:
            try:
                text = self.password_file.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
                raise ConfigError([f"storage.password_file: cannot read {self.password_file}: {why}"]) from None
            return text.strip("\r\n")
        if self.password_env is not None:
            return os.environ.get(self.password_env)
        return None


def parse_pg_url(url: str) -> str | None:
    """The problem with a ``postgresql://`` URL for the store, or None when it is usable."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        return f"not a URL: {exc}"
    if parts.scheme not in ("postgresql", "postgres"):
        return "must start with postgresql://"
    if parts.password is not None:
        return "must not contain a password (use password_file or password_env)"
    if not parts.hostname and "host=" not in parts.query:
        return "names no host"
    return None


@dataclass(frozen=True, slots=True)
class Config:
    path: Path
    hostname: str
    domains: tuple[str, ...]
    data_dir: Path
    backend: str
    tls_cert: Path
    tls_key: Path
    listeners: tuple[Listener, ...]
    limits: Limits
    workers: int
    log_level: str
    # Raw tables of protocol-owned sections; each protocol's settings module reads its own.
    sections: dict[str, dict[str, Any]] = field(default_factory=dict)
    pg: PgSettings | None = None  # set when [storage] backend = "postgresql"

    def section(self, name: str, problems: list[str]) -> Section:
        return Section(self.sections.get(name, {}), name, problems)


PROTOCOL_SECTIONS = ("smtp", "submission", "pop3", "imap", "outbound", "managesieve", "nntp", "http",
                     "sieve", "dns", "mailauth", "mta_sts", "kerberos",
                     "clamav", "attachments", "screen", "ratelimit", "rspamd", "web")


def load(path: str | Path) -> Config:
    """Read and validate the file; raise :class:`ConfigError` listing every problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror or exc}"]) from None
    except UnicodeDecodeError:
        raise ConfigError([f"{path}: not UTF-8 text"]) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path}: TOML syntax error: {exc}"]) from None
    return from_dict(data, path)


def from_dict(data: dict[str, Any], path: Path) -> Config:
    problems: list[str] = []
    top = Section(data, "", problems)
    base = path.parent.resolve()

    def rel(p: str) -> Path:
        q = Path(p)
        return q if q.is_absolute() else base / q

    hostname = top.get("hostname", str, "localhost")
    if not re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?", hostname):
        top.problem("hostname", f"{hostname!r} is not a host name")
    domains = tuple(d.lower().rstrip(".") for d in top.strings("domains"))
    for d in domains:
        if not re.fullmatch(r"[a-z0-9]([a-z0-9.-]*[a-z0-9])?", d):
            top.problem("domains", f"{d!r} is not a domain name")
    workers = top.get("workers", int, 1)
    if workers < 1 or workers > 64:
        top.problem("workers", "must be between 1 and 64")
        workers = 1
    log_level = top.choice("log_level", ("debug", "info", "warning", "error"), "info")

    st = top.sub("storage")
    data_dir = rel(st.get("path", str, "data"))
    backend = st.choice("backend", ("sqlite", "postgresql"), "sqlite")
    pg = _pg_settings(st, rel) if backend == "postgresql" else None
    st.finish()

    tl = top.sub("tls")
    cert = rel(tl.get("cert", str, "tls/cert.pem"))
    key = rel(tl.get("key", str, "tls/key.pem"))
    tl.finish()

    lim = top.sub("limits")
    dl = Limits()
    limits = Limits(
        message_size=lim.convert("message_size", parse_size, dl.message_size),
        message_memory=lim.convert("message_memory", parse_size, dl.message_memory),
        connections=lim.get("connections", int, dl.connections),
        connections_per_ip=lim.get("connections_per_ip", int, dl.connections_per_ip),
        idle_timeout=lim.convert("idle_timeout", parse_duration, dl.idle_timeout),
        auth_idle_timeout=lim.convert("auth_idle_timeout", parse_duration, dl.auth_idle_timeout),
        login_timeout=lim.convert("login_timeout", parse_duration, dl.login_timeout),
        line_length=lim.get("line_length", int, dl.line_length),
        auth_failures_per_ip=lim.get("auth_failures_per_ip", int, dl.auth_failures_per_ip),
        auth_cache=lim.convert("auth_cache", parse_duration, dl.auth_cache),
    )
    for name in ("connections", "connections_per_ip", "line_length"):
        if getattr(limits, name) < 1:
            lim.problem(name, "must be at least 1")
    if limits.message_memory < limits.message_size:
        lim.problem("message_memory", "must be at least message_size (one message must fit)")
    if limits.login_timeout <= 0:
        lim.problem("login_timeout", "must be positive")
    if limits.line_length < 1000:
        lim.problem("line_length", "must be at least 1000 (RFC 5321 §4.5.3.1.6 allows 1000-octet lines)")
    lim.finish()

    listeners: list[Listener] = []
    ls = top.sub("listeners")
    seen_addr: dict[tuple[str, int], str] = {}
    for name in ls.data:
        sec = ls.sub(name)
        std = STANDARD_LISTENERS.get(name)
        protocol = sec.get("protocol", str, std[0] if std else "")
        if not protocol:
            sec.problem("protocol", "missing (needed when the listener name is not a standard one)")
        tls = sec.choice("tls", TLS_MODES, std[2] if std else "none")
        if "address" not in sec.data:
            sec.problem("address", "missing (HOST:PORT)")
            sec.finish()
            continue
        host, port = sec.convert("address", parse_hostport, ("127.0.0.1", 0))
        try:
            ipaddress.ip_address(host)
        except ValueError:
            if host != "localhost":
                sec.problem("address", f"{host!r} is not an IP address")
        if port and (host, port) in seen_addr:
            sec.problem("address", f"{host}:{port} is also used by listeners.{seen_addr[(host, port)]}")
        seen_addr[(host, port)] = name
        sec.finish()
        listeners.append(Listener(name, protocol, host, port, tls))

    sections: dict[str, dict[str, Any]] = {}
    for name in PROTOCOL_SECTIONS:
        top.seen.add(name)
        value = data.get(name, {})
        if not isinstance(value, dict):
            problems.append(f"{name}: must be a table")
            value = {}
        sections[name] = value
    top.finish()
    if problems:
        raise ConfigError(problems)
    return Config(
        path=path.resolve(), hostname=hostname, domains=domains, data_dir=data_dir, backend=backend,
        tls_cert=cert, tls_key=key, listeners=tuple(listeners), limits=limits, workers=workers,
        log_level=log_level, sections=sections, pg=pg,
    )


def _pg_settings(st: Section, rel: Callable[[str], Path]) -> PgSettings | None:
    """The ``[storage]`` keys of the PostgreSQL backend; problems are recorded on ``st``."""
    url = st.get("url", str, "")
    if not url:
        st.problem("url", 'missing (backend = "postgresql" needs url = "postgresql://USER@HOST:PORT/DBNAME")')
    elif (why := parse_pg_url(url)) is not None:
        st.problem("url", why)
    password_file = st.get("password_file", str, "")
    password_env = st.get("password_env", str, "")
    if password_file and password_env:
        st.problem("password_env", "give password_file or password_env, not both")
    pool_size = st.get("pool_size", int, 10)
    if pool_size < 2:
        # A pool of one would serialise every session behind one delivery, and a POP3
        # session holding its maildrop lock would stall the whole node.
        st.problem("pool_size", "must be at least 2")
    return PgSettings(
        url=url,
        password_file=rel(password_file) if password_file else None,
        password_env=password_env or None,
        pool_size=max(pool_size, 2),
    )


def check(path: str | Path) -> list[str]:
    """Every problem in the file, including protocol sections and TLS files (empty = valid)."""
    try:
        cfg = load(path)
    except ConfigError as exc:
        return exc.problems
    problems: list[str] = []
    from . import protocols  # late import: protocol modules import this one

    for protocol in protocols.settings_parsers():
        protocol(cfg, problems)
    for lst in cfg.listeners:
        if lst.protocol not in protocols.available():
            problems.append(f"listeners.{lst.name}.protocol: {lst.protocol!r} is not available in this "
                            f"version (available: {', '.join(sorted(protocols.available()))})")
    # Every listener may switch to TLS (STARTTLS or implicit), so the pair is always needed.
    for key, p in (("tls.cert", cfg.tls_cert), ("tls.key", cfg.tls_key)):
        if not p.is_file():
            problems.append(f"{key}: {p} does not exist")
    if not problems:
        from .net.tls import server_context

        try:
            server_context(cfg.tls_cert, cfg.tls_key)
        except Exception as exc:  # ssl errors come in many types; report them all plainly
            problems.append(f"tls: cannot load certificate and key: {exc}")
    return problems
