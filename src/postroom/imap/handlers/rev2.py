"""IMAP4rev2 (RFC 9051) for a session that sent ``ENABLE IMAP4rev2``.

We advertise IMAP4rev1 and IMAP4rev2 side by side (RFC 9051 Appendix A), so a rev2 client
must ENABLE IMAP4rev2, and until it does the session is exactly IMAP4rev1. Once it does
(``"IMAP4rev2" in Session.enabled``, carried to the selected view as ``box.rev2`` by
handlers/enabled.py), Appendix E's differences apply; this module holds the pieces that
are rev2's own, and the handlers call them where rev1 and rev2 part ways:

- no \\Recent (§2.3.2, Appendix E item 12): no ``* n RECENT`` (SELECT, selected.py's
  poll), no \\Recent in FLAGS, STATUS RECENT and the SEARCH keys RECENT, NEW, OLD are
  ``BAD`` (they are not in §9's grammar); the session does not claim \\Recent either, so
  rev1 sessions of the same user still see new mail as recent;
- SEARCH answers ``* ESEARCH`` (§6.4.4, item 4): without RETURN it is ``RETURN (ALL)``;
- SELECT/EXAMINE send a LIST response for the mailbox (§6.3.2, item 10) and no
  ``[UNSEEN n]`` (item 11); FLAGS and PERMANENTFLAGS name the keywords of §2.3.2
  ($Forwarded, $MDNSent, $Junk, $NotJunk, $Phishing; item 15);
- mailbox names are UTF-8 (names.py), converted to NFC; a name the client spelled
  otherwise gets a LIST response with OLDNAME (§6.3.9.7), and RENAME always announces the
  new name with ``("OLDNAME" (old))`` (§6.3.6);
- every unsolicited FETCH carries UID (§7.5.2, item 21): STORE's and the \\Seen set by
  BODY[] as well (messages.py, fetch.py);
- BINARY[] of a text part goes with CRLF line ends (§7.5.2).
"""

from __future__ import annotations

import dataclasses
import re

from ...mime.model import ParsedMessage
from ...mime.sections import find_part
from ...storage.models import HIERARCHY_SEPARATOR as SEP
from ...storage.models import SYSTEM_FLAGS, Mailbox
from .. import names
from ..errors import Bad
from ..parser.args import SearchArgs
from ..parser.search import Node
from ..responses import flag_list, mailbox_wire, untagged
from ..session import Session

CAPS = ("IMAP4rev2",)

# RFC 9051 §2.3.2: keywords servers SHOULD support; any keyword can be stored here (\*), so
# they are listed for the client to know they are kept.
KEYWORDS = ("$Forwarded", "$Junk", "$MDNSent", "$NotJunk", "$Phishing")

FLAGS_LINE = untagged(b"FLAGS " + flag_list(SYSTEM_FLAGS + KEYWORDS))
PERMANENTFLAGS_RW = untagged(b"OK [PERMANENTFLAGS " + flag_list(SYSTEM_FLAGS + KEYWORDS + ("\\*",))
                             + b"] Flags permitted")

_SEP_WIRE = b' "' + SEP.encode() + b'" '
_RECENT_OPS = frozenset({"recent", "new"})


def on(s: Session) -> bool:
    return "IMAP4rev2" in s.enabled


# -- LIST responses outside LIST: SELECT, CREATE, RENAME, DELETE (§6.3.2, §6.3.9.7) ---------
async def _attributes(s: Session, name: str, mb: Mailbox | None) -> list[str]:
    """The mailbox's attributes as LIST gives them (§6.3.2: they "MUST be accurate")."""
    if mb is None:
        return ["\\NonExistent"]
    prefix = name + SEP
    children = any(m.name.startswith(prefix) for m in await s.store.list_mailboxes(s.account_id))
    attrs = ["\\HasChildren" if children else "\\HasNoChildren"]
    if mb.special_use:
        attrs.append(mb.special_use)
    return attrs


async def list_line(s: Session, name: str, mb: Mailbox | None, oldname: str | None = None) -> bytes:
    """``* LIST (attrs) "/" name [("OLDNAME" (old))]`` (§7.3.1, §6.3.9.7)."""
    line = (b"LIST (" + " ".join(await _attributes(s, name, mb)).encode() + b")" + _SEP_WIRE
            + mailbox_wire(name))
    if oldname is not None:
        line += b' ("OLDNAME" (' + mailbox_wire(oldname) + b"))"
    return untagged(line)


async def select_lines(s: Session, mb: Mailbox) -> list[bytes]:
    """§6.3.2: the LIST response SELECT/EXAMINE must send, with OLDNAME when the client
    spelled the name in another normalization form."""
    return [await list_line(s, mb.name, mb, names.supplied(mb.name))]


async def created_lines(s: Session, mb: Mailbox) -> list[bytes]:
    """§6.3.4: a CREATE whose name NFC changed says so with OLDNAME."""
    old = names.supplied(mb.name)
    return [] if old is None else [await list_line(s, mb.name, mb, old)]


async def renamed_lines(s: Session, old: str, new: str) -> list[bytes]:
    """§6.3.6: the new name with OLDNAME, the old name as the client sent it. Renaming INBOX
    leaves INBOX in place (§6.3.6), so nothing is announced then."""
    if old == "INBOX":
        return []
    mb = await s.store.get_mailbox(s.account_id, new)
    return [await list_line(s, new, mb, names.supplied(old) or old)]


def deleted_lines(name: str) -> list[bytes]:
    """§6.3.5 / §6.3.9.7: a DELETE whose name NFC changed: the normalized name is gone."""
    old = names.supplied(name)
    if old is None:
        return []
    return [untagged(b"LIST (\\NonExistent)" + _SEP_WIRE + mailbox_wire(name)
                     + b' ("OLDNAME" (' + mailbox_wire(old) + b"))")]


# -- STATUS, SEARCH -------------------------------------------------------------------
def check_status(items: list[str] | tuple[str, ...]) -> None:
    """§6.3.11 / §9 status-att: RECENT is gone from rev2."""
    if "RECENT" in items:
        raise Bad("STATUS RECENT is not part of IMAP4rev2")


def _uses_recent(node: Node) -> bool:
    stack = [node]
    while stack:
        n = stack.pop()
        op = n[0]
        if op in _RECENT_OPS or (op == "flag" and n[1] == "\\Recent"):
            return True
        if op == "and":
            stack.extend(n[1])
        elif op in ("or", "not"):
            stack.extend(n[1:])
    return False


def search_args(a: SearchArgs) -> SearchArgs:
    """§6.4.4: RECENT, NEW, OLD (and \\Recent) are no search keys in rev2; a SEARCH without
    RETURN answers ESEARCH with ALL ("SEARCH response is now deprecated", item 4)."""
    if _uses_recent(a.criteria):
        raise Bad("RECENT, NEW and OLD are not IMAP4rev2 search keys")
    if a.returns is None:
        return dataclasses.replace(a, returns=("ALL",))
    return a


# -- BINARY (§7.5.2) ------------------------------------------------------------------
_BARE_EOL = re.compile(rb"\r(?!\n)|(?<!\r)\n")


def is_text(parsed: ParsedMessage, part: tuple[int, ...]) -> bool:
    """Is the addressed part text/* (line-oriented)?"""
    found = find_part(parsed, part)
    return found is not None and not found.is_multipart and found.type == "text"


def crlf(data: bytes) -> bytes:
    """§7.5.2: "textual line-oriented sections are always transmitted using the IMAP CRLF
    line termination syntax" (a base64 text part often decodes to bare LFs)."""
    return _BARE_EOL.sub(b"\r\n", data)
