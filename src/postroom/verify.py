"""``postroom verify``: read back every stored message and list those that cannot be.

The index says where each message's bytes are; a restore that missed segment files, a
disk that lost blocks or a hand-edited data directory leave entries whose bytes are short
or missing. The server keeps serving such a mailbox (IMAP answers ``NO [CORRUPTION]``
for those messages only, POP3 ``-ERR [SYS/PERM]``, and each read logs one line); this
command finds all of them at once, with the account, mailbox and UID, so that the admin
can restore the files from a backup or let the user delete those messages (deleting
needs only the index). Only the store's public interface is used, so it checks any
backend.

The newsgroups' articles are messages too (mailboxes of the news layer's reserved
account, news/account.py): they are read back like the rest, counted apart from the
accounts' mail, and a damaged one is named by its group and article number.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .errors import MessageDamaged
from .importexport import progress_bar
from .news.account import is_reserved

GROUP_PREFIX = "news/"  # a group's mailbox in the reserved account (news/service.py)


@dataclass
class Report:
    messages: int = 0  # the accounts' mail and the articles
    accounts: int = 0  # not counting the news layer's reserved account
    articles: int = 0  # messages in newsgroups (one per group an article is in)
    damaged: list[str] = field(default_factory=list)  # "address mailbox uid N: reason"


async def verify_store(store: Any) -> Report:
    report = Report()
    accounts = await store.list_accounts()
    total = 0
    boxes = {}
    for acct in accounts:
        boxes[acct.id] = await store.list_mailboxes(acct.id)
        for mb in boxes[acct.id]:
            total += (await store.mailbox_status(mb.id)).messages
    bar = progress_bar(total, "verify")
    try:
        for acct in accounts:
            news = is_reserved(acct.address)
            report.accounts += not news
            for mb in boxes[acct.id]:
                in_group = news and mb.name.startswith(GROUP_PREFIX)  # not its (unused) INBOX
                where = (f"newsgroup {mb.name.removeprefix(GROUP_PREFIX)} article" if in_group
                         else f"{acct.address} {mb.name} uid")
                for msg in await store.list_messages(mb.id):
                    report.messages += 1
                    report.articles += in_group
                    if bar is not None:
                        bar.update(1)
                    try:
                        raw = await store.read_message(msg)
                        await store.read_structure(msg)
                    except FileNotFoundError:
                        continue  # expunged and purged while we looked
                    except MessageDamaged as exc:
                        report.damaged.append(f"{where} {msg.uid}: {exc}")
                        continue
                    if len(raw) != msg.size:
                        report.damaged.append(f"{where} {msg.uid}: {len(raw)} bytes "
                                              f"stored, the index says {msg.size}")
    finally:
        if bar is not None:
            bar.close()
    return report
