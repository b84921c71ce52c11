"""The ``[web]`` config section: the web administration pages and JSON API (docs/web.md).

```toml
[web]
enabled = true            # serve /login, /admin/, /settings/, /api/ on the https listeners (and http on loopback)
secret_file = ""          # session signing key; default <data_dir>/web-secret (share it between scale-out nodes)
idle_timeout = "30m"      # a session unused this long must log in again
session_lifetime = "12h"  # ... and at most this long after the login, however busy
max_body = "1m"           # largest form or JSON body (413 beyond); each form field at most 64k
totp_issuer = "Postroom"  # the name authenticator apps show next to the code
```

The session lifetime is short because a session cookie is a bearer credential with the
account's full power: a stolen one should not be useful for long.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..config import Config, parse_duration, parse_size

FIELD_MAX = 64 * 1024  # one form field: no legitimate field (a Sieve script included) is larger


@dataclass(frozen=True, slots=True)
class WebSettings:
    enabled: bool = True
    secret_file: Path | None = None
    idle_timeout: float = 30 * 60.0
    session_lifetime: float = 12 * 3600.0
    max_body: int = 1024 * 1024
    totp_issuer: str = "Postroom"

    def secret_path(self, cfg: Config) -> Path:
        return self.secret_file or cfg.data_dir / "web-secret"


def read_settings(cfg: Config, problems: list[str]) -> WebSettings:
    sec = cfg.section("web", problems)
    d = WebSettings()
    secret = sec.get("secret_file", str, "")
    path: Path | None = None
    if secret:
        path = Path(secret)
        if not path.is_absolute():
            path = cfg.path.parent / path
    s = WebSettings(
        enabled=sec.get("enabled", bool, d.enabled),
        secret_file=path,
        idle_timeout=sec.convert("idle_timeout", parse_duration, d.idle_timeout),
        session_lifetime=sec.convert("session_lifetime", parse_duration, d.session_lifetime),
        max_body=sec.convert("max_body", parse_size, d.max_body),
        totp_issuer=sec.get("totp_issuer", str, d.totp_issuer),
    )
    if s.idle_timeout < 60:
        sec.problem("idle_timeout", "must be at least 1m")
    if s.session_lifetime < s.idle_timeout:
        sec.problem("session_lifetime", "must not be shorter than idle_timeout")
    if s.max_body < FIELD_MAX:
        sec.problem("max_body", "must be at least 64k")
    if not s.totp_issuer.strip() or ":" in s.totp_issuer:
        sec.problem("totp_issuer", "must be a non-empty name without ':'")
    sec.finish()
    return s


def check_settings(cfg: Config, problems: list[str]) -> None:
    """Also reads an existing secret file, so a broken one is reported at start, not at the
    first login (a missing one is made at the first web request)."""
    s = read_settings(cfg, problems)
    path = s.secret_path(cfg)
    if s.enabled and path.exists():
        from .sessions import load_secret

        try:
            load_secret(path)
        except (OSError, ValueError) as exc:
            problems.append(f"web.secret_file: {path}: {exc}")
