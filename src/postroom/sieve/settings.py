"""The ``[sieve]`` config section: per-account script limits, admin scripts, vacation periods.

```toml
[sieve]
max_scripts = 20                 # scripts one account may store (ManageSieve QUOTA/MAXSCRIPTS)
max_script_size = "64k"          # octets per script (QUOTA/MAXSIZE)
max_actions = 32                 # actions one run may produce
max_redirects = 4                # redirect actions one run may produce (ManageSieve MAXREDIRECTS)
max_outgoing_per_hour = 200      # redirects, vacation replies, notifications per account and hour (0: no cap)
before = "sieve/before.sieve"    # optional admin script run before each user's script
after = "sieve/after.sieve"      # optional admin script run after it (unless a stop ended the run)
vacation_min_period = "1d"       # RFC 5230 §4.1: :days/:seconds are clamped into this range
vacation_max_period = "90d"
vacation_default_period = "7d"   # when the script names no period (RFC 5230 §4.1 suggests 7 days)
```

Relative ``before``/``after`` paths are taken from the config file's directory, as for
``[tls]``. Delivery and ManageSieve both read this section through :func:`settings_for`,
so the limits a client is told (and checked against) are the ones delivery enforces.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..config import Config, Section, parse_duration, parse_size
from .api import Limits, SieveError


@dataclass(frozen=True, slots=True)
class SieveSettings:
    max_scripts: int = 20
    max_script_size: int = 64 * 1024
    max_actions: int = Limits().max_actions
    max_redirects: int = Limits().max_redirects
    max_outgoing_per_hour: int = 200  # postroom.sieve.outcap
    before: Path | None = None
    after: Path | None = None
    vacation_min_period: int = 86400
    vacation_max_period: int = 90 * 86400
    vacation_default_period: int = 7 * 86400

    def limits(self) -> Limits:
        """The engine's limits with this section's values filled in."""
        return Limits(max_script_size=self.max_script_size, max_actions=self.max_actions,
                      max_redirects=self.max_redirects)


def _path(cfg: Config, sec: Section, name: str) -> Path | None:
    value = sec.get(name, str, "")
    if not value:
        return None
    p = Path(value)
    return p if p.is_absolute() else cfg.path.parent / p


def _period(sec: Section, name: str, default: int) -> int:
    seconds = sec.convert(name, parse_duration, float(default))
    if seconds < 1:
        sec.problem(name, "must be at least 1 second")
        return default
    return int(seconds)


def read_settings(cfg: Config, problems: list[str]) -> SieveSettings:
    sec = cfg.section("sieve", problems)
    d = SieveSettings()
    s = SieveSettings(
        max_scripts=sec.get("max_scripts", int, d.max_scripts),
        max_script_size=sec.convert("max_script_size", parse_size, d.max_script_size),
        max_actions=sec.get("max_actions", int, d.max_actions),
        max_redirects=sec.get("max_redirects", int, d.max_redirects),
        max_outgoing_per_hour=sec.get("max_outgoing_per_hour", int, d.max_outgoing_per_hour),
        before=_path(cfg, sec, "before"),
        after=_path(cfg, sec, "after"),
        vacation_min_period=_period(sec, "vacation_min_period", d.vacation_min_period),
        vacation_max_period=_period(sec, "vacation_max_period", d.vacation_max_period),
        vacation_default_period=_period(sec, "vacation_default_period", d.vacation_default_period),
    )
    for name in ("max_scripts", "max_script_size", "max_actions"):
        if getattr(s, name) < 1:
            sec.problem(name, "must be at least 1")
    if s.max_redirects < 0:
        sec.problem("max_redirects", "must be 0 (no redirects) or more")
    if s.max_outgoing_per_hour < 0:
        sec.problem("max_outgoing_per_hour", "must be 0 (no cap) or more")
    if s.vacation_min_period > s.vacation_max_period:
        sec.problem("vacation_min_period", "must not be more than vacation_max_period")
    elif not s.vacation_min_period <= s.vacation_default_period <= s.vacation_max_period:
        sec.problem("vacation_default_period", "must be between vacation_min_period and vacation_max_period")
    sec.finish()
    return s


def compile_with(settings: SieveSettings, text: str, *, max_size: int | None = None) -> Any:
    """Compile ``text`` with every supported extension and this section's limits: the one
    check behind ManageSieve PUTSCRIPT/CHECKSCRIPT, ``postroom sieve put/check`` and the
    admin scripts, so what is accepted is what delivery can run. Raises SieveError (a
    SieveSyntaxError names line and column)."""
    # Imported here, not at the top: engine modules may import this one (no import cycle).
    from . import compile_script

    limits = settings.limits()
    if max_size is not None:
        limits = replace(limits, max_script_size=max_size)
    return compile_script(text, limits=limits)  # every supported extension


def supported_extensions() -> tuple[str, ...]:
    """The engine's extensions, sorted (ManageSieve's SIEVE capability)."""
    from . import SUPPORTED_EXTENSIONS

    return tuple(sorted(SUPPORTED_EXTENSIONS))


def _check_admin_script(key: str, path: Path, settings: SieveSettings, problems: list[str]) -> None:
    """An admin script that is missing or does not compile would silently skip filtering for
    every account, so ``postroom check`` reports it."""
    try:
        text = path.read_bytes()
    except OSError as exc:
        problems.append(f"sieve.{key}: cannot read {path}: {exc.strerror or exc}")
        return
    try:
        source = text.decode("utf-8")
    except UnicodeDecodeError:
        problems.append(f"sieve.{key}: {path} is not UTF-8 text (RFC 5228 §2.1)")
        return
    try:
        # An admin's script is not held to the per-user size limit.
        compile_with(settings, source, max_size=max(len(text), settings.max_script_size))
    except SieveError as exc:
        problems.append(f"sieve.{key}: {path}: {exc}")


def check_settings(cfg: Config, problems: list[str]) -> None:
    s = read_settings(cfg, problems)
    for key in ("before", "after"):
        path = getattr(s, key)
        if path is not None:
            _check_admin_script(key, path, s, problems)


def settings_for(ctx: object) -> SieveSettings:
    """Parsed once per config (``ctx.state`` is cleared on SIGHUP)."""
    state: dict[str, object] = ctx.state  # type: ignore[attr-defined]
    s = state.get("sieve")
    if not isinstance(s, SieveSettings):
        s = read_settings(ctx.config, [])  # type: ignore[attr-defined]
        state["sieve"] = s
    return s
