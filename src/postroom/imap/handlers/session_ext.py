"""Session extensions valid outside the RFC 3501 states' own commands:
ID (RFC 2971, any state) and UNAUTHENTICATE (RFC 8437, authenticated or selected)."""

from __future__ import annotations

from ... import __version__, log
from ...mime.imapfmt import imap_quote
from ..parser.ext import IdArgs
from ..responses import After, Reply, untagged
from ..session import Session, State

_log = log.get("imap")

# RFC 2971 §3.3: name and version only; nothing about the OS or the build (§7: the
# client learns what it needs to work around bugs, an attacker no more than that).
_ID_RESPONSE = untagged(b"ID (" + b" ".join(imap_quote(v.encode()) for v in
                                            ("name", "Postroom", "version", __version__)) + b")")
_LOG_VALUE = 64  # characters of each value kept in the log


def _loggable(fields: tuple[tuple[str, str | None], ...]) -> str:
    # repr() escapes control characters: a client's strings cannot forge log lines.
    return " ".join(f"{k[:30]!r}={v if v is None else v[:_LOG_VALUE]!r}" for k, v in fields)


async def id_(s: Session, a: IdArgs) -> Reply:
    """RFC 2971 §3.1: the client's fields (bounded by the parser: 30 pairs, 30/1024 octets)
    are logged; the answer is the server's own name and version, in any state."""
    if a.fields:
        _log.info("%s id %s", s.tag, _loggable(a.fields))
    return Reply("ID completed", untagged=[_ID_RESPONSE])


async def unauthenticate(s: Session, _: None) -> Reply:
    """RFC 8437 §2: close the selected mailbox (no expunge, like UNSELECT), forget the
    login and what ENABLE switched on, and go back to the not-authenticated state; TLS
    stays up (there is no SASL security layer to drop). The glue restarts
    the login timer (After.UNAUTHENTICATE)."""
    _log.info("%s unauthenticate user=%r", s.tag, s.account.address if s.account else None)
    s.selected = None
    s.close_watch()
    s.account = None
    s.enabled.clear()  # §2: as if just connected, so extensions ENABLEd are off again
    s.state = State.NOT_AUTHENTICATED
    return Reply("Not authenticated any more", after=After.UNAUTHENTICATE)


CAPS = ("ID", "UNAUTHENTICATE")
