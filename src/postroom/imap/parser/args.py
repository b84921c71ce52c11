"""Argument parsers for every command, grouped by the state they belong to (RFC 3501 §6).

Each takes a :class:`Reader` just after the command name and returns a typed
argument record, consuming the whole command (``r.end()``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ...storage.models import FlagOp
from .. import names
from ..errors import No, ParseError
from .base import Reader
from .fetch import FetchAtt, parse_fetch_atts
from .search import Node, criteria_saving, parse_search_return
from .seqset import SequenceSet


def no_args(r: Reader) -> None:
    r.end()


def mailbox_name(raw: bytes) -> str:
    """mailbox = "INBOX" / astring; INBOX is case-insensitive (§5.1), the rest mUTF-7."""
    if raw.upper() == b"INBOX":
        return "INBOX"
    try:
        name = names.decode(raw)  # modified UTF-7, or UTF-8 after ENABLE UTF8=ACCEPT (RFC 6855 §3)
    except names.BadName as exc:
        raise No(str(exc), b"CANNOT") from None
    if name.upper().startswith("INBOX/") and name[:5] != "INBOX":
        name = "INBOX" + name[5:]
    return name


def _mailbox(r: Reader) -> str:
    return mailbox_name(r.astring())


# -- not authenticated (§6.2) -------------------------------------------------------
@dataclass(frozen=True, slots=True)
class LoginArgs:
    user: bytes
    password: bytes


def login(r: Reader) -> LoginArgs:
    r.sp()
    user = r.astring()
    r.sp()
    password = r.astring()
    r.end()
    return LoginArgs(user, password)


@dataclass(frozen=True, slots=True)
class AuthenticateArgs:
    mechanism: str
    initial: bytes | None  # RFC 4959 SASL-IR; b"=" means an empty response


def authenticate(r: Reader) -> AuthenticateArgs:
    r.sp()
    mech = r.keyword()
    initial = None
    if r.take(b" "):
        initial = r.buf[r.pos :].strip()
        if not initial:
            raise ParseError("Empty initial response")
        r.pos = len(r.buf)
    r.end()
    return AuthenticateArgs(mech, initial)


# -- authenticated (§6.3) ------------------------------------------------------------
def one_mailbox(r: Reader) -> str:
    r.sp()
    name = _mailbox(r)
    r.end()
    return name


def two_mailboxes(r: Reader) -> tuple[str, str]:
    r.sp()
    a = _mailbox(r)
    r.sp()
    b = _mailbox(r)
    r.end()
    return a, b


@dataclass(frozen=True, slots=True)
class ListArgs:
    reference: str
    pattern: str


def list_args(r: Reader) -> ListArgs:
    r.sp()
    ref = r.astring()
    r.sp()
    pat = r.list_mailbox()
    r.end()
    try:
        return ListArgs(names.decode(ref), names.decode(pat))
    except names.BadName as exc:
        raise No(str(exc), b"CANNOT") from None


STATUS_ITEMS = ("MESSAGES", "RECENT", "UIDNEXT", "UIDVALIDITY", "UNSEEN",
                "HIGHESTMODSEQ",  # RFC 7162 §3.1.6
                "SIZE",  # RFC 8438
                "APPENDLIMIT",  # RFC 7889
                "MAILBOXID")  # RFC 8474 §4.3
QUOTA_STATUS_ITEMS = ("DELETED", "DELETED-STORAGE")  # RFC 9208 §4.2, with QUOTA=RES-*


def status_atts(r: Reader) -> list[str]:
    """"(" status-att *(SP status-att) ")": shared by STATUS and LIST's RETURN (STATUS …) (RFC 5819)."""
    items = r.paren_list(r.keyword)
    if not items:
        raise ParseError("Empty STATUS item list")
    for item in items:
        if item not in STATUS_ITEMS and item not in QUOTA_STATUS_ITEMS:
            raise ParseError("Unknown STATUS item")
    return items


def status(r: Reader) -> tuple[str, list[str]]:
    r.sp()
    name = _mailbox(r)
    r.sp()
    items = status_atts(r)
    r.end()
    return name, items


@dataclass(frozen=True, slots=True)
class CatPart:
    """One part of RFC 4469 CATENATE: a TEXT literal's bytes, or an IMAP URL (RFC 5092)."""

    text: bytes | None = None
    url: bytes | None = None


@dataclass(frozen=True, slots=True)
class AppendMessage:
    flags: frozenset[str]
    date: datetime | None
    message: bytes  # the literal; b"" when ``catenate`` gives the parts
    catenate: tuple[CatPart, ...] = ()


@dataclass(frozen=True, slots=True)
class AppendArgs:
    mailbox: str
    messages: tuple[AppendMessage, ...]  # RFC 3502 MULTIAPPEND: one or more

    # The first (usually only) message, for code written before MULTIAPPEND.
    @property
    def flags(self) -> frozenset[str]:
        return self.messages[0].flags

    @property
    def date(self) -> datetime | None:
        return self.messages[0].date

    @property
    def message(self) -> bytes:
        return self.messages[0].message


def append(r: Reader) -> AppendArgs:
    """append = "APPEND" SP mailbox 1*append-message (RFC 3502 §6, RFC 4466 §2.3)
    append-message = [SP flag-list] [SP date-time] SP append-data"""
    r.sp()
    name = _mailbox(r)
    messages = [_append_message(r)]
    while not r.at_end():
        messages.append(_append_message(r))
    r.end()
    return AppendArgs(name, tuple(messages))


def _append_message(r: Reader) -> AppendMessage:
    r.sp()
    flags: list[str] = []
    when = None
    if r.peek() == 0x28:
        flags = r.flag_list()
        r.sp()
    if r.peek() == 0x22:
        when = r.date_time()
        r.sp()
    if "\\Recent" in flags:
        raise ParseError("\\Recent cannot be set")  # §2.3.2: server-managed
    if r.peek() in (0x7B, 0x7E):
        message = r.literal8()  # RFC 3516 §4.4: "~{n}" for a message with NULs or binary parts
        return AppendMessage(frozenset(flags), when, message)
    if r.take_word(b"UTF8"):
        # RFC 6855 §4: append-data =/ "UTF8" SP "(" literal8 ")", a message whose header may
        # hold UTF-8; only after ENABLE UTF8=ACCEPT, else BAD.
        if not names.utf8():
            raise ParseError("UTF8 needs ENABLE UTF8=ACCEPT")
        r.sp()
        r.expect(b"(")
        if r.peek() != 0x7E:
            raise ParseError("UTF8 needs a literal8")
        message = r.literal8()
        r.expect(b")")
        return AppendMessage(frozenset(flags), when, message)
    if r.take_word(b"CATENATE"):
        # RFC 4469 §5: "CATENATE" SP "(" cat-part *(SP cat-part) ")"
        r.sp()
        r.expect(b"(")
        parts = [_cat_part(r)]
        while r.take(b" "):
            parts.append(_cat_part(r))
        r.expect(b")")
        return AppendMessage(frozenset(flags), when, b"", tuple(parts))
    raise ParseError("APPEND needs the message as a literal")


def _cat_part(r: Reader) -> CatPart:
    """cat-part = text-literal / url; text-literal = "TEXT" SP literal; url = "URL" SP astring."""
    if r.take_word(b"TEXT "):
        return CatPart(text=r.literal())
    if r.take_word(b"URL "):
        return CatPart(url=r.astring())
    raise ParseError("Expected TEXT or URL")


# -- selected (§6.4) ----------------------------------------------------------------
def seqset_only(r: Reader) -> SequenceSet:
    r.sp()
    s = SequenceSet.parse(r)
    r.end()
    return s


@dataclass(frozen=True, slots=True)
class FetchArgs:
    seqset: SequenceSet
    atts: tuple[FetchAtt, ...]


# Parsed FETCH attribute lists by their text: a client sends the same few again and again.
_FETCH_ATTS: dict[bytes, tuple[FetchAtt, ...]] = {}


def fetch(r: Reader) -> FetchArgs:
    r.sp()
    s = SequenceSet.parse(r)
    r.sp()
    text = r.buf[r.pos:]
    atts = _FETCH_ATTS.get(text)
    if atts is None:
        atts = tuple(parse_fetch_atts(r))
        r.end()
        if len(text) <= 1024:  # only what parsed: errors are answered as before
            if len(_FETCH_ATTS) >= 256:
                _FETCH_ATTS.clear()
            _FETCH_ATTS[text] = atts
    else:
        r.pos = len(r.buf)
    return FetchArgs(s, atts)


@dataclass(frozen=True, slots=True)
class StoreArgs:
    seqset: SequenceSet
    op: FlagOp
    silent: bool
    flags: frozenset[str]


_STORE_OPS = {"FLAGS": FlagOp.SET, "+FLAGS": FlagOp.ADD, "-FLAGS": FlagOp.REMOVE}


def store(r: Reader) -> StoreArgs:
    """store-att-flags = (["+" / "-"] "FLAGS" [".SILENT"]) SP (flag-list / (flag *(SP flag)))"""
    r.sp()
    return store_att(r, SequenceSet.parse(r))


def store_att(r: Reader, s: SequenceSet) -> StoreArgs:
    """What follows the sequence set (and RFC 7162's store modifiers, parser/condstore.py)."""
    r.sp()
    sign = b""
    if r.peek() in (0x2B, 0x2D):
        sign = r.buf[r.pos : r.pos + 1]
        r.pos += 1
    word = (sign + r.atom()).decode("ascii").upper()
    silent = word.endswith(".SILENT")
    op = _STORE_OPS.get(word[:-7] if silent else word)
    if op is None:
        raise ParseError("Expected FLAGS, +FLAGS or -FLAGS")
    r.sp()
    if r.peek() == 0x28:
        flags = r.flag_list()
    else:
        flags = [r.flag()]
        while r.take(b" "):
            flags.append(r.flag())
    r.end()
    flags = [f for f in flags if f != "\\Recent"]  # §2.3.2: the server manages \Recent
    return StoreArgs(s, op, silent, frozenset(flags))


@dataclass(frozen=True, slots=True)
class CopyArgs:
    seqset: SequenceSet
    mailbox: str


def copy(r: Reader) -> CopyArgs:
    r.sp()
    s = SequenceSet.parse(r)
    r.sp()
    name = _mailbox(r)
    r.end()
    return CopyArgs(s, name)


@dataclass(frozen=True, slots=True)
class SearchArgs:
    charset: str
    criteria: Node
    returns: tuple[str, ...] | None = None  # RFC 4731 RETURN options; None: plain SEARCH
    refused: No | None = None  # a NO found while parsing a SEARCH RETURN (SAVE), see search()


def search(r: Reader) -> SearchArgs:
    """``SEARCH [RETURN (…)] [CHARSET x] keys`` (RFC 4466 §2.6, RFC 4731 §3)."""
    r.sp()
    returns = parse_search_return(r)
    # RFC 9051 §6.4.4 keeps CHARSET (UTF-8 assumed without it): refused only under UTF8=ACCEPT alone.
    if names.utf8() and not names.rev2() and r.buf[r.pos:r.pos + 8].upper() == b"CHARSET ":
        raise ParseError("No CHARSET once UTF8=ACCEPT is enabled")  # RFC 6855 §3: SHOULD be BAD
    charset, tree, refused = criteria_saving(r, returns)
    if refused is None:
        r.end()
    return SearchArgs(charset, tree, returns, refused)


Parser = Any
