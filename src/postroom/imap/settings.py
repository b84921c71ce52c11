"""The ``[imap]`` config section.

```toml
[imap]
allow_plaintext_auth = false   # LOGIN/AUTHENTICATE only after STARTTLS (RFC 3501 §6.2.3, LOGINDISABLED)
autologout = "30m"             # RFC 3501 §5.4: at least 30 minutes for authenticated sessions
preauth_timeout = "60s"        # before login
admin_contact = "mailto:postmaster@example.org"  # METADATA /shared/admin (RFC 5464); "" for none;
                               # default: postmaster at the first of `domains`, else at `hostname`
```
"""

from __future__ import annotations

import re

from ..config import Config, parse_duration
from .session import ImapSettings

# RFC 3986 §3.1 scheme ":" then something without spaces or controls.
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:[\x21-\x7e]+")


def _default_admin(cfg: Config) -> str:
    return f"mailto:postmaster@{cfg.domains[0] if cfg.domains else cfg.hostname}"


def read_settings(cfg: Config, problems: list[str]) -> ImapSettings:
    sec = cfg.section("imap", problems)
    d = ImapSettings()
    s = ImapSettings(
        allow_plaintext_auth=sec.get("allow_plaintext_auth", bool, d.allow_plaintext_auth),
        autologout=sec.convert("autologout", parse_duration, d.autologout),
        preauth_timeout=sec.convert("preauth_timeout", parse_duration, d.preauth_timeout),
        admin_contact=sec.get("admin_contact", str, _default_admin(cfg)),
    )
    if s.admin_contact and not _URI.fullmatch(s.admin_contact):
        sec.problem("admin_contact", "must be a URI such as mailto:postmaster@example.org (RFC 5464 §3.2.1.1)")
    if s.autologout < 1800:
        sec.problem("autologout", "must be at least 30m (RFC 3501 §5.4)")
    if s.preauth_timeout <= 0:
        sec.problem("preauth_timeout", "must be positive")
    sec.finish()
    return s
