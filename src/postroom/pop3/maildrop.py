"""The maildrop a POP3 session works on: a snapshot of INBOX taken at login.

RFC 1939 §8 lets a server give the client a fixed view for the whole session:
message numbers never change, mail that arrives meanwhile shows up in the next
session, and DELE only marks; the store is changed once, in the UPDATE state.

UIDL (RFC 1939 §7) is ``"{uidvalidity}.{uid}"`` from the IMAP mailbox: IMAP UIDs
never repeat within one UIDVALIDITY, so the string is stable across sessions and
never reused for another message, which is what UIDL requires. If the mailbox is
ever recreated (new UIDVALIDITY), every UIDL changes and clients download afresh
rather than missing mail.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..storage.models import Mailbox, MessageInfo


class NoSuchMessage(Exception):
    """The message number is out of range or marked deleted (text is safe to send)."""


@dataclass(slots=True)
class Maildrop:
    mailbox: Mailbox
    messages: list[MessageInfo]
    deleted: set[int] = field(default_factory=set)  # message numbers marked by DELE
    retrieved: set[int] = field(default_factory=set)  # numbers sent by RETR (get \Seen at QUIT)

    @classmethod
    def snapshot(cls, mailbox: Mailbox, messages: list[MessageInfo]) -> "Maildrop":
        # Messages an IMAP client already flagged \Deleted are on their way out: a
        # POP3 client would download mail its owner has thrown away.
        return cls(mailbox, [m for m in messages if not m.deleted])

    def get(self, number: int) -> MessageInfo:
        if not 1 <= number <= len(self.messages):
            raise NoSuchMessage("No such message")
        if number in self.deleted:
            raise NoSuchMessage("Message is deleted")  # RFC 1939 §5: may not refer to deleted ones
        return self.messages[number - 1]

    def next_after(self, number: int) -> MessageInfo | None:
        """The next message not marked deleted (what a downloading client asks for next)."""
        for n in range(number + 1, len(self.messages) + 1):
            if n not in self.deleted:
                return self.messages[n - 1]
        return None

    def visible(self) -> list[tuple[int, MessageInfo]]:
        return [(n, m) for n, m in enumerate(self.messages, 1) if n not in self.deleted]

    def stat(self) -> tuple[int, int]:
        """RFC 1939 §5 STAT: count and octets, not counting messages marked deleted."""
        vis = self.visible()
        return len(vis), sum(m.size for _, m in vis)

    def uidl(self, msg: MessageInfo) -> str:
        return f"{self.mailbox.uidvalidity}.{msg.uid}"

    def delete(self, number: int) -> None:
        self.get(number)
        self.deleted.add(number)

    def reset(self) -> None:
        """RFC 1939 §5 RSET: unmark everything marked as deleted."""
        self.deleted.clear()

    def deleted_uids(self) -> list[int]:
        return sorted(self.messages[n - 1].uid for n in self.deleted)

    def seen_uids(self) -> list[int]:
        """Retrieved, not deleted, not already \\Seen: the ones that need a flag change."""
        return sorted(self.messages[n - 1].uid for n in self.retrieved - self.deleted
                      if not self.messages[n - 1].seen)
