"""What the news layer hands to the NNTP engine, peering and the CLI: frozen records and
the refusals, never rows or SQL."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import PostroomError

#: Posting status of a group (RFC 3977 §7.6.3): y posting allowed, n not, m moderated.
POSTING_STATUSES = ("y", "n", "m")

#: Who may read or post: "anyone" (anonymous too), "accounts" (any logged-in account),
#: or a comma list of addresses (see :func:`parse_permission`).
ANYONE = "anyone"
ACCOUNTS = "accounts"

# RFC 3977 §4.1 / RFC 5536 §3.1.4: a newsgroup name is one or more components separated
# by "."; we take the RFC 5536 component syntax (lower-case letters, digits, "+", "-",
# "_"), which every peer accepts, and refuse a leading or trailing "." or "..".
_COMPONENT = r"[a-z0-9+_-]+"
_NAME_RE = re.compile(rf"{_COMPONENT}(?:\.{_COMPONENT})*")
MAX_NAME = 250  # octets; INN's default limit, well under any line limit
_RESERVED_FIRST = ("all", "ctl")  # RFC 5536 §3.1.4: "all" and "ctl" are not group components


def group_name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a newsgroup, or None when it can."""
    if not name:
        return "a newsgroup name must not be empty"
    if len(name) > MAX_NAME:
        return f"a newsgroup name is at most {MAX_NAME} characters"
    if not _NAME_RE.fullmatch(name):
        return (f"{name!r} is not a newsgroup name: components of lower-case letters, digits, "
                f"'+', '-', '_' separated by single dots (RFC 5536 §3.1.4)")
    if any(part in _RESERVED_FIRST for part in name.split(".")):
        return f"{name!r}: 'all' and 'ctl' are not allowed as components (RFC 5536 §3.1.4)"
    if any(part.isdigit() for part in name.split(".")):
        return f"{name!r}: a component must not be all digits (RFC 5536 §3.1.4)"
    return None


def parse_permission(value: str) -> str:
    """Normalise a read/post permission: "anyone", "accounts" or sorted lower-case addresses
    joined by ","; ValueError for anything else."""
    v = value.strip().lower()
    if v in (ANYONE, ACCOUNTS):
        return v
    addrs = sorted({a.strip() for a in v.split(",") if a.strip()})
    if not addrs:
        raise ValueError("a permission is 'anyone', 'accounts' or a comma list of addresses")
    for a in addrs:
        local, at, domain = a.rpartition("@")
        if not at or not local or not domain or " " in a:
            raise ValueError(f"{a!r} is not an address like user@example.org")
    return ",".join(addrs)


def permits(permission: str, user: str | None) -> bool:
    """Whether ``user`` (a logged-in address, None = anonymous) has the permission."""
    if permission == ANYONE:
        return True
    if user is None:
        return False
    if permission == ACCOUNTS:
        return True
    return user.lower() in permission.split(",")


@dataclass(frozen=True, slots=True)
class GroupInfo:
    """A group's settings as stored (what `postroom group list` shows)."""

    name: str
    posting: str  # y | n | m
    description: str
    created: float  # unix seconds
    retention: int | None  # days an article is kept (None: for ever)
    list_address: str | None  # the bound mailing list (N4), or None
    read: str  # permission (see parse_permission)
    post: str
    mailbox_id: int  # the group's mailbox in the reserved account


@dataclass(frozen=True, slots=True)
class GroupStatus:
    """RFC 3977 §6.1.1 GROUP / LIST ACTIVE data. For an empty group, ``high = low - 1``."""

    name: str
    count: int
    low: int
    high: int
    posting: str
    description: str
    created: float


@dataclass(frozen=True, slots=True)
class Overview:
    """One OVER line (RFC 3977 §8.3): the seven fields, then Xref (LIST OVERVIEW.FMT)."""

    number: int
    subject: str
    from_: str
    date: str
    message_id: str
    references: str
    bytes: int
    lines: int
    xref: str


@dataclass(frozen=True, slots=True)
class Article:
    """An article as served: ``raw`` has CRLF line ends and our Xref header."""

    number: int  # 0 when looked up by Message-ID outside a group
    message_id: str
    raw: bytes
    #: Where the body starts in ``raw`` (after the empty line ending the header); -1 when
    #: not known (then split_article finds it): spares HEAD and BODY a second search.
    body_at: int = -1
    #: Whether a line of the header (Xref included) or of the body starts with "." and needs
    #: stuffing (RFC 3977 §3.1.1); True when not known (then the sender looks).
    head_dots: bool = True
    body_dots: bool = True


@dataclass(frozen=True, slots=True)
class Posted:
    message_id: str
    locations: list[tuple[str, int]]


class PostRefused(Exception):
    """The article is refused; ``code`` is the NNTP reply to send (441 for POST, 437/439 for
    IHAVE/TAKETHIS refusals, 435/438 duplicates, 436/431 try later), ``text`` its text."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(f"{code} {text}")
        self.code = code
        self.text = text


class GroupError(PostroomError):
    """An admin operation on groups failed (bad name, unknown or existing group)."""


class GroupNotFound(GroupError):
    """``str(exc)`` is the group's name."""


class GroupExists(GroupError):
    """``str(exc)`` is the group's name."""
