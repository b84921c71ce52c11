"""``/.well-known/mta-sts.txt`` on ``mta-sts.DOMAIN``: our MTA-STS policy (RFC 8461 §3.2, §3.3).

One policy for every served domain, made from ``[mta_sts]`` (mode, max_age, the
``mx`` patterns, by default the hostname): all our domains have the same MX, this
server. Its ``id`` (printed by ``postroom dns records`` in the ``_mta-sts`` TXT record)
is a hash of the text, so any change to the policy changes the id and senders fetch
it again (§3.1). The document is rebuilt when the config object changes (SIGHUP).

Senders fetch it over HTTPS with a certificate valid for ``mta-sts.DOMAIN`` (§3.3); a
request for a host that is not ``mta-sts.`` + a served domain gets 404, so the policy
of one domain is never served under another's name.
"""

from __future__ import annotations

from aiohttp import web

from ..config import Config
from ..outbound.stspolicy import WELL_KNOWN_PATH, published
from .app import CTX, not_found

PATH = WELL_KNOWN_PATH
PREFIX = "mta-sts."


def policy_domain(host: str) -> str | None:
    """``mta-sts.example.org:443`` → ``example.org``; None for any other host name."""
    name = host.strip().lower()
    if name.startswith("["):  # an IPv6 literal: never a policy host
        return None
    name = name.rsplit(":", 1)[0] if ":" in name else name
    name = name.rstrip(".")
    if not name.startswith(PREFIX) or len(name) <= len(PREFIX):
        return None
    return name[len(PREFIX):]


class MtaStsDocument:
    """The policy text for the current config, remade only when the config changes."""

    def __init__(self) -> None:
        self._config: Config | None = None
        self._body = ""

    def body(self, cfg: Config) -> str:
        if cfg is not self._config:
            _, self._body, _ = published(cfg)
            self._config = cfg
        return self._body


_document = MtaStsDocument()  # per process; remade when a SIGHUP brings a new config object


async def handle(request: web.Request) -> web.Response:
    """``GET /.well-known/mta-sts.txt`` (mounted by :func:`postroom.http.app.build`)."""
    ctx = request.app[CTX]
    domain = policy_domain(request.host)
    if domain is None or not await ctx.is_local_domain(domain):  # type: ignore[attr-defined]
        return not_found()  # the same 404 as any unknown path: says nothing about which domains exist
    # RFC 8461 §3.2: media type text/plain; parameters (charset) are ignored by senders.
    return web.Response(text=_document.body(ctx.config), content_type="text/plain",  # type: ignore[attr-defined]
                        charset="us-ascii")
