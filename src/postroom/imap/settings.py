"""The ``[imap]`` config section.

```toml
[imap]
allow_plaintext_auth = false   # LOGIN/AUTHENTICATE only after STARTTLS (RFC 3501 §6.2.3, LOGINDISABLED)
autologout = "30m"             # RFC 3501 §5.4: at least 30 minutes for authenticated sessions
preauth_timeout = "60s"        # before login
```
"""

from __future__ import annotations

from ..config import Config, parse_duration
from .session import ImapSettings


def read_settings(cfg: Config, problems: list[str]) -> ImapSettings:
    sec = cfg.section("imap", problems)
    d = ImapSettings()
    s = ImapSettings(
        allow_plaintext_auth=sec.get("allow_plaintext_auth", bool, d.allow_plaintext_auth),
        autologout=sec.convert("autologout", parse_duration, d.autologout),
        preauth_timeout=sec.convert("preauth_timeout", parse_duration, d.preauth_timeout),
    )
    if s.autologout < 1800:
        sec.problem("autologout", "must be at least 30m (RFC 3501 §5.4)")
    if s.preauth_timeout <= 0:
        sec.problem("preauth_timeout", "must be positive")
    sec.finish()
    return s
