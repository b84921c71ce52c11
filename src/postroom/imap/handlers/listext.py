"""LIST-EXTENDED (RFC 5258) with LIST-STATUS (RFC 5819) and the SPECIAL-USE options of
RFC 6154 §4, and CREATE … (USE (…)) (RFC 6154 §3 CREATE-SPECIAL-USE).

A LIST without any RFC 5258 syntax goes to the RFC 3501 handler unchanged. Mailbox
hierarchy placeholders (a parent whose mailbox was never created or was deleted) are
reported as ``\\Noselect`` in both forms, as a server-defined non-selectable mailbox;
``\\NonExistent`` (which implies ``\\Noselect``, RFC 5258 §3.4) is for subscribed names
that are not even that.
"""

from __future__ import annotations

import re

from ...errors import StoreError
from ...storage.models import HIERARCHY_SEPARATOR as SEP
from ..errors import ImapError, No
from ..parser.args import ListArgs
from ..parser.ext import CreateArgs, ListExtArgs
from ..responses import Reply, mailbox_wire, untagged
from ..session import Session
from . import mailboxes, rev2
from .mailboxes import _join, _parents, _sort_key, pattern_regex

_SEP_WIRE = b' "' + SEP.encode() + b'" '


async def list_(s: Session, a: ListExtArgs) -> Reply:
    if a.status is not None and rev2.on(s):
        rev2.check_status(a.status)  # else each STATUS would fail alone and be left out silently
    if not a.extended:
        return await mailboxes.list_(s, ListArgs(a.reference, a.patterns[0]))
    if a.patterns == ("",) and not a.select:
        # RFC 3501 §6.3.8's empty pattern (delimiter and root) keeps its meaning.
        return await mailboxes.list_(s, ListArgs(a.reference, ""))
    # An empty pattern among others, or with selection options, matches nothing.
    rxs: list[re.Pattern[str]] = [pattern_regex(_join(a.reference, p)) for p in a.patterns if p]

    def matches(name: str) -> bool:
        return any(rx.match(name) for rx in rxs)

    boxes = {m.name: m for m in await s.store.list_mailboxes(s.account_id)}
    names = set(boxes)
    for n in boxes:
        names.update(_parents(n))
    has_children = {p for n in names for p in _parents(n)}
    subs: set[str] = set()
    if "SUBSCRIBED" in a.returns:  # also implied by the SUBSCRIBED selection option
        subs = set(await s.store.list_subscriptions(s.account_id))
    select_subscribed = "SUBSCRIBED" in a.select
    select_special = "SPECIAL-USE" in a.select

    def satisfies(name: str) -> bool:
        """The selection criteria (RFC 5258 §3.1), all of which must hold."""
        if select_subscribed and name not in subs:
            return False
        if select_special:
            mb = boxes.get(name)
            return mb is not None and mb.special_use is not None
        return True

    candidates = names | subs if select_subscribed else set(names)
    # RECURSIVEMATCH (§3.5): a name matching the pattern is also returned, with CHILDINFO,
    # when a descendant satisfies the criteria without matching the pattern.
    childinfo: set[str] = set()
    if "RECURSIVEMATCH" in a.select:
        for n in candidates:
            if satisfies(n) and not matches(n):
                childinfo.update(_parents(n))
        candidates |= childinfo
    child_tags = b" ".join(b'"' + o.encode() + b'"' for o in sorted(a.select & {"SUBSCRIBED", "SPECIAL-USE"}))

    out: list[bytes] = []
    for name in sorted(candidates, key=_sort_key):
        if not matches(name):
            continue
        recursive = name in childinfo
        if not (satisfies(name) or recursive):
            continue
        mb = boxes.get(name)
        attrs: list[str] = []
        if mb is None:
            attrs.append("\\Noselect" if name in names else "\\NonExistent")
        if name in names:  # RFC 3348 CHILDREN, always sent (RFC 5258 §4 allows it)
            attrs.append("\\HasChildren" if name in has_children else "\\HasNoChildren")
        if name in subs:
            attrs.append("\\Subscribed")
        if mb is not None and mb.special_use:
            attrs.append(mb.special_use)  # always sent, as in plain LIST (RFC 6154 §2)
        line = b"LIST (" + " ".join(attrs).encode() + b")" + _SEP_WIRE + mailbox_wire(name)
        if recursive:
            line += b' ("CHILDINFO" (' + child_tags + b"))"
        out.append(untagged(line))
        if a.status is not None and mb is not None:
            out.extend(await _status_lines(s, name, a.status))
    return Reply("List completed", untagged=out)


async def _status_lines(s: Session, name: str, items: tuple[str, ...]) -> list[bytes]:
    """RFC 5819 §2: the STATUS response of each selectable mailbox LIST returned, as the
    STATUS command gives it; one that fails (deleted meanwhile) is left out."""
    try:
        return (await mailboxes.status(s, (name, list(items)))).untagged
    except (ImapError, StoreError):
        return []


# RFC 6154 §2: \All and \Flagged are virtual mailboxes of all / all flagged messages;
# a stored mailbox cannot be one. The store keeps one attribute per mailbox.
_CREATABLE_USES = frozenset({"\\Archive", "\\Drafts", "\\Junk", "\\Sent", "\\Trash"})


async def create(s: Session, a: CreateArgs) -> Reply:
    use = None
    if a.use:
        # RFC 6154 §3: refused with the USEATTR code, and the mailbox is not created.
        if len(a.use) > 1:
            raise No("Only one special-use attribute per mailbox", b"USEATTR")
        if a.use[0] not in _CREATABLE_USES:
            raise No("Special-use attribute not supported", b"USEATTR")
        use = a.use[0]
    return await mailboxes.create(s, a.name, use)


# RFC 8438 STATUS=SIZE and RFC 7889 APPENDLIMIT are STATUS items (handlers/mailboxes.py);
# the APPENDLIMIT capability carries the limit and is added by anystate.capabilities.
CAPS = ("LIST-EXTENDED", "LIST-STATUS", "SPECIAL-USE", "CREATE-SPECIAL-USE", "STATUS=SIZE")
