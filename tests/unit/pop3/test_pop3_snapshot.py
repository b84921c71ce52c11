from __future__ import annotations

from datetime import datetime, timezone

import pytest

from postroom.pop3.maildrop import Maildrop, NoSuchMessage
from postroom.storage.models import Mailbox, MessageInfo


def _msg(uid: int, size: int, flags: frozenset[str] = frozenset()) -> MessageInfo:
    return MessageInfo(1, uid, uid, flags, datetime.now(timezone.utc), size, f"b{uid}")


def _drop() -> Maildrop:
    box = Mailbox(1, 1, "INBOX", 77, 10, 9)
    msgs = [_msg(3, 100), _msg(5, 200, frozenset({"\\Deleted"})), _msg(7, 300, frozenset({"\\Seen"})),
            _msg(9, 400)]
    return Maildrop.snapshot(box, msgs)


def test_snapshot_skips_messages_flagged_deleted() -> None:
    md = _drop()
    assert [m.uid for m in md.messages] == [3, 7, 9]
    assert md.stat() == (3, 800)


def test_uidl_is_uidvalidity_dot_uid() -> None:
    md = _drop()
    assert [md.uidl(m) for _, m in md.visible()] == ["77.3", "77.7", "77.9"]


def test_delete_and_reset() -> None:
    md = _drop()
    md.delete(2)
    assert md.stat() == (2, 500)
    assert [n for n, _ in md.visible()] == [1, 3]  # numbers do not shift (RFC 1939 §5)
    with pytest.raises(NoSuchMessage):
        md.get(2)
    with pytest.raises(NoSuchMessage):
        md.delete(2)
    assert md.deleted_uids() == [7]
    md.reset()
    assert md.stat() == (3, 800)
    assert md.deleted_uids() == []


@pytest.mark.parametrize("n", [0, 4, 99])
def test_out_of_range(n: int) -> None:
    with pytest.raises(NoSuchMessage):
        _drop().get(n)


def test_seen_uids_skip_deleted_and_already_seen() -> None:
    md = _drop()
    md.retrieved.update({1, 2, 3})
    md.delete(3)
    assert md.seen_uids() == [3]
