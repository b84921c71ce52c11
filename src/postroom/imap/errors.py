"""Typed IMAP errors: each carries the status and response code it becomes on the wire.

Handlers raise these; the dispatcher turns them into ``tag NO [CODE] text`` or
``tag BAD text``. Texts are fixed strings chosen here, never exception messages
from elsewhere (GUIDE principle 4).
"""

from __future__ import annotations


class ImapError(Exception):
    status = b"NO"

    def __init__(self, text: str, code: bytes | None = None) -> None:
        super().__init__(text)
        self.text = text
        self.code = code


class No(ImapError):
    """The command was understood but refused (RFC 3501 §7.1.2)."""


class Bad(ImapError):
    """The command is malformed or not allowed now (RFC 3501 §7.1.3)."""

    status = b"BAD"


class ParseError(Bad):
    """Syntax error in the arguments."""


class Bye(Exception):
    """End the connection after sending ``* BYE text``."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


def trycreate(text: str = "Mailbox does not exist") -> No:
    # RFC 3501 §6.3.11/§6.4.7: APPEND/COPY to a missing mailbox say [TRYCREATE].
    return No(text, b"TRYCREATE")


def nonexistent(text: str = "Mailbox does not exist") -> No:
    # RFC 5530 §3 NONEXISTENT.
    return No(text, b"NONEXISTENT")
