"""METADATA (RFC 5464): GETMETADATA and SETMETADATA on mailboxes and on the server.

What is kept where:

- Stored entries live in the store (``Store.get_metadata``/``set_metadata``), per account:
  Postroom has no shared mailboxes and no IMAP administrators, so ``/shared/...`` entries,
  of a mailbox or of the server, are the account's own as much as ``/private/...`` ones
  (Dovecot keeps server entries per user too). Any valid name may be set, vendor entries
  (``/shared/vendor/...``, ``/private/vendor/...``) included.
- Two entries are computed and read-only (``NO [CANNOT]``, as Dovecot answers): the
  server's ``/shared/admin`` (§3.2.1.1, the ``[imap] admin_contact`` URI) and a mailbox's
  ``/private/specialuse`` (RFC 6154 §4, its special-use attributes).
- Limits (``storage.api.MetadataLimits``): a value over 64 KiB is ``NO [METADATA MAXSIZE
  65536]``; more than 1000 entries on a mailbox (or the server), 10,000 or 4 MiB for the
  account are ``NO [METADATA TOOMANY]`` (§4.3). ``[METADATA NOPRIVATE]`` is never needed:
  every mailbox takes private entries.
- RENAME keeps a mailbox's entries (they belong to its id); RENAME INBOX copies INBOX's
  entries to the new mailbox and INBOX keeps them (§4.1); DELETE drops them.
- Unsolicited METADATA responses (§4.4.2: entry names only, :func:`changed_lines`) go to a
  session that asked NOTIFY for MailboxMetadataChange or ServerMetadataChange (RFC 5465
  §5.6, §5.7; handlers/notify.py), never for its own changes; ENABLE METADATA alone asks
  for nothing here (§4.4 makes them optional), so GETMETADATA is how others see a change.

Values are bytes: a value with a NUL goes out as literal8 (``~{n}``, §5 ``value``), one
that is not short plain text as a literal.
"""

from __future__ import annotations

import re
from bisect import bisect_left

from ...errors import AccountNotFound, MailboxNotFound
from ...storage.api import MetadataLimits, MetadataTooLarge, MetadataTooMany
from ...storage.models import Mailbox
from ..errors import No, nonexistent
from ..parser.metadata import GetMetadataArgs, SetMetadataArgs
from ..responses import Reply, mailbox_wire
from ..session import Session

CAPS = ("METADATA", "METADATA-SERVER")  # RFC 5464 §1: mailbox and server entries
LIMITS = MetadataLimits()

ADMIN = "/shared/admin"
SPECIALUSE = "/private/specialuse"

# Short printable ASCII goes out as a quoted string (with \\ and \" escaped, RFC 3501 §9).
_QUOTABLE = re.compile(rb'[\x20-\x7e]{0,200}')
# ASTRING-CHAR (RFC 3501 §9): an entry name made of these goes out as an atom.
_ASTRING = re.compile(rb'[^\x00-\x20\x7f-\xff(){%*"\\]+')


async def _target(s: Session, name: str) -> Mailbox | None:
    """The mailbox named, or None for "" (the server, §4.2); NO [NONEXISTENT] when absent."""
    if name == "":
        return None
    mb = await s.store.get_mailbox(s.account_id, name)
    if mb is None:
        raise nonexistent()
    return mb


def computed(s: Session, mb: Mailbox | None) -> dict[str, bytes]:
    """The read-only entries the server makes up for the server (mb None) or a mailbox."""
    if mb is None:
        admin = s.settings.admin_contact
        return {ADMIN: admin.encode()} if admin else {}
    if mb.special_use:
        return {SPECIALUSE: mb.special_use.encode()}  # RFC 6154 §4: the attributes, space-separated
    return {}


def _below(name: str, root: str, depth: int | None) -> bool:
    """Is ``name`` below ``root`` within ``depth`` levels (§4.2.2; None: infinity)?"""
    if depth == 0 or not name.startswith(root + "/"):
        return False
    return depth is None or "/" not in name[len(root) + 1:]


def _quoted(raw: bytes) -> bytes:
    return b'"' + raw.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


def _entry_name(name: str) -> bytes:
    raw = name.encode("ascii")
    return raw if _ASTRING.fullmatch(raw) else _quoted(raw)


def _value(value: bytes) -> bytes:
    if b"\x00" in value:
        return b"~{%d}\r\n" % len(value) + value  # literal8
    if _QUOTABLE.fullmatch(value):
        return _quoted(value)
    return b"{%d}\r\n" % len(value) + value


async def getmetadata(s: Session, a: GetMetadataArgs) -> Reply:
    """§4.2: each entry asked for, then (DEPTH 1 or infinity) the entries below it. With
    DEPTH 0 an entry without a value is answered NIL; below it only entries that exist
    are listed (Dovecot answers the same). MAXSIZE leaves out longer values and the
    tagged OK says the longest one left out: ``[METADATA LONGENTRIES n]`` (§4.2.1)."""
    mb = await _target(s, a.mailbox)
    found: dict[str, bytes] = dict(await s.store.get_metadata(s.account_id, mb.id if mb else None,
                                                              a.entries, a.depth))
    for name, fixed in computed(s, mb).items():
        if any(name == e or _below(name, e, a.depth) for e in a.entries):
            found[name] = fixed
    items: list[bytes] = []
    sent: set[str] = set()
    longest = 0
    ordered = sorted(found)
    for root in a.entries:
        below: list[str] = []
        if a.depth != 0:  # the names from "root/" up to "root0" ("0" follows "/")
            span = ordered[bisect_left(ordered, root + "/"):bisect_left(ordered, root + "0")]
            below = [n for n in span if _below(n, root, a.depth)]
        for name in [root, *below]:
            if name in sent:
                continue
            sent.add(name)
            got = found.get(name)
            if got is None:
                if a.depth == 0:
                    items.append(_entry_name(name) + b" NIL")
                continue
            if a.maxsize is not None and len(got) > a.maxsize:
                longest = max(longest, len(got))
                continue
            items.append(_entry_name(name) + b" " + _value(got))
    code = b"METADATA LONGENTRIES %d" % longest if longest else None
    if not items:
        return Reply("Getmetadata completed", code=code)
    line = b"* METADATA " + mailbox_wire(a.mailbox) + b" (" + b" ".join(items) + b")\r\n"
    return Reply("Getmetadata completed", code=code, untagged=[line])


async def copy_entries(s: Session, src_id: int, dst_id: int) -> None:
    """RENAME INBOX: the new mailbox gets a copy of INBOX's entries and INBOX keeps them
    (§4.1). Within the account's limits: past them the RENAME goes on without the copy,
    which §4.1 asks for with a SHOULD, rather than fail after its messages moved."""
    entries = await s.store.get_metadata(s.account_id, src_id, ("/private", "/shared"), None)
    if not entries:
        return
    try:
        _own(s, await s.store.set_metadata(s.account_id, dst_id, dict(entries), LIMITS))
    except (MetadataTooLarge, MetadataTooMany):
        s.ctx.log.info("%s rename INBOX: its metadata entries not copied (over the account's limits)", s.tag)


def _own(s: Session, change: int) -> None:
    """RFC 5465 §5: the session's NOTIFY does not report the change it made itself."""
    if change and s.notify is not None:
        s.notify.own_metadata(change)


def changed_lines(mailbox: str, names: list[str], per_line: int = 100) -> list[bytes]:
    """Unsolicited ``* METADATA mailbox entry ...`` responses naming changed (or removed)
    entries without their values (§4.4.2, §5 ``entry-list``; "" is the server)."""
    return [b"* METADATA " + mailbox_wire(mailbox) + b" " + b" ".join(_entry_name(n) for n in names[i:i + per_line])
            + b"\r\n" for i in range(0, len(names), per_line)]


async def setmetadata(s: Session, a: SetMetadataArgs) -> Reply:
    """§4.3: every entry set (a value) or removed (NIL), all or none, committed before OK."""
    mb = await _target(s, a.mailbox)
    fixed = ADMIN if mb is None else SPECIALUSE
    for name, _ in a.entries:
        if name == fixed:
            raise No(f"The {name} entry cannot be changed", b"CANNOT")
    try:
        _own(s, await s.store.set_metadata(s.account_id, mb.id if mb else None, dict(a.entries), LIMITS))
    except MetadataTooLarge as exc:
        raise No("Metadata value too large", b"METADATA MAXSIZE %d" % exc.limit) from None
    except MetadataTooMany:
        raise No("Too many metadata entries, or too much metadata, for this account",
                 b"METADATA TOOMANY") from None
    except (MailboxNotFound, AccountNotFound):
        raise nonexistent() from None  # deleted meanwhile by another session
    return Reply("Setmetadata completed")
