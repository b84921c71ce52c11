"""FETCH and UID FETCH (RFC 3501 §6.4.5, §7.4.2).

The records come from the store's cached message index (one query to bring it up to
date); then, in batches of ``settings.batch`` messages, the bytes and the structure
(ENVELOPE, BODYSTRUCTURE, sections) are read with one call each, and only for the
attributes that need them. HEADER and HEADER.FIELDS of the message itself need no
stored structure: the header ends at the first empty line. The response is streamed,
so FETCH 1:* of a big mailbox does not build one huge buffer. A message whose bytes
cannot be read back (a damaged segment) does not take the others down with it: every
readable message is sent, then the command ends ``NO [CORRUPTION]`` (RFC 5530).
"""

from __future__ import annotations

import itertools
from bisect import bisect_left
from collections import OrderedDict
from typing import Any, AsyncIterator, Sequence

from ... import mime
from ...errors import MessageDamaged
from ...storage.api import MessageIndex
from ...storage.models import FlagOp, MessageInfo
from .. import names
from ..parser.fetch import BodySection
from ..responses import Reply, flag_list_cached, internaldate, literal
from ..selected import SelectedMailbox, seq_numbers
from ..session import Session
from . import rev2

_NEEDS_STRUCTURE = {"ENVELOPE", "BODY", "BODYSTRUCTURE"}


_TOP_HEADER = {"HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT"}


def _needs_structure(sec: BodySection) -> bool:
    return bool(sec.part) or (sec.text is not None and sec.text not in _TOP_HEADER)


def _header_end(raw: bytes) -> int:
    """Where the body of the top-level message starts (what ``mime.parse`` gives as
    ``root.body_start``, via ``split_header``): after the first empty line, or at the end
    when there is none. An empty line is a line break at the start or right after
    another line break. Enough for HEADER / HEADER.FIELDS without a stored structure.
    """
    if raw[:1] == b"\n" or raw[:2] == b"\r\n":
        return raw.index(b"\n") + 1
    crlf = raw.find(b"\n\r\n")
    # A bare-LF empty line counts only before the first CRLF one (no scan of the body).
    lf = raw.find(b"\n\n", 0, len(raw) if crlf < 0 else crlf + 2)
    if lf >= 0 and (crlf < 0 or lf < crlf):
        return lf + 2
    return len(raw) if crlf < 0 else crlf + 3


class _HeaderCache:
    """HEADER / HEADER.FIELDS results of recent FETCHes, shared by the process's sessions.

    Like Dovecot's cache file: clients fetch the same few header fields of the same
    messages again and again (on every resync, from every device), and filtering a
    header costs far more than the lookup. Keyed by the message's stored bytes
    (``MessageInfo.blob``, which never refer to other bytes) and the section spec;
    least recently used entries go beyond ``limit`` bytes.
    """

    def __init__(self, limit: int = 16 * 1024 * 1024) -> None:
        self.limit = limit
        self.size = 0
        self._data: OrderedDict[tuple[str, bytes], bytes] = OrderedDict()

    def get(self, key: tuple[str, bytes]) -> bytes | None:
        data = self._data.get(key)
        if data is not None:
            self._data.move_to_end(key)
        return data

    def put(self, key: tuple[str, bytes], data: bytes) -> None:
        if key in self._data or len(data) > self.limit // 64:
            return
        self._data[key] = data
        self.size += len(data) + len(key[0]) + len(key[1]) + 100
        while self.size > self.limit:
            (blob, spec), old = self._data.popitem(last=False)
            self.size -= len(old) + len(blob) + len(spec) + 100


HEADER_CACHE = _HeaderCache()


class _Responses:
    """Whole FETCH responses (what follows ``* n FETCH ``) of recent FETCHes, shared by the
    process's sessions, for attribute lists of UID, FLAGS, RFC822.SIZE and top-level header
    sections only (BODY.PEEK[HEADER.FIELDS (…)], the usual client sync).

    Keyed by the plan, the stored bytes (which fix the header data and the size), the UID,
    the flags and \\Recent: everything the response is made of, so an entry is never stale. A
    client that fetches the same headers again (every resync, every device) then costs one
    lookup per message instead of a header-cache lookup and formatting. Bounded in bytes;
    emptied at once when full (cheap, and a hit rate that low means little to lose).
    """

    def __init__(self, limit: int = 8 * 1024 * 1024) -> None:
        self.limit = limit
        self.size = 0
        self.data: dict[tuple[int, str, int, frozenset[str], bool], bytes] = {}
        # The same responses by record, per plan serial: ``id(record)`` -> response, for
        # records without \Recent. The index hands out one MessageInfo per message until the
        # mailbox changes, so the usual hit costs a lookup by an int the object need not
        # even be read for, instead of a key tuple of four of its fields (each a memory
        # access: at 50 messages per FETCH these misses are most of the lookup's cost).
        # The records are kept alive in ``kept`` as long as their entries, so no other
        # object can have their id meanwhile: a hit is that very (immutable) record, the
        # same blob, UID and flags as its key in ``data``.
        self.records: dict[int, dict[int, bytes]] = {}
        self.kept: list[MessageInfo] = []
        # By position in an index (see ``spot``): (plan serial, mailbox id) -> (index, responses).
        self.positions: dict[tuple[int, int], tuple[MessageIndex, list[bytes | None]]] = {}

    def put(self, key: tuple[int, str, int, frozenset[str], bool], response: bytes) -> None:
        self.size += len(response) + len(key[1]) + 120
        if self.size > self.limit:
            self.clear()
            self.size = len(response) + len(key[1]) + 120
        self.data[key] = response

    def remember(self, serial: int, infos: list[MessageInfo], responses: list[bytes]) -> None:
        """File ``responses`` (found in ``data``) under their records too."""
        records = self.records.get(serial)
        if records is None:
            records = self.records[serial] = {}
        for m, response in zip(infos, responses):
            key = id(m)
            if key not in records:
                records[key] = response
                self.kept.append(m)
                self.size += 150  # the entry and the record it keeps alive (its response is counted)
        if self.size > self.limit:
            self.clear()

    def spot(self, serial: int, mailbox_id: int, idx: MessageIndex, uids: list[int]) -> tuple[list[bytes | None], int] | None:
        """Where the responses of ``uids`` go in the list kept for ``idx`` by position (``idx.uids``),
        when they are consecutive there (a range: the usual FETCH), else None.

        One list per plan serial and mailbox, for its latest index only: an index never
        changes once handed out (a change makes a new one), so a response filed at a
        position is that message's for as long as the index is the one in use, and a range
        of them costs two slices instead of a lookup per message.
        """
        iu = idx.uids
        n = len(uids)
        at = bisect_left(iu, uids[0])
        if not isinstance(iu, list) or iu[at:at + n] != uids:
            return None
        key = (serial, mailbox_id)
        entry = self.positions.get(key)
        if entry is None or entry[0] is not idx:
            # Counted per message: the list's slot, and what the index it keeps alive may hold
            # of its own once the store has a newer one (its row dict and UID list; the rows
            # themselves are shared between an index and the next).
            cost = _POSITION_COST * len(iu)
            if entry is not None:
                self.size -= _POSITION_COST * len(entry[1])
            entry = self.positions[key] = (idx, [None] * len(iu))
            self.size += cost
            if self.size > self.limit:
                self.clear()
                self.positions[key] = entry
                self.size = cost
        return entry[1], at

    def clear(self) -> None:
        self.data.clear()
        self.positions.clear()
        self.records.clear()
        self.kept.clear()  # after the entries naming them: no stale id can match then
        self.size = 0


_POSITION_COST = 64  # bytes per message of a list by position (see _Responses.spot)
RESPONSES = _Responses()


def _is_top_header(sec: BodySection) -> bool:
    return not sec.part and sec.text in _TOP_HEADER


def _section_bytes(raw: bytes, parsed: "mime.ParsedMessage | None", sec: BodySection, blob: str,
                   hits: dict[tuple[str, bytes], bytes]) -> bytes:
    if _is_top_header(sec):
        key = (blob, sec.spec())
        data = hits.get(key)
        if data is None:
            data = HEADER_CACHE.get(key)  # safe here: raw is at hand if it is evicted meanwhile
        if data is None:
            spec = key[1].decode("ascii", "replace")
            if parsed is None:
                data = mime.header_section(raw, _header_end(raw), spec) or b""
            else:
                data = mime.section(raw, parsed, spec) or b""
            HEADER_CACHE.put(key, data)
    elif sec.part or sec.text or sec.fields:
        assert parsed is not None
        data = mime.section(raw, parsed, sec.spec().decode("ascii", "replace"))
        if data is None:
            data = b""  # a part that does not exist reads as empty (as Dovecot answers)
    else:
        data = raw
    if sec.partial is not None:
        start, length = sec.partial
        data = data[start : start + length]  # §6.4.5: past the end gives an empty string
    return data


def fetch_uids(s: Session, box: SelectedMailbox, uids: list[int], atts: list[Any], by_uid: bool,
               head: list[bytes] | None = None, first: list[MessageInfo] | None = None) -> Reply:
    """FETCH ``atts`` of ``uids`` (ascending), after the untagged lines ``head``
    (handlers/condstore.py: CHANGEDSINCE has chosen the UIDs, VANISHED lines go first).
    ``first``: the records of the first batch, already read from the index (fetch_reply)."""
    if by_uid and "UID" not in atts:
        atts.insert(0, "UID")  # §6.4.8: UID FETCH always returns the UID
    reply = Reply("Fetch completed", untagged=head or [])
    if uids:
        reply.stream = _stream(s, box, uids, atts, reply, first)
    return reply


async def fetch_reply(s: Session, box: SelectedMailbox, uids: list[int], atts: list[Any], by_uid: bool,
                      head: list[bytes] | None = None) -> Reply:
    """:func:`fetch_uids`, answered at once when every response is kept in RESPONSES.

    The usual header sync of a client (FLAGS and a few header fields of a few dozen
    messages, again and again) then costs the index refresh and, for a range, two list
    slices and one join (RESPONSES by position, ``_answer``), otherwise a lookup per
    message, without the batch machinery of ``_stream`` (an async generator per command,
    its per-batch set-up, a write per batch): the same bytes, from the same index snapshot
    and the same RESPONSES entries (tests/unit/imap/test_imap_fetch_cached.py checks them
    against the streamed path). Otherwise the streamed path runs, reusing the records
    read here for its first batch.
    """
    if by_uid and "UID" not in atts:
        atts.insert(0, "UID")  # §6.4.8
    if not uids:
        return Reply("Fetch completed", untagged=head or [])
    plan = _plan_for(atts)
    if not plan.reusable or len(uids) > s.settings.batch:
        return fetch_uids(s, box, uids, atts, by_uid, head)
    idx = await s.store.message_index(box.id)
    # \Recent is the session's own: the shared layers keep responses without it.
    spot = None if box.recent else RESPONSES.spot(plan.serial, box.id, idx, uids)
    if spot is not None:
        kept, at = spot
        hit = kept[at:at + len(uids)]
        if None not in hit:
            return _answer(box, uids, hit, head)  # type: ignore[arg-type]  # no None in it
    infos = idx.messages(uids)
    got = _cached(plan, box, infos) if len(infos) == len(uids) else None
    if got is None:
        return fetch_uids(s, box, uids, atts, by_uid, head, infos)
    if spot is not None:
        kept[at:at + len(uids)] = got  # type: ignore[assignment]  # list[bytes] into list[bytes | None]
    return _answer(box, uids, got, head)


def _answer(box: SelectedMailbox, uids: list[int], got: list[bytes], head: list[bytes] | None) -> Reply:
    """The Reply of a FETCH of ``uids`` (all in the view) whose responses are ``got``."""
    lines = head or []
    view = box.uids
    n = len(uids)
    start = bisect_left(view, uids[0])
    seen = view[start:start + n]
    if not isinstance(seen, list):
        seen = list(seen)  # a range: the view of a first SELECT (storage MailboxView)
    if seen == uids:
        # The usual range: consecutive in the view, so numbered from start + 1 (exact: the
        # slice equals the UIDs). Prefixes and responses are joined without formatting.
        lines.append(b"".join(itertools.chain.from_iterable(zip(_prefixes(start + 1, start + n), got))))
    else:
        seqs = seq_numbers(view, uids)
        lines.append(b"".join([b"* %d FETCH %s" % (seq, response) for seq, response in zip(seqs, got) if seq]))
    return Reply("Fetch completed", untagged=lines)


def _cached(plan: _Plan, box: SelectedMailbox, infos: list[MessageInfo]) -> list[bytes] | None:
    """The kept responses of ``infos``, or None unless every one is kept. The keys are those
    ``_stream`` files them under."""
    serial = plan.serial
    get = RESPONSES.data.get
    if box.recent:
        is_recent = box.is_recent
        got = [get((serial, m.blob, m.uid, m.flags, is_recent(m.uid))) for m in infos]
        if None in got:
            return None
    else:
        records = RESPONSES.records.get(serial)
        if records is not None:
            by_record = records.get
            got = [by_record(id(m)) for m in infos]
        if records is None or None in got:
            got = [get((serial, m.blob, m.uid, m.flags, False)) for m in infos]
            if None in got:
                return None
            RESPONSES.remember(serial, infos, got)  # type: ignore[arg-type]
    return got  # type: ignore[return-value]


# ``* n FETCH `` for the sequence numbers up to _PREFIX_MAX, made as they are first needed
# (about 50 bytes each): the fast path slices them instead of formatting one per message.
_PREFIX_MAX = 1 << 16
_PREFIXES: list[bytes] = [b""]


def _prefixes(lo: int, hi: int) -> list[bytes]:
    """``* n FETCH `` for n from ``lo`` to ``hi`` (both at least 1)."""
    have = len(_PREFIXES)
    if have <= hi < _PREFIX_MAX:
        _PREFIXES.extend([b"* %d FETCH " % n for n in range(have, hi + 1)])
    if hi < len(_PREFIXES):
        return _PREFIXES[lo:hi + 1]
    return [b"* %d FETCH " % n for n in range(lo, hi + 1)]


# How each attribute is formatted (see _Plan): kinds with a fast path in _stream.
_UID, _FLAGS, _SIZE, _TOP_HEADER_SECTION, _OTHER = range(5)


class _Plan:
    """What a FETCH attribute list needs, worked out once per distinct list."""

    __slots__ = ("items", "sections", "specs", "need_raw", "need_structure", "sets_seen", "want_flags",
                 "want_modseq", "want_uid", "headers_only", "one_header", "serial", "reusable")

    def __init__(self, atts: tuple[Any, ...], serial: int = 0) -> None:
        # Per attribute: (kind, attribute, section spec, response name + SP).
        self.items: list[tuple[int, Any, bytes, bytes]] = []
        for att in atts:
            if isinstance(att, BodySection):
                kind = _TOP_HEADER_SECTION if _is_top_header(att) and att.partial is None else _OTHER
                self.items.append((kind, att, att.spec(), att.response_name() + b" "))
            elif att == "UID":
                self.items.append((_UID, att, b"", b""))
            elif att == "FLAGS":
                self.items.append((_FLAGS, att, b"", b""))
            elif att == "RFC822.SIZE":
                self.items.append((_SIZE, att, b"", b""))
            else:
                self.items.append((_OTHER, att, b"", b""))
        self.sections = [x for x in atts if isinstance(x, BodySection)]
        self.specs = [x.spec() for x in self.sections]
        self.need_raw = bool(self.sections)
        self.need_structure = any(x in _NEEDS_STRUCTURE for x in atts) or \
            any(_needs_structure(x) for x in self.sections)
        self.sets_seen = any(x.sets_seen for x in self.sections)
        self.want_flags = "FLAGS" in atts
        self.want_modseq = "MODSEQ" in atts
        self.want_uid = "UID" in atts
        self.headers_only = all(_is_top_header(x) for x in self.sections)
        self.one_header = self.headers_only and len(self.sections) == 1 and self.sections[0].partial is None
        # Responses made only of UID, FLAGS, RFC822.SIZE and top-level header sections, none
        # setting \Seen, are kept in RESPONSES under this plan's serial.
        self.serial = serial
        self.reusable = not self.sets_seen and all(kind != _OTHER for kind, _, _, _ in self.items)


_PLANS: dict[tuple[Any, ...], _Plan] = {}
_serials = itertools.count(1)


def _plan_for(atts: list) -> _Plan:
    key = tuple(atts)
    plan = _PLANS.get(key)
    if plan is None:
        if len(_PLANS) >= 256:
            _PLANS.clear()
        plan = _PLANS[key] = _Plan(key, next(_serials))
    return plan


async def _stream(s: Session, box: SelectedMailbox, uids: list[int], atts: list, reply: Reply,
                  first: list[MessageInfo] | None = None) -> AsyncIterator[bytes]:
    store = s.store
    p = _plan_for(atts)
    need_raw, need_structure, want_flags, plan = p.need_raw, p.need_structure, p.want_flags, p.items
    sets_seen = not box.readonly and p.sets_seen
    cache_get = HEADER_CACHE.get
    flags_wire = box.flags_wire
    batch = s.settings.batch
    reusable, serial = p.reusable, p.serial
    response_get = RESPONSES.data.get
    missing = False
    damaged: set[int] = set()  # UIDs whose bytes could not be read back
    unknown_cte = False
    for i in range(0, len(uids), batch):
        chunk = uids[i : i + batch]
        # Refreshed per batch: one query when nothing changed, so flags stay current.
        if first is not None and i == 0:
            infos = first  # read just before by fetch_reply
        else:
            infos = (await store.message_index(box.id)).messages(chunk)
        if len(infos) != len(chunk):
            missing = True
        has_recent = bool(box.recent)
        keys = None
        if reusable:
            keys = [(serial, m.blob, m.uid, m.flags, has_recent and box.is_recent(m.uid)) for m in infos]
            got = [response_get(k) for k in keys]
            if None not in got:  # every response made before: no bytes to read, nothing to format
                seqs = seq_numbers(box.uids, [m.uid for m in infos])
                yield b"".join([b"* %d FETCH %s" % (seq, response) for seq, response in zip(seqs, got) if seq])
                continue
        seen_changed: set[int] = set()
        if sets_seen:
            unseen = [m.uid for m in infos if "\\Seen" not in m.flags]
            if unseen:
                res = await store.store_flags(box.id, unseen, FlagOp.ADD, frozenset({"\\Seen"}))
                box.note_own(res.updated)
                upd = {m.uid: m for m in res.updated}
                seen_changed = set(upd)
                infos = [upd.get(m.uid, m) for m in infos]
        hits: dict[tuple[str, bytes], bytes] = {}
        # One top-level header section (the usual client header fetch): its cached data
        # per message, without going through ``hits``.
        pre: list[bytes | None] | None = [None] * len(infos) if p.one_header else None
        raws = await _read(s, infos, p, hits, pre, damaged) if need_raw else [b""] * len(infos)
        parsed_all = await store.read_structures(infos) if need_structure else [None] * len(infos)
        out: list[bytes] = []
        seqs = seq_numbers(box.uids, [m.uid for m in infos])  # now: the view may have changed during the reads
        for j, (m, raw, parsed) in enumerate(zip(infos, raws, parsed_all)):
            uid = m.uid
            seq = seqs[j]
            if not seq:
                continue
            if uid in damaged:
                continue
            if raw is None or (need_structure and parsed is None):
                # Expunged and its bytes gone in between: skip it (RFC 2180 §4.1).
                s.ctx.log.debug("imap fetch: message %d vanished", m.uid)
                missing = True
                continue
            items: list[bytes] = []
            for kind, att, spec, name in plan:
                if kind == _UID:
                    items.append(b"UID %d" % m.uid)
                elif kind == _FLAGS:
                    # box.flags_wire(m), inlined
                    items.append(b"FLAGS " + flag_list_cached(m.flags, has_recent and box.is_recent(uid)))
                elif kind == _TOP_HEADER_SECTION:
                    data = pre[j] if pre is not None else hits.get((m.blob, spec))
                    if data is None:
                        key = (m.blob, spec)
                        data = cache_get(key)  # safe here: raw is at hand if it is evicted meanwhile
                        if data is None:
                            data = _section_bytes(raw, parsed, att, m.blob, hits)
                    items.append(b"%s{%d}\r\n%s" % (name, len(data), data))
                elif kind == _SIZE:
                    items.append(b"RFC822.SIZE %d" % m.size)
                else:
                    try:
                        items.append(_item(att, m, box, raw, parsed, hits))
                    except mime.UnknownCte:
                        # RFC 3516 §4.3: the command fails NO [UNKNOWN-CTE]; the other
                        # messages are still sent (as for damaged ones).
                        unknown_cte = True
                        break
            if len(items) < len(plan):
                continue  # stopped by an unknown Content-Transfer-Encoding: no response
            if m.uid in seen_changed:
                # §6.4.5: \Seen was set as a side effect: report the new flags; with CONDSTORE
                # the new MODSEQ too, and with QRESYNC the UID (RFC 7162 §3.1.4.1, §3.2.4).
                if not want_flags:
                    items.append(b"FLAGS " + flags_wire(m))
                if box.condstore and not p.want_modseq:
                    items.append(b"MODSEQ (%d)" % m.modseq)
                if (box.qresync or box.rev2) and not p.want_uid:  # RFC 9051 §7.5.2 too
                    items.append(b"UID %d" % m.uid)
            if keys is not None:
                response = b"(%s)\r\n" % b" ".join(items)
                RESPONSES.put(keys[j], response)
                out.append(b"* %d FETCH %s" % (seq, response))
                continue
            out.append(b"* %d FETCH (%s)\r\n" % (seq, b" ".join(items)))
        yield b"".join(out)
    if damaged:
        reply.status, reply.code, reply.text = b"NO", b"CORRUPTION", "Some messages are damaged and cannot be read"
    elif unknown_cte:
        reply.status, reply.code, reply.text = b"NO", b"UNKNOWN-CTE", "Unknown Content-Transfer-Encoding"
    elif missing:
        # RFC 5530 EXPUNGEISSUED: some messages were expunged by another session.
        reply.status, reply.code, reply.text = b"NO", b"EXPUNGEISSUED", "Some messages were expunged"


async def read_messages(s: Session, msgs: Sequence[MessageInfo], damaged: set[int]) -> list[bytes | None]:
    """The messages' bytes (None: vanished, or damaged, whose UIDs go to ``damaged``).

    The store reads a batch with one call and raises MessageDamaged for the whole batch
    if one message in it cannot be read back; then each is read alone, so the damaged
    one (logged, one line) does not hide the others.
    """
    try:
        return await s.store.read_messages(msgs)  # type: ignore[no-any-return]
    except MessageDamaged:
        pass
    out: list[bytes | None] = []
    for m in msgs:
        try:
            out.append(await s.store.read_message(m))
        except FileNotFoundError:
            out.append(None)
        except MessageDamaged as exc:
            s.ctx.log.error("imap: %s", exc)
            damaged.add(m.uid)
            out.append(None)
    return out


async def _read(s: Session, infos: list[MessageInfo], plan: _Plan, hits: dict[tuple[str, bytes], bytes],
                pre: list[bytes | None] | None, damaged: set[int]) -> list[bytes | None]:
    """The bytes of the messages, except (as b"") those whose every section is in
    HEADER_CACHE; the cached data go to ``hits`` (kept even if evicted meanwhile), or
    by position to ``pre`` when the plan has one section only."""
    if not plan.headers_only:
        return await read_messages(s, infos, damaged)
    specs = plan.specs
    get = HEADER_CACHE.get
    wanted = []
    if pre is not None:
        [spec] = specs
        for j, m in enumerate(infos):
            data = pre[j] = get((m.blob, spec))
            if data is None:
                wanted.append(m)
    else:
        for m in infos:
            found = [(key, get(key)) for key in ((m.blob, spec) for spec in specs)]
            if all(data is not None for _, data in found):
                hits.update(found)  # type: ignore[arg-type]
            else:
                wanted.append(m)
    if len(wanted) == len(infos):
        return await read_messages(s, infos, damaged)
    if not wanted:
        return [b""] * len(infos)
    got = dict(zip((m.uid for m in wanted), await read_messages(s, wanted, damaged)))
    return [got.get(m.uid, b"") for m in infos]


def _binary_item(att: BodySection, raw: bytes, parsed: "mime.ParsedMessage | None") -> bytes:
    """RFC 3516 §4.2: BINARY[part]<partial> / BINARY.SIZE[part] (raises mime.UnknownCte).

    The decoded data goes as literal8 (``~{n}``) when it holds a NUL, which a plain
    literal may not carry (RFC 3501 §9 CHAR8); a part that does not exist reads as empty,
    as for BODY[].
    """
    if not att.part:
        data = raw
    else:
        assert parsed is not None
        data = mime.binary_section(raw, parsed, att.spec().decode("ascii")) or b""
        if names.rev2() and data and rev2.is_text(parsed, att.part):
            data = rev2.crlf(data)  # RFC 9051 §7.5.2: text goes with CRLF (and SIZE counts it so)
    if att.kind == "BINARY.SIZE":
        return b"%s %d" % (att.response_name(), len(data))
    if att.partial is not None:
        start, length = att.partial
        data = data[start : start + length]
    if b"\x00" in data:
        return att.response_name() + b" ~{%d}\r\n" % len(data) + data
    return att.response_name() + b" " + literal(data)


def _item(att: object, m: MessageInfo, box: SelectedMailbox, raw: bytes, parsed: object,
          hits: dict[tuple[str, bytes], bytes]) -> bytes:
    if isinstance(att, BodySection):
        if att.binary:
            return _binary_item(att, raw, parsed)  # type: ignore[arg-type]
        data = _section_bytes(raw, parsed, att, m.blob, hits)  # type: ignore[arg-type]
        return att.response_name() + b" " + literal(data)
    if att == "UID":
        return b"UID %d" % m.uid
    if att == "FLAGS":
        return b"FLAGS " + box.flags_wire(m)
    if att == "INTERNALDATE":
        return b"INTERNALDATE " + internaldate(m.internaldate)
    if att == "RFC822.SIZE":
        return b"RFC822.SIZE %d" % m.size
    if att == "SAVEDATE":  # RFC 8514 §4.2: NIL for a message stored before save dates were kept
        return b"SAVEDATE " + (b"NIL" if m.savedate is None else internaldate(m.savedate))
    if att == "MODSEQ":
        return b"MODSEQ (%d)" % m.modseq  # RFC 7162 §3.1.4
    if att == "EMAILID":  # RFC 8474 §5.1: shared by the copies of the same stored bytes
        return b"EMAILID (" + m.email_id.encode() + b")"
    if att == "THREADID":  # RFC 8474 §5.2: NIL, as allowed when the server does not compute threads
        return b"THREADID NIL"
    if att == "ENVELOPE":
        # RFC 6855 §7: UTF-8 header text goes as it is only to a UTF8=ACCEPT session.
        return b"ENVELOPE " + mime.envelope(parsed, downgrade=not names.utf8())  # type: ignore[arg-type]
    if att == "BODYSTRUCTURE":
        return b"BODYSTRUCTURE " + mime.bodystructure(parsed, extended=True)  # type: ignore[arg-type]
    if att == "BODY":
        return b"BODY " + mime.bodystructure(parsed, extended=False)  # type: ignore[arg-type]
    raise AssertionError(att)

