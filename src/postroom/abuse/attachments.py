"""Refusing executable attachments (the ``[attachments]`` section, off by default).

Executables by mail are how most malware arrives and almost never how people exchange
programs, so a server may refuse them outright: ``550 5.7.1`` naming the attachment.
The message is parsed with :mod:`postroom.mime` (the parser the store uses, so we judge
the parts a mail client will show; it is bounded and never raises, where the stdlib
``email`` parser recurses once per nesting level). Each leaf part is judged by its file
name's extension (``Content-Disposition`` filename or ``Content-Type`` name, RFC 2231
decoded) and by its content: the magic numbers of Windows PE (``MZ`` with ``PE\\0\\0`` at the offset the DOS header gives), ELF and Mach-O.
ZIP archives are opened (stdlib :mod:`zipfile`) and their member names and contents
judged the same way, nested ZIPs too, within bounds that keep a ZIP bomb harmless:
``max_depth`` levels of nesting (a deeper one is refused, legitimate mail does not nest
archives that deep), ``max_members`` names per archive and ``max_unpacked`` octets
decompressed per message (past those the rest is not inspected, and the message
passes: the limits protect us, they are not a verdict). Only the first octets of each
member are decompressed for the magic check, except for nested ZIPs, which are read
whole up to the remaining ``max_unpacked`` budget. Encrypted members are judged by name
only; an archive Python cannot read is left to the virus scanner.

:func:`inspect` is I/O-free: it takes the message and returns the offending attachment's
name, so the rules are tested without a server; the check runs it on a worker thread
for messages over 64 KB, so that a large message does not stall other sessions.
"""

from __future__ import annotations

import asyncio
import io
import lzma
import struct
import zipfile
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .. import log
from ..config import Config, parse_size
from ..mime.model import Part
from ..mime.parse import MAX_DEPTH as MAX_MIME_DEPTH
from ..mime.parse import parse as mime_parse
from ..mime.transfer import UnknownCte, decode_transfer
from ..smtp.replies import Reply, r
from .guard import Check, ConnInfo, Content
from .scanning import applies, cached, smtp_listeners

if TYPE_CHECKING:
    from ..context import ServerContext
    from ..smtp.transaction import Peer, Transaction

logger = log.get("abuse")

# Windows runs these on a double click (or through the Windows Script Host, the HTML
# Application host, the installer, the shell); the shortcut and disk-image formats
# (lnk, iso, img, vhd) carry them past Mark-of-the-Web. Office macro documents (docm …)
# are left to the virus scanner: people do mail them.
DEFAULT_EXTENSIONS = (
    "ade", "adp", "app", "appx", "appxbundle", "bas", "bat", "cab", "chm", "cmd", "com", "cpl", "dll", "exe",
    "gadget", "hta", "img", "inf", "ins", "iso", "isp", "jar", "js", "jse", "lnk", "mde", "msc", "msi",
    "msix", "msp", "mst", "pif", "ps1", "psc1", "reg", "scf", "scr", "sct", "shb", "shs", "sys", "vb", "vbe",
    "vbs", "vhd", "vhdx", "vxd", "ws", "wsc", "wsf", "wsh", "xll",
)
MAGIC_READ = 64 * 1024  # enough for a PE header at any sane e_lfanew
INLINE = 64 * 1024  # larger messages are inspected on a worker thread, off the event loop
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
# What a damaged or hostile archive raises from zipfile and its decompressors (zlib.error
# for deflate, OSError for bz2, LZMAError for lzma; RuntimeError for an encrypted member).
_DAMAGED: tuple[type[Exception], ...] = (zipfile.BadZipFile, zlib.error, lzma.LZMAError, OSError, ValueError,
                                         EOFError, NotImplementedError, RuntimeError)


@dataclass(frozen=True, slots=True)
class AttachmentSettings:
    enabled: bool = False
    extensions: frozenset[str] = frozenset(DEFAULT_EXTENSIONS)
    check_content: bool = True  # magic numbers, not only names
    archives: bool = True  # look inside ZIP archives
    max_depth: int = 3  # a ZIP inside a ZIP inside a ZIP; deeper is refused
    max_members: int = 1000  # names inspected per archive
    max_unpacked: int = 20 * 1024 * 1024  # octets decompressed per message, all archives together
    listeners: tuple[str, ...] | None = None  # None: every SMTP and submission listener


def parse(cfg: Config, problems: list[str]) -> AttachmentSettings:
    sec = cfg.section("attachments", problems)
    d = AttachmentSettings()
    exts = frozenset(e.lower().lstrip(".") for e in sec.strings("extensions", sorted(d.extensions)))
    bad = sorted(e for e in exts if not e or "." in e or "/" in e)
    if bad:
        sec.problem("extensions", f"give bare extensions such as \"exe\", not {bad[0]!r}")
    ints = {}
    for key in ("max_depth", "max_members"):
        ints[key] = sec.get(key, int, getattr(d, key))
        if ints[key] < 1:
            sec.problem(key, "must be at least 1")
            ints[key] = getattr(d, key)
    unpacked = sec.convert("max_unpacked", parse_size, d.max_unpacked)
    listeners = smtp_listeners(sec, cfg)
    s = AttachmentSettings(
        enabled=sec.get("enabled", bool, d.enabled), extensions=exts,
        check_content=sec.get("check_content", bool, d.check_content), archives=sec.get("archives", bool, d.archives),
        max_depth=ints["max_depth"], max_members=ints["max_members"], max_unpacked=max(unpacked, 0),
        listeners=listeners,
    )
    sec.finish()
    return s


def check_settings(cfg: Config, problems: list[str]) -> None:
    parse(cfg, problems)


def settings_for(ctx: ServerContext) -> AttachmentSettings:
    return cached(ctx, "attachments", AttachmentSettings, parse)


def executable_magic(data: bytes) -> str | None:
    """The executable format ``data`` starts with, if any."""
    if data[:4] == b"\x7fELF":
        return "ELF"
    if data[:4] in (b"\xfe\xed\xfa\xce", b"\xfe\xed\xfa\xcf", b"\xce\xfa\xed\xfe", b"\xcf\xfa\xed\xfe"):
        return "Mach-O"
    if data[:2] == b"MZ" and len(data) >= 64:
        # The DOS header's e_lfanew (offset 0x3c) points at the PE signature; a DOS-only
        # program (no PE header) still runs on Windows through its stub, so MZ with a
        # full DOS header is enough.
        (lfanew,) = struct.unpack_from("<I", data, 0x3C)
        if data[lfanew:lfanew + 4] == b"PE\0\0":
            return "PE"
        return "DOS executable"
    return None


@dataclass(frozen=True, slots=True)
class Finding:
    name: str  # the attachment (with "archive.zip/member" for what was inside)
    why: str  # "extension", "PE", "ELF", "archive nested too deep" …


class _Budget:
    __slots__ = ("left",)

    def __init__(self, octets: int) -> None:
        self.left = octets


def _bad_name(name: str, s: AttachmentSettings) -> bool:
    base = name.replace("\\", "/").rsplit("/", 1)[-1].strip().rstrip(". ").lower()
    return "." in base and base.rsplit(".", 1)[1] in s.extensions


def _zip(data: bytes, label: str, depth: int, s: AttachmentSettings, budget: _Budget) -> Finding | None:
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except _DAMAGED:
        return None  # not a ZIP Python can read: left to the virus scanner
    with zf:
        for info in zf.infolist()[: s.max_members]:
            if info.is_dir():
                continue
            inner = f"{label}/{info.filename}"
            if _bad_name(info.filename, s):
                return Finding(inner, "extension")
            if info.flag_bits & 0x1 or budget.left <= 0:
                continue  # encrypted: the name is all we can judge
            try:
                with zf.open(info) as f:
                    head = f.read(min(budget.left, MAGIC_READ))
                    budget.left -= len(head)
                    if s.check_content and (kind := executable_magic(head)):
                        return Finding(inner, kind)
                    if head[:4] not in _ZIP_MAGIC:
                        continue
                    if depth >= s.max_depth:
                        return Finding(inner, "archive nested too deep")
                    rest = f.read(budget.left + 1)  # bounded: a bomb stops at the budget
                    if len(rest) > budget.left:
                        budget.left = 0  # larger than what is left to unpack: not opened
                        continue
                    budget.left -= len(rest)
            except _DAMAGED:
                continue  # damaged member (or a CRC mismatch): left to the virus scanner
            if found := _zip(head + rest, inner, depth + 1, s, budget):
                return found
    return None


def _filename(part: Part) -> str | None:
    """Content-Disposition's filename, else Content-Type's name (both RFC 2231 decoded)."""
    for key, value in part.disposition_params:
        if key == "filename" and value:
            return value
    return part.param("name") or None


def inspect(message: bytes, s: AttachmentSettings) -> Finding | None:
    """The first attachment of ``message`` that the rules refuse, or None."""
    budget = _Budget(s.max_unpacked)
    stack: list[tuple[Part, int]] = [(mime_parse(message).root, 0)]
    while stack:
        part, depth = stack.pop()
        if part.children:  # a multipart, or an attached message/rfc822
            stack.extend((c, depth + 1) for c in reversed(part.children))
            continue
        if part.is_multipart and depth >= MAX_MIME_DEPTH:
            # The parser stops descending at its depth limit and keeps the rest opaque:
            # an attachment must not hide below it.
            return Finding("the message", "MIME nested too deep")
        name = _filename(part)
        label = name or f"unnamed {part.type}/{part.subtype} part"
        if name and _bad_name(name, s):
            return Finding(label, "extension")
        if not name and part.type in ("text", "message", "multipart"):
            continue  # the message text itself (or an empty or broken multipart)
        if not (s.check_content or s.archives):
            continue
        try:
            data = decode_transfer(message[part.body_start:part.body_end], part.encoding)
        except UnknownCte:
            continue  # an encoding nobody can undo: no client can open it either
        if s.check_content and (kind := executable_magic(data[:MAGIC_READ])):
            return Finding(label, kind)
        if s.archives and data[:4] in _ZIP_MAGIC and (found := _zip(data, label, 1, s, budget)):
            return found
    return None


def _safe(name: str) -> str:
    """The name as it may appear in an SMTP reply: printable ASCII, bounded."""
    text = "".join(c if " " <= c <= "~" else "?" for c in name)
    return text if len(text) <= 80 else text[:77] + "..."


class AttachmentCheck(Check):
    name = "attachments"

    def __init__(self, settings: AttachmentSettings) -> None:
        self.s = settings

    async def data(self, peer: Peer, txn: Transaction, content: Content) -> Reply | None:
        if len(content.message) <= INLINE:
            found = inspect(content.message, self.s)
        else:
            found = await asyncio.to_thread(inspect, content.message, self.s)
        if found is None:
            return None
        name = _safe(found.name)
        content.notes.append(f"attachments=refused({found.why})")
        if found.why == "archive nested too deep":
            return r(550, "5.7.1", f"Archive nested too deep to inspect: {name}")
        if found.why == "MIME nested too deep":
            return r(550, "5.7.1", "MIME structure nested too deep to inspect")
        return r(550, "5.7.1", f"Executable attachments are not accepted: {name}")


def for_connection(ctx: ServerContext, info: ConnInfo) -> Check | None:
    s = settings_for(ctx)
    if not s.enabled or not applies(s.listeners, info):
        return None
    return AttachmentCheck(s)
