"""What one SMTP transaction accumulates: the envelope, before and after DATA."""

from __future__ import annotations

from dataclasses import dataclass, field

from .address import Path


@dataclass(frozen=True, slots=True)
class Resolved:
    """Where one recipient address really goes, after aliases, catch-all and +tags."""

    local: tuple[int, ...] = ()  # account ids
    remote: tuple[str, ...] = ()  # addresses handed to the outbound queue


@dataclass(frozen=True, slots=True)
class Rcpt:
    path: Path
    resolved: Resolved
    notify: tuple[str, ...] = ()  # RFC 3461 §4.1
    orcpt: str | None = None  # RFC 3461 §4.2, decoded "addr-type;address"


@dataclass(slots=True)
class Transaction:
    sender: Path
    size: int | None = None  # RFC 1870 SIZE= declared by the client
    body_8bit: bool = False  # BODY=8BITMIME
    smtputf8: bool = False
    ret: str | None = None  # RFC 3461 §4.3 FULL | HDRS
    envid: str | None = None  # RFC 3461 §4.4 (decoded)
    rcpts: list[Rcpt] = field(default_factory=list)
    chunks: bytearray = field(default_factory=bytearray)  # BDAT (RFC 3030)
    chunks_too_big: bool = False
    #: The message as DATA/BDAT ended, line ends made CRLF, with its count of LFs (the check
    #: counted them): delivery passes the count to the store while it still stores exactly
    #: these octets (nothing added or removed on the way), sparing a second count.
    counted: tuple[bytes, int] | None = None


@dataclass(frozen=True, slots=True)
class Peer:
    """Who the client is, for trace headers and logs."""

    ip: str
    helo: str
    esmtp: bool
    tls: str | None  # protocol/cipher description when TLS is active
    login: str | None  # authenticated address
    session_id: str
    submission: bool
    trusted: bool = False  # the client's IP is in [smtp] trusted_networks
    listener: str = ""  # the listener's name; "" for postroom sendmail
