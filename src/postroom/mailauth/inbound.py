"""The checks of one inbound message, run together: SPF, DKIM, ARC, then DMARC.

SPF (on the envelope), DKIM and ARC (on the message) are independent and run at the
same time; DMARC needs the first two. All of them together get ``[mailauth] timeout``:
a lookup still pending then is a temporary error (temperror), never a pass or a fail
(RFC 7208 §2.6.6, RFC 7489 §6.6.3). The message gets one ``Authentication-Results``
field with our authserv-id (the hostname) at the top, after every field that claimed
that id on arrival was removed (RFC 8601 §5: it can only be forged).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from ..resolver import Resolver
from .model import ArcResult, Checks, DkimResult, DmarcResult, SpfResult
from .settings import MailauthSettings

log = logging.getLogger("postroom.mailauth")


@dataclass(frozen=True, slots=True)
class Inbound:
    checks: Checks
    header: bytes  # our Authentication-Results field, CRLF-terminated
    message: bytes  # forged fields removed, ``header`` prepended
    removed: int  # forged Authentication-Results fields removed
    elapsed: float  # seconds all the checks took


def summary(checks: Checks) -> str:
    """``spf=pass dkim=pass,fail dmarc=pass arc=none``: for the log line."""
    dkim = ",".join(d.result for d in checks.dkim) or "none"
    return (f"spf={checks.spf.result if checks.spf else 'none'} dkim={dkim} "
            f"dmarc={checks.dmarc.result if checks.dmarc else 'none'} arc={checks.arc.result if checks.arc else 'none'}")


async def _spf(resolver: Resolver, ip: str, helo: str, mail_from: str,
               timeout: float) -> tuple[SpfResult, SpfResult | None]:
    from .spf import check_spf

    domain = mail_from.rpartition("@")[2] or helo
    try:
        return await check_spf(resolver, ip, mail_from, helo, timeout)  # bounded by its own deadline
    except Exception as exc:  # a bug in the glue must not lose the message: say so in the header
        log.exception("SPF check of %s from %s failed", domain, ip)
        return SpfResult("temperror", domain, reason=f"internal error ({exc.__class__.__name__})"), None


async def _dkim(resolver: Resolver, message: bytes, settings: MailauthSettings) -> tuple[DkimResult, ...]:
    from .dkim import verify

    try:  # each key lookup is bounded by the timeout, and the rest is CPU
        return await verify(resolver, message, settings.timeout, settings.min_key_bits)
    except Exception as exc:
        log.exception("DKIM verification failed")
        return (DkimResult("temperror", reason=f"internal error ({exc.__class__.__name__})"),)


async def _arc(resolver: Resolver, message: bytes, timeout: float) -> ArcResult:
    from .arc import verify_arc

    try:
        return await verify_arc(resolver, message, timeout)  # bounded by its own deadline
    except Exception as exc:
        log.exception("ARC verification failed")
        return ArcResult("fail", reason=f"internal error ({exc.__class__.__name__})")


async def _dmarc(resolver: Resolver, message: bytes, spf: SpfResult, dkim: tuple[DkimResult, ...],
                 timeout: float) -> DmarcResult:
    from .dmarc import check_dmarc

    if timeout <= 0:
        return DmarcResult("temperror", reason="no time left for the DMARC lookup")
    try:
        async with asyncio.timeout(timeout):  # not wait_for: no task of its own (3.11)
            return await check_dmarc(resolver, message, spf, dkim)
    except TimeoutError:  # asyncio.timeout's (asyncio.TimeoutError is TimeoutError since 3.11)
        return DmarcResult("temperror", reason="DNS lookups took too long")
    except Exception as exc:
        log.exception("DMARC check failed")
        return DmarcResult("temperror", reason=f"internal error ({exc.__class__.__name__})")


async def check(resolver: Resolver, settings: MailauthSettings, authserv_id: str, *, ip: str, helo: str,
                mail_from: str, message: bytes) -> Inbound:
    """Every check of one message received from ``ip``; never raises for bad input."""
    from .arc import has_chain
    from .results import authentication_results, strip_forged
    from .spf import kept

    start = time.monotonic()
    message, removed = strip_forged(message, authserv_id)
    if has_chain(message):
        (spf, helo_result), dkim, arc = await asyncio.gather(
            _spf(resolver, ip, helo, mail_from, settings.timeout),
            _dkim(resolver, message, settings),
            _arc(resolver, message, settings.timeout),
        )
    elif (both := kept(resolver, ip, mail_from, helo)) is not None:
        # A sender seen before: both SPF results kept (as long as their DNS answers), so no
        # task for SPF; DKIM runs in this task.
        arc = ArcResult("none")
        spf, helo_result = both
        dkim = await _dkim(resolver, message, settings)
    else:  # most mail: no ARC chain to look at; DKIM runs in this task, SPF beside it
        arc = ArcResult("none")
        spf_task = asyncio.ensure_future(_spf(resolver, ip, helo, mail_from, settings.timeout))
        try:
            dkim = await _dkim(resolver, message, settings)
            spf, helo_result = await spf_task
        finally:
            spf_task.cancel()  # done by now, unless this check itself was cancelled
    left = settings.timeout - (time.monotonic() - start)
    dmarc = await _dmarc(resolver, message, spf, dkim, left)
    if not dkim:  # said in the header (RFC 8601 §2.7.1), as other receivers do
        dkim = (DkimResult("none", reason="message not signed"),)
    checks = Checks(spf=spf, helo=helo_result, dkim=dkim, dmarc=dmarc, arc=arc)
    header = authentication_results(authserv_id, checks)
    return Inbound(checks, header, header + message, removed, time.monotonic() - start)
