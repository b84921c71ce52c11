"""Error types shared across the server.

Protocol code maps these to wire replies (NO/5xx with a response code); anything
else that escapes a handler is logged with its traceback and the client gets a
generic reply, never the exception text (GUIDE principle 4).
"""

from __future__ import annotations

import errno
import sqlite3


class PostroomError(Exception):
    """Base class for errors Postroom raises on purpose."""


class ConfigError(PostroomError):
    """The configuration is invalid; ``problems`` holds one ``key: message`` line each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class UsageError(PostroomError):
    """A CLI invocation or input file is wrong; the message is shown as one line."""


class StoreUnavailable(PostroomError):
    """The store cannot be opened (its database is damaged or not a database, its
    folders are not folders); the message names the file."""


class StoreError(PostroomError):
    """Base class for refusals by the store (the request was understood but cannot be done)."""


class StorageFull(StoreError):
    """The disk (or a file-system quota) is full: nothing of the write was kept.

    SMTP answers ``452 4.3.1`` (the sender retries later), IMAP ``NO [OVERQUOTA]``
    as Dovecot does. The original OSError or sqlite3 error is the ``__cause__``.
    """


class MessageDamaged(StoreError):
    """A message's bytes cannot be read back: its segment is shorter than the index says,
    missing, or the disk fails to read it (a restore that lost files, bit rot, a dying disk).

    The message names the mailbox, the UID and where the bytes should be; the OSError is
    the ``__cause__``. IMAP answers ``NO [CORRUPTION]`` (RFC 5530) after serving every
    readable message, POP3 ``-ERR [SYS/PERM]``; ``postroom verify`` lists every such message.
    """


def is_storage_full(exc: BaseException) -> bool:
    """True for StorageFull and for the OS or SQLite errors that mean "no space left"."""
    if isinstance(exc, StorageFull):
        return True
    if isinstance(exc, OSError):
        return exc.errno in (errno.ENOSPC, errno.EDQUOT)
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        return code is not None and code & 0xFF == sqlite3.SQLITE_FULL
    return False


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
