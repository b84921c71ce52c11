"""Extensions a session switched on: ENABLE (RFC 5161) and RFC 7162's implicit CONDSTORE.

Kept apart from condstore.py and qresync.py so that every handler module can note a
CONDSTORE enabling command (§3.1) without importing the others.
"""

from __future__ import annotations

from ..responses import untagged
from ..session import Session

SUPPORTED = ("CONDSTORE", "QRESYNC",
             "UTF8=ACCEPT",  # RFC 6855 §3: UTF-8 mailbox names and quoted strings (names.py)
             "IMAP4rev2")  # RFC 9051 Appendix A: rev2 rules for this connection (handlers/rev2.py)


def sync_box(s: Session) -> None:
    """Carry the session's enabled extensions to the selected mailbox's view."""
    box = s.selected
    if box is not None:
        box.condstore = "CONDSTORE" in s.enabled
        box.qresync = "QRESYNC" in s.enabled
        box.rev2 = "IMAP4rev2" in s.enabled
        if box.rev2:
            box.recent.clear()  # RFC 9051 §2.3.2: no \Recent for a rev2 client, even if enabled late


def enable_condstore(s: Session, used: bool = True) -> list[bytes]:
    """Note a CONDSTORE enabling command; the untagged lines to send for it.

    §3.1: when CONDSTORE gets enabled while a mailbox is selected, the client learns the
    mailbox's HIGHESTMODSEQ (SELECT sends it anyway; this covers FETCH, STORE, SEARCH, STATUS).
    """
    if not used or "CONDSTORE" in s.enabled:
        return []
    s.enabled.add("CONDSTORE")
    sync_box(s)
    box = s.selected
    if box is None:
        return []
    return [untagged(b"OK [HIGHESTMODSEQ %d] Highest" % box.modseq)]
