"""NOTIFY arguments (RFC 5465 §3.1, §8 formal syntax).

::

    notify           = "NOTIFY" SP (notify-set / notify-none)
    notify-set       = "SET" [status-indicator] SP event-groups
    status-indicator = SP "STATUS"
    event-groups     = event-group *(SP event-group)
    event-group      = "(" filter-mailboxes SP events ")"
    filter-mailboxes = "selected" / "selected-delayed" / "inboxes" / "personal" / "subscribed"
                       / ("subtree" SP one-or-more-mailbox) / ("mailboxes" SP one-or-more-mailbox)
    events           = ("(" event *(SP event) ")") / "NONE"
    message-event    = ("MessageNew" [SP "(" fetch-att *(SP fetch-att) ")"]) / "MessageExpunge"
                       / "FlagChange" / "AnnotationChange"

Everything the RFC calls an error is ``BAD`` here; an event this server does not report is
kept in ``NotifyArgs.unsupported`` so that the handler can refuse with ``NO [BADEVENT …]``
(§3.1: NO, not BAD).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ParseError
from .args import mailbox_name
from .base import Reader
from .fetch import FetchAtt, parse_fetch_atts

# Canonical spellings (atoms are case-insensitive, §8).
MESSAGE_EVENTS = ("MessageNew", "MessageExpunge", "FlagChange", "AnnotationChange")
MAILBOX_EVENTS = ("MailboxName", "SubscriptionChange", "MailboxMetadataChange")
USER_EVENTS = ("ServerMetadataChange",)
_CANONICAL = {e.upper(): e for e in MESSAGE_EVENTS + MAILBOX_EVENTS + USER_EVENTS}

SELECTED_FILTERS = ("SELECTED", "SELECTED-DELAYED")
_FILTERS = SELECTED_FILTERS + ("INBOXES", "PERSONAL", "SUBSCRIBED", "SUBTREE", "MAILBOXES")

# Bounds on one command, so that a NOTIFY costs the server little to parse and to keep.
MAX_GROUPS = 64
MAX_NAMES = 1000


@dataclass(frozen=True, slots=True)
class EventGroup:
    filter: str  # one of _FILTERS, upper case
    mailboxes: tuple[str, ...]  # SUBTREE / MAILBOXES names (decoded, as the store spells them)
    events: frozenset[str]  # canonical event names; empty for NONE
    fetch_atts: tuple[FetchAtt, ...] = ()  # MessageNew's list (selected filters only)

    @property
    def selected(self) -> bool:
        return self.filter in SELECTED_FILTERS


@dataclass(frozen=True, slots=True)
class NotifyArgs:
    none: bool  # NOTIFY NONE
    status: bool = False  # NOTIFY SET STATUS
    groups: tuple[EventGroup, ...] = ()
    unsupported: tuple[str, ...] = ()  # event names as the client spelt them


def notify(r: Reader) -> NotifyArgs:
    r.sp()
    word = r.keyword()
    if word == "NONE":
        r.end()
        return NotifyArgs(none=True)
    if word != "SET":
        raise ParseError("Expected SET or NONE")
    r.sp()
    status = False
    if r.take_word(b"STATUS"):
        status = True
        r.sp()
    groups: list[EventGroup] = []
    unsupported: list[str] = []
    names = 0
    while True:
        group = _event_group(r, unsupported)
        names += len(group.mailboxes)
        groups.append(group)
        if len(groups) > MAX_GROUPS or names > MAX_NAMES:
            raise ParseError("Too many event groups or mailboxes")
        if r.at_end():
            break
        r.sp()
    _check(groups)
    return NotifyArgs(False, status, tuple(groups), tuple(unsupported))


def _event_group(r: Reader, unsupported: list[str]) -> EventGroup:
    r.expect(b"(")
    flt = r.keyword()
    if flt not in _FILTERS:
        raise ParseError("Unknown mailbox filter")
    mailboxes: tuple[str, ...] = ()
    if flt in ("SUBTREE", "MAILBOXES"):
        r.sp()
        if r.peek() == 0x28:  # many-mailboxes = "(" mailbox *(SP mailbox) ")"
            raw = r.paren_list(r.astring)
            if not raw:
                raise ParseError("Empty mailbox list")
        else:
            raw = [r.astring()]
        # §6.6: no wildcard expansion; a name is a name.
        mailboxes = tuple(mailbox_name(m) for m in raw)
    r.sp()
    events: set[str] = set()
    fetch_atts: tuple[FetchAtt, ...] = ()
    if r.take_word(b"NONE"):
        pass
    else:
        r.expect(b"(", "( or NONE")
        while True:
            atom = r.atom().decode("ascii")
            name = _CANONICAL.get(atom.upper())
            if name is None:
                unsupported.append(atom)  # event-ext = atom: a NO [BADEVENT], not a BAD
            elif name in events:
                raise ParseError("Duplicate event")
            else:
                events.add(name)
            if name == "MessageNew" and r.peek_is(b" ("):
                r.sp()
                fetch_atts = tuple(parse_fetch_atts(r))  # a "(" list: never a macro here
            if r.take(b")"):
                break
            r.sp()
    r.expect(b")")
    return EventGroup(flt, mailboxes, frozenset(events), fetch_atts)


def _check(groups: list[EventGroup]) -> None:
    """The composition rules of §5 and §6.1, each a tagged BAD."""
    if sum(g.selected for g in groups) > 1:
        raise ParseError("Only one of selected and selected-delayed may be given")  # §6.1
    for g in groups:
        ev = g.events
        if ("MessageNew" in ev) != ("MessageExpunge" in ev):
            raise ParseError("MessageNew and MessageExpunge must be given together")  # §5
        if ev & {"FlagChange", "AnnotationChange"} and "MessageNew" not in ev:
            raise ParseError("FlagChange and AnnotationChange need MessageNew and MessageExpunge")  # §5
        if g.selected and ev - set(MESSAGE_EVENTS):
            raise ParseError("Only message events may be given for the selected mailbox")  # §6.1
        if g.fetch_atts and not g.selected:
            # §5.2: the fetch-att list says what to FETCH, which only the selected mailbox gets.
            raise ParseError("MessageNew attributes are for the selected mailbox only")
