"""Reading: group listings and counts, overview (from the ``overview`` table, written when
each article was accepted), headers and articles by number or Message-ID, NEWNEWS, and the
checks a reader's greeting needs.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Sequence

from ..storage.models import MessageInfo
from .article import (
    OVERVIEW_HEADERS,
    header_fields,
    overview_fields,
    unfold,
    valid_message_id,
    xref_value,
)
from .base import SERVED_MAX, NewsBase, Served, _locations
from .records import Article, GroupInfo, GroupStatus, Overview, permits
from .state import Stmt
from .wildmat import compile_wildmat

_OV_COLS = "number, subject, from_, date, message_id, refs, bytes, lines, xref"
_OV_INSERT = ("INSERT INTO overview(mailbox_id, number, subject, from_, date, message_id, refs, bytes, lines, "
              "xref) VALUES (?,?,?,?,?,?,?,?,?,?) ON CONFLICT DO NOTHING")


def _plain_field(head: bytes, lower: bytes, name: bytes) -> bytes | None:
    """The value of the first ``name`` field (lower case, colon included) of ``head`` (a CRLF
    header block; ``lower`` is it in lower case) when that field is one unfolded line; None
    when it is absent or folded: the caller parses the whole header then. Two ``find`` calls
    where a case-insensitive multi-line regular expression tries every position."""
    if lower.startswith(name):
        i = len(name)
    else:
        i = lower.find(b"\n" + name)
        if i < 0:
            return None
        i += 1 + len(name)
    j = head.find(b"\r\n", i)
    if j < 0 or head[j + 2:j + 3] in (b" ", b"\t"):
        return None
    return head[i:j].strip(b" \t")


# A line that starts with "." after a CRLF (what stuff() doubles besides a first "."); found once
# per article a process serves (_learn).
_CRLF_DOT = re.compile(rb"\r\n\.")


def _served_article(number: int, raw: bytes, known: Served, xref: bytes) -> Article:
    """The article as served: ``raw`` with ``xref`` inserted where ``known`` (what
    :meth:`NewsReading._learn` kept) says the header ends."""
    _blob, mid, at, body, _xref, head_dots, body_dots, _tail, _dots = known
    # body_at only where the header ends with its empty line, as HEAD and BODY expect.
    return Article(number, mid, raw[:at] + xref + raw[at:], body + len(xref) if at == body - 2 else -1,
                   head_dots, body_dots)


class NewsReading(NewsBase):
    """What readers ask (docs/nntp.md, "Groups and articles in the store")."""

    async def _status(self, info: GroupInfo) -> GroupStatus:
        idx = await self.store.message_index(info.mailbox_id)
        uids = idx.uids
        uidnext = idx.mailbox.uidnext
        if uids:
            # RFC 3977 §6.1.1.2: high is at least every article's number and never goes down.
            low, high, count = uids[0], max(uids[-1], uidnext - 1), len(uids)
        else:
            # Empty: high one less than low (RFC 3977 §6.1.1.2), neither below 0.
            high = max(uidnext - 2, 0)
            low, count = high + 1, 0
        return GroupStatus(info.name, count, low, high, info.posting, info.description, info.created)

    async def groups(self, wildmat: str | None = None, *, user: str | None = None) -> list[GroupStatus]:
        """The groups ``user`` may read (None: anonymous) matching ``wildmat``, sorted.
        WildmatError for a malformed pattern."""
        match = compile_wildmat(wildmat) if wildmat else None
        out = []
        for info in (await self._all_groups()).values():
            if (match is None or match(info.name)) and self._readable(info, user):
                out.append(await self._status(info))
        return out

    async def group(self, name: str, *, user: str | None = None) -> GroupStatus | None:
        info = (await self._all_groups()).get(name)
        if info is None or not self._readable(info, user):
            return None
        return await self._status(info)

    async def groups_for_list(self, address: str) -> list[str]:
        """Names of the groups bound to the mailing list ``address`` (lists-as-groups)."""
        a = address.strip().lower()
        return [i.name for i in (await self._all_groups()).values() if (i.list_address or "").lower() == a]

    async def group_info(self, name: str) -> GroupInfo | None:
        """The group's settings (permissions, bound list) from the short-lived cache."""
        return (await self._all_groups()).get(name)

    async def new_groups(self, since: float, *, user: str | None = None) -> list[GroupStatus]:
        return [s for s in await self.groups(user=user) if s.created >= since]

    async def numbers(self, group: str, lo: int, hi: int) -> list[int]:
        """The numbers of the articles of ``group`` in [lo, hi], ascending."""
        idx = await self._index(group)
        if idx is None:
            return []
        uids = idx.uids
        return list(uids[bisect.bisect_left(uids, lo):bisect.bisect_right(uids, hi)])

    async def _fields(self, msgs: Sequence[MessageInfo]) -> list[tuple[str, str, str, str, str, int] | None]:
        """:func:`overview_fields` of each message, from its bytes (one ``read_messages``, one
        thread hop): for the articles whose overview row is not stored yet (_backfill)."""
        raws = await self.store.read_messages(msgs)
        return [overview_fields(raw) if raw is not None else None for raw in raws]

    async def _overview_of(self, info: GroupInfo, msgs: Sequence[MessageInfo]) -> list[Overview]:
        """The overview of ``msgs`` (ascending, of ``info``'s mailbox) from the overview table:
        one range read (the rows were written when each article was accepted). An article
        without its row (stored before the table existed, or by a post that a crash left to
        :meth:`repair`) is computed from its bytes and its row written then (_backfill)."""
        if not msgs:
            return []
        rows = await self.state.query(
            f"SELECT {_OV_COLS} FROM overview WHERE mailbox_id = ? AND number >= ? AND number <= ?",
            info.mailbox_id, msgs[0].uid, msgs[-1].uid)
        host = self.settings.path_host + " "
        have = {r[0]: r for r in rows}
        missing = [m for m in msgs if m.uid not in have]
        made = await self._backfill(info, missing) if missing else {}
        out = []
        for m in msgs:
            r = have.get(m.uid)
            if r is not None:
                out.append(Overview(r[0], r[1], r[2], r[3], r[4], r[5], int(r[6]), int(r[7]), host + r[8]))
            elif m.uid in made:
                out.append(made[m.uid])
        return out

    async def _backfill(self, info: GroupInfo, msgs: Sequence[MessageInfo]) -> dict[int, Overview]:
        """Overview of articles that have no stored row yet, from their bytes; the row is
        written when the article's history is settled (``ok``: its Xref is final)."""
        out: dict[int, Overview] = {}
        for i in range(0, len(msgs), 1000):
            chunk = msgs[i:i + 1000]
            fields = await self._fields(chunk)
            locs = await self._history_locations([f[3] for f in fields if f is not None], settled=True)
            stmts: list[Stmt] = []
            for m, f in zip(chunk, fields):
                if f is None:
                    continue
                subject, from_, date, mid, refs, lines = f
                xref = locs.get(mid) or f"{info.name}:{m.uid}"
                out[m.uid] = Overview(m.uid, subject, from_, date, mid, refs, m.size, lines,
                                      f"{self.settings.path_host} {xref}")
                if locs.get(mid):
                    stmts.append((_OV_INSERT, (info.mailbox_id, m.uid, subject, from_, date, mid, refs,
                                               m.size, lines, xref)))
            if stmts:
                await self.state.execute(stmts)
        return out

    async def overview(self, group: str, lo: int, hi: int) -> list[Overview]:
        """OVER data of the articles of ``group`` in [lo, hi] (RFC 3977 §8.3)."""
        info = (await self._all_groups()).get(group)
        if info is None:
            return []
        return await self._overview_of(info, await self._msgs(group, lo, hi))

    async def overview_lines(self, group: str, lo: int, hi: int) -> bytes:
        """OVER's lines for the articles of ``group`` in [lo, hi] (RFC 3977 §8.3), each ending
        with CRLF, without the terminating dot ("" when there are none).

        The same lines :meth:`overview` gives the fields of, built straight from the stored
        rows: one f-string per row and a single encode, no record per article (OVER of a
        1,000-article range is what a reader sends on entering a group, bench/nntp.py).
        An overview line starts with its number, so it never needs dot-stuffing."""
        info = (await self._all_groups()).get(group)
        if info is None:
            return b""
        idx = await self._index(group)
        if idx is None:
            return b""
        all_uids = idx.uids
        uids = list(all_uids[bisect.bisect_left(all_uids, lo):bisect.bisect_right(all_uids, hi)])  # may be a range
        if not uids:
            return b""
        rows = await self.state.query(
            f"SELECT {_OV_COLS} FROM overview WHERE mailbox_id = ? AND number >= ? AND number <= ? ORDER BY number",
            info.mailbox_id, uids[0], uids[-1])
        host = self.settings.path_host
        if len(rows) == len(uids) and [r[0] for r in rows] == uids:
            # The common case: a stored row for every article of the range and no other; else
            # (rows still to backfill, an article removed meanwhile) the careful path below.
            text = "".join([f"{r[0]}\t{r[1]}\t{r[2]}\t{r[3]}\t{r[4]}\t{r[5]}\t{r[6]}\t{r[7]}\tXref: {host} {r[8]}\r\n"
                            for r in rows])
            n = len(rows)
            # RFC 3977 §8.3.2: no TAB, CR or LF inside a field. Checked on the whole block at
            # once; a field that has one (a folded or odd header) takes the careful path.
            if text.count("\t") == 8 * n and text.count("\r") == n and text.count("\n") == n:
                return text.encode("utf-8", "surrogateescape")
        lines = [overview_line(o) + "\r\n" for o in await self._overview_of(info, idx.messages(uids))]
        return "".join(lines).encode("utf-8", "surrogateescape")

    async def header(self, group: str, field: str, lo: int, hi: int) -> list[tuple[int, str]]:
        """HDR (RFC 3977 §8.5): ``field`` of each article in [lo, hi] (unfolded; "" when
        absent), or the metadata ``:bytes`` / ``:lines``."""
        name = field.lower()
        msgs = await self._msgs(group, lo, hi)
        if not msgs:
            return []
        if name == ":bytes":
            return [(m.uid, str(m.size)) for m in msgs]
        if name in OVERVIEW_HEADERS or name in (":lines", "xref"):
            return [(o.number, _ov_field(o, name)) for o in await self.overview(group, lo, hi)]
        raws = await self.store.read_messages(msgs)
        out = []
        for m, raw in zip(msgs, raws):
            if raw is None:
                continue
            value = ""
            for n, v in header_fields(raw)[0]:
                if n == name:
                    value = unfold(v)
                    break
            out.append((m.uid, value))
        return out

    async def header_by_id(self, message_id: str, field: str, *, user: str | None = None) -> str | None:
        """``field`` (or ``:bytes``/``:lines``) of the article with this Message-ID, from a group
        ``user`` may read; "" when the article lacks the field, None when there is no such article."""
        art = await self.article_by_id(message_id, user=user)
        if art is None:
            return None
        name = field.lower()
        if name == ":bytes":
            return str(len(art.raw))
        fields, body = header_fields(art.raw)
        if name == ":lines":
            return str(art.raw.count(b"\n", body))
        for n, v in fields:
            if n == name:
                return unfold(v)
        return ""

    async def article(self, group: str, number: int) -> Article | None:
        """Article ``number`` of ``group`` with its Xref, or None.

        One read of the bytes from the store, every time. What the header says is worked out
        at the first read and kept (``_served``, by group and number, checked against the
        stored bytes' reference, which is never reused for other bytes): the Message-ID, where
        Xref goes and the body starts, whether the article is in this group alone (then its
        Xref is ``group:number``, no history query) and whether the header or body has a line
        starting with "." (else they go out unstuffed, with no scan). The first read finds
        the Message-ID and Newsgroups with two searches of the lower-cased header; a folded
        or unusual header gets the full parse. A crosspost's Xref is looked up every time
        (a cancel in another group changes it)."""
        idx = self._index_kept(group)
        if idx is None:
            idx = await self._index(group)
            if idx is None:
                return None
        msg = idx.get(number)
        if msg is None:
            return None
        try:
            raw = await self.store.read_message(msg)
        except FileNotFoundError:  # expunged (and its bytes purged) since the index was taken
            return None
        known = self._served.get((group, number))
        if known is None or known[0] != msg.blob:
            known = self._learn(group, number, msg.blob, raw)
        xref = known[4]
        if xref is None:  # a crosspost
            found = await self._locate(known[1])
            locs = found[1] if found and found[1] else [(group, number)]
            xref = b"Xref: " + xref_value(self.settings.path_host, locs).encode() + b"\r\n"
        return _served_article(number, raw, known, xref)

    def article_at_hand(self, group: str, number: int) -> tuple[bytes, Served] | None:
        """:meth:`article`'s answer when it needs no wait, in pieces: the stored bytes and what
        is known of their header (:data:`.base.Served`, its Xref line set): :meth:`article`
        gives ``_served_article(number, raw, known, known[4])`` of them. Only when the group's
        index is kept under the shared change number, the bytes are in the kernel's page cache
        (the store's ``read_message_now``) and the article is in this group alone (its Xref
        known without a history query); None when any of that is not so, or the article is not
        in the kept index: the caller then awaits :meth:`article`, which decides. NNTP's
        ARTICLE, HEAD and BODY by number answer from this in the step that read the command
        (docs/nntp.md), without the joined copy :class:`Article` holds."""
        read_now = self._read_now
        if read_now is None:
            return None
        idx = self._index_kept(group)  # (not _kept_message: a Python frame less per ARTICLE)
        msg = idx.get(number) if idx is not None else None
        if msg is None:
            return None
        raw = read_now(msg)
        if raw is None:
            return None
        known = self._served.get((group, number))
        if known is None or known[0] != msg.blob:
            known = self._learn(group, number, msg.blob, raw)
        if known[4] is None:  # a crosspost: its Xref needs the history table
            return None
        return raw, known

    def known_at_hand(self, group: str, number: int) -> Served | None:
        """What :meth:`article` learnt of article ``number``'s header (its Message-ID for STAT),
        when the group's index is kept and still holds the article with the bytes it was
        learnt from; None otherwise (the caller then asks the overview)."""
        msg = self._kept_message(group, number)
        if msg is None:
            return None
        known = self._served.get((group, number))
        return known if known is not None and known[0] == msg.blob else None

    def _kept_message(self, group: str, number: int) -> MessageInfo | None:
        """Article ``number``'s record in the group's kept index (:meth:`_index_kept`); None
        when that index is not good now or does not hold it."""
        idx = self._index_kept(group)
        return idx.get(number) if idx is not None else None

    def _learn(self, group: str, number: int, blob: str, raw: bytes) -> Served:
        """The header facts :meth:`article` keeps (see there), from the stored bytes."""
        end = raw.find(b"\r\n\r\n")
        if end >= 0:
            head = raw[:end + 2]
            lower = head.lower()
            v_mid = _plain_field(head, lower, b"message-id:")
            v_ng = _plain_field(head, lower, b"newsgroups:")
        else:
            v_mid = v_ng = None
        if v_mid is not None and v_ng is not None and v_mid[:1] == b"<" and v_mid.find(b">") == len(v_mid) - 1:
            mid = v_mid.decode("ascii", "replace")
            newsgroups = v_ng.decode("utf-8", "replace").replace(" ", "").replace("\t", "")
            body = end + 4
        else:  # folded, bare LF or missing: the full header parse
            mid = newsgroups = ""
            fields, body = header_fields(raw)
            for n, v in fields:
                if n == "message-id" and not mid:
                    mid = unfold(v)
                elif n == "newsgroups" and not newsgroups:
                    newsgroups = unfold(v).replace(" ", "")
        # Xref goes before the empty line that ends the header (RFC 5536 §3.2.14).
        at = body - 2 if body >= 2 and raw[body - 2:body] == b"\r\n" else body
        xref = None
        if not mid or newsgroups == group:  # this group alone: Xref is group:number
            xref = b"Xref: " + xref_value(self.settings.path_host, [(group, number)]).encode() + b"\r\n"
        # RFC 3977 §3.1.1: a line starting with "." is stuffed; where is the first one?
        first = raw.find(b"\n.")
        head_dots = raw.startswith(b".") or 0 <= first < at - 1
        body_dots = first >= 0 and raw.find(b"\n.", max(at - 1, first)) >= 0
        # Made once for ARTICLE by number (nntp.handlers.article_now): the status line's end, and
        # the dots to double (stuff() doubles a "." at the start and after each CRLF), so it
        # stuffs by slicing, with no scan of the bytes (about 2 µs for 2 KB of text).
        plain = mid and mid.isascii() and "\r" not in mid and "\n" not in mid
        tail = f" {mid}\r\n".encode() if plain else None
        dots: tuple[int, ...] = ()
        if head_dots or body_dots:
            dots = tuple(m.end() - 1 for m in _CRLF_DOT.finditer(raw))
            if raw.startswith(b"."):
                dots = (0, *dots)
        known = (blob, mid, at, body, xref, head_dots, body_dots, tail, dots)
        if len(self._served) >= SERVED_MAX:
            self._served.clear()
        self._served[(group, number)] = known
        return known

    async def article_by_id(self, message_id: str, *, user: str | None = None,
                            check_read: bool = True) -> Article | None:
        """The article with this Message-ID from the first of its groups ``user`` may read."""
        if not valid_message_id(message_id):
            return None
        found = await self._locate(message_id)
        if found is None:
            return None
        groups = await self._all_groups()
        for g, n in found[1]:
            info = groups.get(g)
            if info is None or (check_read and not self._readable(info, user)):
                continue
            art = await self.article(g, n)
            if art is not None:
                return Article(0, art.message_id, art.raw)
        return None

    async def raw_by_id(self, message_id: str) -> bytes | None:
        """The stored bytes of the article (no permission check, no Xref): for the feed."""
        found = await self._locate(message_id) if valid_message_id(message_id) else None
        if found is None:
            return None
        groups = await self._all_groups()
        for g, n in found[1]:
            info = groups.get(g)
            idx = await self._index(g) if info is not None else None
            msg = idx.get(n) if idx is not None else None
            if msg is not None:
                raw = (await self.store.read_messages([msg]))[0]
                if raw is not None:
                    return bytes(raw)
        return None

    async def new_news(self, wildmat: str, since: float, *, user: str | None = None) -> list[str]:
        """Message-IDs of the articles that arrived at or after ``since`` in groups matching
        ``wildmat`` that ``user`` may read (RFC 3977 §7.4). WildmatError."""
        match = compile_wildmat(wildmat)
        groups = await self._all_groups()
        rows = await self.state.query(
            "SELECT message_id, locations FROM history WHERE arrived >= ? AND state = 'ok' ORDER BY arrived", since)
        out = []
        for mid, locs in rows:
            for g, _n in _locations(locs):
                info = groups.get(g)
                if info is not None and match(g) and self._readable(info, user):
                    out.append(mid)
                    break
        return out

    async def seen(self, message_id: str) -> bool:
        """Whether the Message-ID is in history (stored, in flight, expired, cancelled or
        refused): IHAVE 435 / CHECK 438."""
        rows = await self.state.query("SELECT 1 FROM history WHERE message_id = ?", message_id)
        return bool(rows)

    async def can_post(self, *, user: str | None) -> bool:
        """Whether ``user`` may post to at least one group (greeting 200 vs 201, POST 440)."""
        return any(i.posting != "n" and permits(i.post, user) for i in (await self._all_groups()).values())


def overview_field(value: str) -> str:
    """RFC 3977 §8.3.2: TAB, CR and LF in an overview or HDR field become spaces."""
    return value.replace("\t", " ").replace("\r", " ").replace("\n", " ")


def overview_line(o: Overview) -> str:
    """One OVER line (RFC 3977 §8.3, the order of LIST OVERVIEW.FMT), without its CRLF."""
    xref = f"Xref: {overview_field(o.xref)}" if o.xref else ""
    f = overview_field
    return "\t".join((str(o.number), f(o.subject), f(o.from_), f(o.date), f(o.message_id), f(o.references),
                      str(o.bytes), str(o.lines), xref))


def _ov_field(o: Overview, name: str) -> str:
    return {"subject": o.subject, "from": o.from_, "date": o.date, "message-id": o.message_id,
            "references": o.references, ":lines": str(o.lines), "xref": o.xref}[name]
