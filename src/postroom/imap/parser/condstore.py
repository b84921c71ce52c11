"""Arguments of ENABLE (RFC 5161) and of the CONDSTORE/QRESYNC forms (RFC 7162 §7, formal syntax).

SELECT/EXAMINE parameters (``CONDSTORE``, ``QRESYNC (uidvalidity modseq [known-uids]
[(seq-match-data)])``), FETCH modifiers (``CHANGEDSINCE n``, ``VANISHED``) and the STORE
modifier ``UNCHANGEDSINCE n``. Sequence sets stay ranges (:class:`SequenceSet`): a known-uids
set of ``1:4294967295`` costs one tuple, never a list of four billion numbers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import ParseError
from . import args
from .args import FetchArgs, StoreArgs, mailbox_name
from .base import Reader
from .fetch import FetchAtt, parse_fetch_atts
from .seqset import STAR, SequenceSet

# mod-sequence-value = 1*DIGIT ; positive unsigned 63-bit integer (§7); valzer allows 0.
MAX_MODSEQ = 2**63 - 1
_DIGITS = re.compile(rb"\d{1,20}")


def mod_sequence(r: Reader, zero_ok: bool = False) -> int:
    m = _DIGITS.match(r.buf, r.pos)
    if m is None:
        raise ParseError("Expected a mod-sequence")
    r.pos = m.end()
    n = int(m.group())
    if n > MAX_MODSEQ or (n == 0 and not zero_ok):
        raise ParseError("Invalid mod-sequence")
    return n


# -- ENABLE (RFC 5161 §4: "ENABLE" 1*(SP capability)) ---------------------------------
def enable(r: Reader) -> list[str]:
    caps: list[str] = []
    while not r.at_end():
        r.sp()
        caps.append(r.atom().decode("ascii").upper())
    if not caps:
        raise ParseError("ENABLE needs a capability")
    return caps


# -- SELECT / EXAMINE parameters (§3.1.8, §3.2.5) ---------------------------------------
@dataclass(frozen=True, slots=True)
class QresyncParam:
    uidvalidity: int
    modseq: int
    known_uids: SequenceSet | None = None
    # (known-sequence-set, known-uid-set): checked for syntax and size, not needed for a
    # correct answer (see handlers/qresync.py).
    seq_match: tuple[SequenceSet, SequenceSet] | None = None


@dataclass(frozen=True, slots=True)
class SelectArgs:
    mailbox: str
    condstore: bool = False
    qresync: QresyncParam | None = None


def count(s: SequenceSet) -> int:
    """How many numbers a set names (``*`` counts as one), without enumerating it."""
    return sum(1 if STAR in (a, b) else abs(b - a) + 1 for a, b in s.ranges)


def _qresync(r: Reader) -> QresyncParam:
    r.sp()
    r.expect(b"(")
    uidvalidity = r.nz_number()
    r.sp()
    modseq = mod_sequence(r)
    known = None
    match = None
    if r.take(b" "):
        if r.peek() != 0x28:
            known = SequenceSet.parse(r)
            if known.saved:  # RFC 5182: SELECT empties the saved result, so "$" means nothing here
                raise ParseError("known-uids cannot be $")
            if not r.take(b" "):
                r.expect(b")")
                return QresyncParam(uidvalidity, modseq, known)
        r.expect(b"(")
        seqs = SequenceSet.parse(r)
        r.sp()
        uids = SequenceSet.parse(r)
        r.expect(b")")
        if seqs.saved or uids.saved:
            raise ParseError("seq-match-data cannot use $")
        if STAR in (x for rg in seqs.ranges + uids.ranges for x in rg):
            raise ParseError("seq-match-data cannot use *")
        if count(seqs) != count(uids):
            raise ParseError("seq-match-data sets differ in size")  # RFC 7162 §3.2.5.2
        match = (seqs, uids)
    r.expect(b")")
    return QresyncParam(uidvalidity, modseq, known, match)


def select(r: Reader) -> SelectArgs:
    """``SELECT mailbox [SP "(" select-param *(SP select-param) ")"]``"""
    r.sp()
    name = mailbox_name(r.astring())
    condstore = False
    qresync = None
    if r.take(b" "):
        r.expect(b"(")
        while True:
            word = r.atom().decode("ascii").upper()
            if word == "CONDSTORE" and not condstore:
                condstore = True
            elif word == "QRESYNC" and qresync is None:
                qresync = _qresync(r)
            else:
                raise ParseError("Unknown or repeated SELECT parameter")
            if r.take(b")"):
                break
            r.sp()
    r.end()
    return SelectArgs(name, condstore, qresync)


# -- FETCH modifiers (§3.1.4.1, §3.2.6) -------------------------------------------------
@dataclass(frozen=True, slots=True)
class CondFetchArgs:
    seqset: SequenceSet
    atts: tuple[FetchAtt, ...]
    changedsince: int | None = None
    vanished: bool = False


def fetch(r: Reader) -> CondFetchArgs:
    start = r.pos
    try:
        plain: FetchArgs = args.fetch(r)  # the usual form, with its parse cache
        return CondFetchArgs(plain.seqset, plain.atts)
    except ParseError:
        r.pos = start
    r.sp()
    seqset = SequenceSet.parse(r)
    r.sp()
    atts = tuple(parse_fetch_atts(r))
    changedsince = None
    vanished = False
    r.sp()
    r.expect(b"(")
    while True:
        word = r.atom().decode("ascii").upper()
        if word == "CHANGEDSINCE" and changedsince is None:
            r.sp()
            changedsince = mod_sequence(r)  # mod-sequence-value: 0 is BAD
        elif word == "VANISHED" and not vanished:
            vanished = True
        else:
            raise ParseError("Unknown or repeated FETCH modifier")
        if r.take(b")"):
            break
        r.sp()
    r.end()
    if vanished and changedsince is None:
        raise ParseError("VANISHED needs CHANGEDSINCE")  # RFC 7162 §3.2.6
    return CondFetchArgs(seqset, atts, changedsince, vanished)


# -- STORE modifier (§3.1.3) ------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class CondStoreArgs:
    store: StoreArgs
    unchangedsince: int | None = None


def store(r: Reader) -> CondStoreArgs:
    """``STORE seqset [SP "(" UNCHANGEDSINCE SP mod-sequence-valzer ")"] SP store-att-flags``"""
    r.sp()
    seqset = SequenceSet.parse(r)
    unchangedsince = None
    if r.peek_is(b" ("):
        r.pos += 2
        if not r.take_word(b"UNCHANGEDSINCE "):
            raise ParseError("Unknown STORE modifier")
        unchangedsince = mod_sequence(r, zero_ok=True)
        r.expect(b")")
    return CondStoreArgs(args.store_att(r, seqset), unchangedsince)
