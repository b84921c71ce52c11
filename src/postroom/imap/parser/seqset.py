"""Sequence sets (RFC 3501 §9 ``sequence-set``, §6.4.8 for UIDs).

``*`` is the largest number in use: the message count for sequence numbers, the
last UID for UIDs. ``n:m`` equals ``m:n``. Resolution is done with bisection on the
session's sorted UID list, so ``1:*`` over 100,000 messages costs one slice.

RFC 5182 (SEARCHRES): ``$`` alone is a sequence set too (``seq-last-command``), the
messages saved by the last ``SEARCH RETURN (SAVE)``; it parses to :data:`SAVED`, which
only the session can resolve (``handlers/messages.resolve``).
"""

from __future__ import annotations

import re
from typing import Sequence
from bisect import bisect_left, bisect_right
from dataclasses import dataclass

from ..errors import Bad, ParseError
from .base import MAX_NUMBER, Reader

_SEQ = re.compile(rb"(?:\d+|\*)(?::(?:\d+|\*))?(?:,(?:\d+|\*)(?::(?:\d+|\*))?)*")

STAR = 0  # stands for "*" inside ranges (0 is never a valid seq-number or UID)


@dataclass(frozen=True, slots=True)
class SequenceSet:
    ranges: tuple[tuple[int, int], ...]  # (lo, hi) as written; STAR for "*"
    saved: bool = False  # RFC 5182 "$": the saved search result (ranges is empty)

    @classmethod
    def parse(cls, r: Reader) -> "SequenceSet":
        if r.peek() == 0x24:  # RFC 5182 §3: "$" stands alone, never inside a list or range
            r.pos += 1
            return SAVED
        m = _SEQ.match(r.buf, r.pos)
        if m is None:
            raise ParseError("Invalid sequence set")
        r.pos = m.end()
        return cls.from_bytes(m.group(0))

    @classmethod
    def from_bytes(cls, text: bytes) -> "SequenceSet":
        ranges = []
        for item in text.split(b","):
            lo, _, hi = item.partition(b":")
            a = _num(lo)
            b = _num(hi) if hi else a
            ranges.append((a, b))
        return cls(tuple(ranges))

    def __str__(self) -> str:
        if self.saved:
            return "$"

        def one(n: int) -> str:
            return "*" if n == STAR else str(n)

        return ",".join(one(a) if a == b else f"{one(a)}:{one(b)}" for a, b in self.ranges)

    # -- resolution ------------------------------------------------------------
    def seq_indexes(self, exists: int) -> list[int]:
        """0-based indexes of the messages named by sequence numbers.

        RFC 3501 §9: a seq-number beyond the mailbox is invalid; we answer BAD as
        Dovecot does. ``*`` in an empty mailbox names nothing.
        """
        chosen: set[int] | None = None
        out: list[int] = []
        for a, b in self.ranges:
            a = exists if a == STAR else a
            b = exists if b == STAR else b
            if a > b:
                a, b = b, a
            if a == 0:
                if exists == 0:
                    continue
                raise Bad("Invalid sequence set")
            if b > exists:
                raise Bad("Invalid sequence set: message number out of range")
            if len(self.ranges) == 1:
                return list(range(a - 1, b))
            if chosen is None:
                chosen = set()
            chosen.update(range(a - 1, b))
        if chosen is not None:
            out = sorted(chosen)
        return out

    def uid_indexes(self, uids: Sequence[int]) -> list[int]:
        """0-based indexes of the messages whose UIDs are in the set; missing UIDs are
        ignored (§6.4.8). ``n:*`` always includes the last message."""
        if not uids:
            return []
        last = uids[-1]
        chosen: set[int] | None = None
        for a, b in self.ranges:
            a = last if a == STAR else a
            b = last if b == STAR else b
            if a > b:
                a, b = b, a
            i, j = bisect_left(uids, a), bisect_right(uids, b)
            if len(self.ranges) == 1:
                return list(range(i, j))
            if chosen is None:
                chosen = set()
            chosen.update(range(i, j))
        return sorted(chosen or ())

    def contains_uid(self, uid: int, last: int) -> bool:
        for a, b in self.ranges:
            a = last if a == STAR else a
            b = last if b == STAR else b
            if a > b:
                a, b = b, a
            if a <= uid <= b:
                return True
        return False


SAVED = SequenceSet((), saved=True)


def _num(b: bytes) -> int:
    if b == b"*":
        return STAR
    n = int(b)
    if n == 0 or n > MAX_NUMBER:
        raise ParseError("Invalid sequence set")
    return n


def compress(nums: list[int]) -> str:
    """Numbers as a compact sequence set ``1:3,7`` (for COPYUID/APPENDUID, ESEARCH ALL), in
    their given order: only ascending runs become ranges (``5,1:3,9,8`` for ESORT's ALL)."""
    out: list[str] = []
    i = 0
    while i < len(nums):
        j = i
        while j + 1 < len(nums) and nums[j + 1] == nums[j] + 1:
            j += 1
        out.append(str(nums[i]) if i == j else f"{nums[i]}:{nums[j]}")
        i = j + 1
    return ",".join(out)
