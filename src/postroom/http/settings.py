"""The ``[http]`` config section.

```toml
[http]
keepalive_timeout = "15s"   # idle between requests, and the whole wait for a request's head
request_timeout = "30s"     # reading one request body (Autodiscover POST), however it trickles
max_body = "64k"            # request bodies larger than this get 413 (an Autodiscover POST is < 1k)
sign_profiles = false       # sign Apple .mobileconfig profiles with the server's certificate
```

The limits are short because nothing served here is large or slow to make: a client
that takes longer is either broken or holding a connection slot on purpose, and the
HTTP listeners share the connection limits (``[limits] connections``) with the mail
listeners.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config import Config, parse_duration, parse_size


@dataclass(frozen=True, slots=True)
class HttpSettings:
    keepalive_timeout: float = 15.0
    request_timeout: float = 30.0
    max_body: int = 64 * 1024
    sign_profiles: bool = False


def read_settings(cfg: Config, problems: list[str]) -> HttpSettings:
    sec = cfg.section("http", problems)
    d = HttpSettings()
    s = HttpSettings(
        keepalive_timeout=sec.convert("keepalive_timeout", parse_duration, d.keepalive_timeout),
        request_timeout=sec.convert("request_timeout", parse_duration, d.request_timeout),
        max_body=sec.convert("max_body", parse_size, d.max_body),
        sign_profiles=sec.get("sign_profiles", bool, d.sign_profiles),
    )
    for name in ("keepalive_timeout", "request_timeout"):
        if getattr(s, name) <= 0:
            sec.problem(name, "must be positive")
    if s.max_body < 1024:
        sec.problem("max_body", "must be at least 1k (an Autodiscover request must fit)")
    # Sub-tables owned by other modules of this package (MTA-STS, metrics) are theirs to check.
    for name in list(sec.data):
        if isinstance(sec.data[name], dict):
            sec.seen.add(name)
    sec.finish()
    return s


def check_settings(cfg: Config, problems: list[str]) -> None:
    read_settings(cfg, problems)
