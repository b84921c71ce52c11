"""Moving in and out: mbox files and Maildirs, read and written with ``mailbox``.

Line ends: the store keeps CRLF (what SMTP delivers and IMAP must send); mbox files
and Maildirs written by Unix tools use LF. Import turns every bare LF into CRLF,
export turns CRLF back into LF, so a message with LF line ends comes back byte for
byte. Flags: mbox ``Status``/``X-Status`` letters and Maildir info letters map to
IMAP flags (Maildir ``P``assed ↔ ``$Forwarded``). On mbox export the status headers
are only rewritten when the stored flags differ from what the headers already say,
so an mbox → store → mbox round trip keeps the bytes.
"""

from __future__ import annotations

import asyncio
import email.utils
import mailbox
import os
import re
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from .errors import MailboxExists, MessageDamaged, UsageError
from .news.account import is_reserved
from .storage.models import HIERARCHY_SEPARATOR, MessageInfo

BATCH = 64  # appends in flight at once: they share group commits

MBOX_TO_FLAG = {"R": "\\Seen", "A": "\\Answered", "F": "\\Flagged", "D": "\\Deleted"}
MAILDIR_TO_FLAG = {"S": "\\Seen", "R": "\\Answered", "F": "\\Flagged", "T": "\\Deleted", "D": "\\Draft",
                   "P": "$Forwarded"}
FLAG_TO_MBOX = {v: k for k, v in MBOX_TO_FLAG.items()}
FLAG_TO_MAILDIR = {v: k for k, v in MAILDIR_TO_FLAG.items()}

_BARE_LF = re.compile(rb"(?<!\r)\n")


def to_crlf(data: bytes) -> bytes:
    return _BARE_LF.sub(b"\r\n", data)


def to_lf(data: bytes) -> bytes:
    return data.replace(b"\r\n", b"\n")


def progress_bar(total: int | None, desc: str) -> Any:
    """A tqdm bar on a terminal, nothing otherwise (scripts and tests read stdout)."""
    if sys.stderr.isatty():
        from tqdm import tqdm

        return tqdm(total=total, desc=desc, unit="msg", file=sys.stderr)
    return None


def _mbox_date(msg: mailbox.mboxMessage) -> datetime | None:
    # The From_ line's date is the delivery time: the closest thing to IMAP's INTERNALDATE.
    frm = msg.get_from() or ""
    parts = frm.split(None, 1)
    if len(parts) == 2:
        try:
            return datetime.strptime(parts[1].strip(), "%a %b %d %H:%M:%S %Y").replace(tzinfo=timezone.utc)
        except ValueError:
            pass
    return None


def _iter_mbox(path: Path) -> Iterator[tuple[str, bytes, frozenset[str], datetime | None]]:
    try:
        box = mailbox.mbox(path, create=False)
        keys = box.keys()
    except (OSError, mailbox.Error) as exc:
        raise UsageError(f"cannot read mbox {path}: {exc}") from None
    for key in keys:
        raw = box.get_bytes(key)
        msg = box.get_message(key)
        flags = frozenset(MBOX_TO_FLAG[c] for c in msg.get_flags() if c in MBOX_TO_FLAG)
        yield "", raw, flags, _mbox_date(msg)


def _maildir_folders(path: Path) -> list[tuple[str, mailbox.Maildir]]:
    """The Maildir itself (INBOX) and its Maildir++ subfolders (``.Sent``, ``.a.b``)."""
    try:
        root = mailbox.Maildir(path, factory=None, create=False)
        names = root.list_folders()
    except (OSError, mailbox.Error) as exc:
        raise UsageError(f"cannot read Maildir {path}: {exc}") from None
    out = [("", root)]
    for name in sorted(names):
        out.append((name.replace(".", HIERARCHY_SEPARATOR), root.get_folder(name)))
    return out


def _iter_maildir(path: Path) -> Iterator[tuple[str, bytes, frozenset[str], datetime | None]]:
    for folder, box in _maildir_folders(path):
        msgs = {key: box.get_message(key) for key in box.keys()}
        for key in sorted(msgs, key=lambda k: (msgs[k].get_date(), _natural(k))):
            msg = msgs[key]
            raw = box.get_bytes(key)
            flags = frozenset(MAILDIR_TO_FLAG[c] for c in msg.get_flags() if c in MAILDIR_TO_FLAG)
            yield folder, raw, flags, datetime.fromtimestamp(msg.get_date(), timezone.utc)


def _natural(name: str) -> list[Any]:
    """Sort key that orders ``1.M9P`` before ``1.M10P`` (delivery order in common names)."""
    # ASCII digits only: "²".isdigit() is True and int("²") raises.
    return [int(t) if t.isascii() and t.isdigit() else t for t in re.split(r"([0-9]+)", name)]


def _not_reserved(address: str) -> None:
    """The newsgroups' internal account is no user's: mail imported into a group would be
    an article without a history row or overview, and its export is no user's mail (the
    articles move with the store: backup, migrate-store)."""
    if is_reserved(address):
        raise UsageError(f"{address} is the newsgroups' internal account, not a user: its articles move "
                         f"with the store (postroom backup, migrate-store), not by import/export")


async def import_mail(store: Any, address: str, fmt: str, path: Path, mailbox_name: str | None) -> int:
    _not_reserved(address)
    account = await store.get_account(address)
    if account is None:
        raise UsageError(f"no such account: {address}")
    if not path.exists():
        raise UsageError(f"{path} does not exist")
    if fmt == "mbox":
        if not path.is_file():
            raise UsageError(f"{path} is not an mbox file")
        _check_mbox(path)
        source = _iter_mbox(path)
    else:
        if not (path / "cur").is_dir() or not (path / "new").is_dir():
            raise UsageError(f"{path} is not a Maildir (no cur/ and new/)")
        source = _iter_maildir(path)
    base = mailbox_name or "INBOX"
    existing = {m.name for m in await store.list_mailboxes(account.id)}
    bar = progress_bar(None, f"import {path.name}")
    count = 0
    pending: list[Any] = []

    async def flush() -> None:
        nonlocal count
        if pending:
            await asyncio.gather(*pending)
            count += len(pending)
            if bar is not None:
                bar.update(len(pending))
            pending.clear()

    try:
        for folder, raw, flags, date in source:
            target = base if not folder else (folder if base == "INBOX" else f"{base}{HIERARCHY_SEPARATOR}{folder}")
            if target not in existing and target.upper() != "INBOX":
                await flush()
                await _create_with_parents(store, account.id, target, existing)
            pending.append(store.append(account.id, target, to_crlf(raw), flags, date))
            if len(pending) >= BATCH:
                await flush()
        await flush()
    finally:
        if bar is not None:
            bar.close()
    return count


def _check_mbox(path: Path) -> None:
    with open(path, "rb") as f:
        head = f.read(5)
    if head and head != b"From ":
        raise UsageError(f"{path} is not an mbox file (it does not start with a 'From ' line)")


async def _create_with_parents(store: Any, account_id: int, name: str, existing: set[str]) -> None:
    parts = name.split(HIERARCHY_SEPARATOR)
    for i in range(1, len(parts) + 1):
        sub = HIERARCHY_SEPARATOR.join(parts[:i])
        if sub not in existing:
            try:
                await store.create_mailbox(account_id, sub)
            except MailboxExists:
                pass
            existing.add(sub)


# -- export -------------------------------------------------------------------------
_STATUS_LINE = re.compile(rb"^(?:Status|X-Status):[^\n]*\n", re.IGNORECASE | re.MULTILINE)


def _mbox_bytes(raw_lf: bytes, flags: frozenset[str]) -> bytes:
    """The message with Status/X-Status headers saying ``flags`` (as Python's mailbox writes them)."""
    probe = mailbox.mboxMessage(raw_lf)
    want = "".join(sorted(FLAG_TO_MBOX[f] for f in flags if f in FLAG_TO_MBOX))
    have = "".join(sorted(c for c in probe.get_flags() if c in "RAFD"))
    if want == have:
        return raw_lf
    head, sep, body = raw_lf.partition(b"\n\n")
    if not sep:
        head, body = raw_lf.rstrip(b"\n"), b""
    head = _STATUS_LINE.sub(b"", head + b"\n").rstrip(b"\n")
    status = "".join(c for c in "RO" if c in want + "O")
    xstatus = "".join(c for c in "DFA" if c in want)
    extra = f"\nStatus: {status}".encode() + (f"\nX-Status: {xstatus}".encode() if xstatus else b"")
    return head + extra + b"\n\n" + body


def _from_line(raw: bytes, msg: MessageInfo) -> str:
    sender = "MAILER-DAEMON"
    m = re.search(rb"^Return-Path:\s*<([^>\r\n]*)>", raw, re.IGNORECASE | re.MULTILINE)
    if m and m.group(1):
        sender = m.group(1).decode("ascii", "replace")
    else:
        frm = re.search(rb"^From:\s*([^\r\n]*)", raw, re.IGNORECASE | re.MULTILINE)
        if frm:
            addr = email.utils.parseaddr(frm.group(1).decode("ascii", "replace"))[1]
            sender = addr or sender
    return f"{sender} {time.strftime('%a %b %d %H:%M:%S %Y', time.gmtime(msg.internaldate.timestamp()))}"


async def export_mail(store: Any, address: str, fmt: str, out: Path, damaged: list[str] | None = None) -> int:
    """Write the account's mail to ``out``; return how many messages were written.

    A message whose bytes cannot be read back (MessageDamaged) stops the export, unless
    ``damaged`` is given: then it is skipped and described there, and the rest goes out.
    """
    _not_reserved(address)
    account = await store.get_account(address)
    if account is None:
        raise UsageError(f"no such account: {address}")
    boxes = await store.list_mailboxes(account.id)
    total = 0
    for mb in boxes:
        total += (await store.mailbox_status(mb.id)).messages
    bar = progress_bar(total, f"export {address}")
    count = 0
    try:
        out.mkdir(parents=True, exist_ok=True)
        if fmt == "maildir":
            root = mailbox.Maildir(out, factory=None, create=True)
            for sub in ("tmp", "new", "cur"):  # Maildir() creates them only for a new directory
                (out / sub).mkdir(exist_ok=True)
        for mb in boxes:
            msgs = await store.list_messages(mb.id)
            if fmt == "mbox":
                fname = "INBOX" if mb.name == "INBOX" else mb.name.replace(HIERARCHY_SEPARATOR, ".")
                target: Any = mailbox.mbox(out / f"{fname}.mbox", create=True)
            else:
                target = root if mb.name == "INBOX" else root.add_folder(
                    mb.name.replace(HIERARCHY_SEPARATOR, "."))
            if fmt == "mbox":
                target.lock()
            try:
                for msg in msgs:
                    try:
                        raw = to_lf(await store.read_message(msg))
                    except MessageDamaged as exc:
                        if damaged is None:
                            raise
                        damaged.append(f"{mb.name} uid {msg.uid}: {exc}")
                        continue
                    if fmt == "mbox":
                        # bytes, not a Message object: mailbox would re-generate the headers
                        target.add(b"From " + _from_line(raw, msg).encode("ascii", "replace") + b"\n"
                                   + _mbox_bytes(raw, msg.flags))
                    else:
                        _maildir_write(target, raw, msg)
                    count += 1
                    if bar is not None:
                        bar.update(1)
                if fmt == "mbox":
                    target.flush()
            finally:
                if fmt == "mbox":
                    target.unlock()
    finally:
        if bar is not None:
            bar.close()
    return count


def _maildir_write(box: mailbox.Maildir, raw: bytes, msg: MessageInfo) -> None:
    """Write into cur/ with the flags in the info part and the internal date as mtime.

    Written directly rather than through ``Maildir.add(MaildirMessage)``, which would
    re-generate the headers and change the bytes.
    """
    root = Path(box._path)  # type: ignore[attr-defined]
    flags = "".join(sorted(FLAG_TO_MAILDIR[f] for f in msg.flags if f in FLAG_TO_MAILDIR))
    ts = msg.internaldate.timestamp()
    uniq = f"{int(ts)}.M{msg.uid}P{os.getpid()}R{os.urandom(4).hex()}.postroom"
    tmp = root / "tmp" / uniq
    with open(tmp, "wb") as f:
        f.write(raw)
        f.flush()
        os.fsync(f.fileno())
    os.utime(tmp, (ts, ts))
    os.rename(tmp, root / "cur" / f"{uniq}:2,{flags}")
