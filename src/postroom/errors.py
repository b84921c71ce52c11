"""Error types shared across the server.

Protocol code maps these to wire replies (NO/5xx with a response code); anything
else that escapes a handler is logged with its traceback and the client gets a
generic reply, never the exception text (GUIDE principle 4).
"""

from __future__ import annotations


class PostroomError(Exception):
    """Base class for errors Postroom raises on purpose."""


class ConfigError(PostroomError):
    """The configuration is invalid; ``problems`` holds one ``key: message`` line each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class UsageError(PostroomError):
    """A CLI invocation or input file is wrong; the message is shown as one line."""


class StoreError(PostroomError):
    """Base class for refusals by the store (the request was understood but cannot be done)."""


class NotFound(StoreError):
    pass


class AccountNotFound(NotFound):
    pass


class MailboxNotFound(NotFound):
    """IMAP maps this to ``NO [TRYCREATE]`` where RFC 3501 asks for it."""


class MailboxExists(StoreError):
    pass


class AccountExists(StoreError):
    pass


class DomainNotFound(NotFound):
    pass


class MaildropLocked(StoreError):
    """Another session holds the POP3 maildrop lock (POP3 ``-ERR [IN-USE]``)."""
