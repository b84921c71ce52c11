"""QUOTA (RFC 9208): GETQUOTAROOT, GETQUOTA, SETQUOTA, and the checks APPEND/COPY make.

One quota root per account, named "User quota" as Dovecot names it; every mailbox
of the account is under it. An account without limits has no quota root at all
(GETQUOTAROOT lists none): RFC 9208 §7's quota-list needs at least one resource.
Limits are set by the administrator (``postroom user quota``); SETQUOTA is refused
(§4.1.3 lets a server refuse it; QUOTASET is not advertised).
"""

from __future__ import annotations

from ...storage.models import Quota
from ..errors import No, nonexistent
from ..parser.quota import SetQuotaArgs
from ..responses import Reply, mailbox_wire, untagged
from ..session import Session

ROOT = "User quota"
_ROOT_WIRE = b'"User quota"'
CAPS = ("QUOTA", "QUOTA=RES-STORAGE", "QUOTA=RES-MESSAGE")


def kib(octets: int) -> int:
    """STORAGE is counted in units of 1024 octets (RFC 9208 §5.1); usage rounds up."""
    return -(-octets // 1024)


def over_quota() -> No:
    # RFC 9208 §4.3: a command that would exceed a limit fails with NO [OVERQUOTA].
    return No("Quota exceeded (mailbox for user is full)", b"OVERQUOTA")


async def check_room(s: Session, size: int, count: int = 1) -> None:
    """Raise NO [OVERQUOTA] if ``count`` more messages of ``size`` octets in all would not fit."""
    q = await s.store.get_quota(s.account_id)
    if q is not None and q.limited and not q.allows(size, count):
        raise over_quota()


def _quota_line(q: Quota) -> bytes:
    items = []
    if q.storage_limit is not None:
        items.append(b"STORAGE %d %d" % (kib(q.storage_used), q.storage_limit // 1024))
    if q.message_limit is not None:
        items.append(b"MESSAGE %d %d" % (q.messages_used, q.message_limit))
    return untagged(b"QUOTA " + _ROOT_WIRE + b" (" + b" ".join(items) + b")")


async def getquotaroot(s: Session, name: str) -> Reply:
    # §4.1.2: the mailbox's quota roots, then a QUOTA response for each.
    if await s.store.get_mailbox(s.account_id, name) is None:
        raise nonexistent()
    q = await s.store.get_quota(s.account_id)
    if q is None or not q.limited:
        return Reply("Getquotaroot completed", untagged=[untagged(b"QUOTAROOT " + mailbox_wire(name))])
    return Reply("Getquotaroot completed",
                 untagged=[untagged(b"QUOTAROOT " + mailbox_wire(name) + b" " + _ROOT_WIRE), _quota_line(q)])


async def getquota(s: Session, root: str) -> Reply:
    q = await s.store.get_quota(s.account_id)
    if root != ROOT or q is None or not q.limited:
        raise No("No such quota root", b"NONEXISTENT")
    return Reply("Getquota completed", untagged=[_quota_line(q)])


async def setquota(s: Session, a: SetQuotaArgs) -> Reply:
    # §4.1.3: limits are the administrator's (postroom user quota), not the user's.
    return Reply("Quota limits are set by the administrator", b"NO", b"NOPERM")
