"""The one IMAP command table: verb → argument parser, handler, allowed states.

The dispatcher checks the state once from here (RFC 3501 §3 state diagram), so
handlers never re-check it. ``expunge_ok`` says whether pending EXPUNGE responses
may follow the command: not after FETCH, STORE, SEARCH, whose results use sequence
numbers (RFC 3501 §7.4.1); the UID forms may send them ("An EXPUNGE response MAY be
sent during a UID command").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from .handlers import anystate, append, idle, listext, mailboxes, messages, nonauth, quota, search, session_ext
from .handlers import compress, condstore, qresync
from .handlers import context as hcontext
from .handlers import metadata as hmetadata
from .handlers import notify as hnotify
from .handlers import sort as hsort
from .handlers import thread as hthread
from .parser import args as p
from .parser import condstore as pc
from .parser import ext as px
from .parser import metadata as pmetadata
from .parser import quota as pq
from .parser import search as psearch
from .parser import notify as pnotify
from .parser import sort as psort
from .responses import Reply
from .session import State

NA, AU, SE = State.NOT_AUTHENTICATED, State.AUTHENTICATED, State.SELECTED
ANY = frozenset({NA, AU, SE})
NOT_AUTH = frozenset({NA})
AUTH = frozenset({AU, SE})
SELECTED = frozenset({SE})


@dataclass(frozen=True, slots=True)
class CommandSpec:
    parse: Callable[[Any], Any]
    handle: Callable[[Any, Any], Awaitable[Reply]]
    states: frozenset[State]
    expunge_ok: bool = True


TABLE: dict[str, CommandSpec] = {
    # §6.1 any state
    "CAPABILITY": CommandSpec(p.no_args, anystate.capability, ANY),
    "NOOP": CommandSpec(p.no_args, anystate.noop, ANY),
    "LOGOUT": CommandSpec(p.no_args, anystate.logout, ANY),
    "ID": CommandSpec(px.id_args, session_ext.id_, ANY),  # RFC 2971
    # §6.2 not authenticated
    "STARTTLS": CommandSpec(p.no_args, nonauth.starttls, NOT_AUTH),
    "AUTHENTICATE": CommandSpec(p.authenticate, nonauth.authenticate, NOT_AUTH),
    "LOGIN": CommandSpec(p.login, nonauth.login, NOT_AUTH),
    # §6.3 authenticated (also valid in selected state)
    "SELECT": CommandSpec(pc.select, qresync.select, AUTH),  # RFC 7162 parameters
    "EXAMINE": CommandSpec(pc.select, qresync.examine, AUTH),
    "ENABLE": CommandSpec(pc.enable, condstore.enable, AUTH),  # RFC 5161
    # hnotify.own: RFC 5465 §5, a session's NOTIFY does not report its own mailbox changes.
    "CREATE": CommandSpec(px.create, hnotify.own(listext.create, "CREATE"), AUTH),  # RFC 6154 §3 USE
    "DELETE": CommandSpec(p.one_mailbox, hnotify.own(mailboxes.delete, "DELETE"), AUTH),
    "RENAME": CommandSpec(p.two_mailboxes, hnotify.own(mailboxes.rename, "RENAME"), AUTH),
    "SUBSCRIBE": CommandSpec(p.one_mailbox, hnotify.own(mailboxes.subscribe, "SUBSCRIBE"), AUTH),
    "UNSUBSCRIBE": CommandSpec(p.one_mailbox, hnotify.own(mailboxes.unsubscribe, "UNSUBSCRIBE"), AUTH),
    "LIST": CommandSpec(px.list_ext, listext.list_, AUTH),  # RFC 5258, RFC 5819
    "LSUB": CommandSpec(p.list_args, mailboxes.lsub, AUTH),
    "STATUS": CommandSpec(p.status, mailboxes.status, AUTH),
    "APPEND": CommandSpec(p.append, append.append, AUTH),  # RFC 3502 MULTIAPPEND, RFC 4469 CATENATE
    "NAMESPACE": CommandSpec(p.no_args, mailboxes.namespace, AUTH),  # RFC 2342
    "IDLE": CommandSpec(p.no_args, idle.idle, AUTH),  # RFC 2177
    "NOTIFY": CommandSpec(pnotify.notify, hnotify.notify, AUTH),  # RFC 5465
    "UNAUTHENTICATE": CommandSpec(p.no_args, session_ext.unauthenticate, AUTH),  # RFC 8437
    "GETQUOTAROOT": CommandSpec(pq.getquotaroot, quota.getquotaroot, AUTH),  # RFC 9208
    "GETQUOTA": CommandSpec(pq.quota_root, quota.getquota, AUTH),
    "SETQUOTA": CommandSpec(pq.setquota, quota.setquota, AUTH),
    "COMPRESS": CommandSpec(compress.mechanism, compress.compress, AUTH),  # RFC 4978 §3
    "GETMETADATA": CommandSpec(pmetadata.getmetadata, hmetadata.getmetadata, AUTH),  # RFC 5464 §4.2
    "SETMETADATA": CommandSpec(pmetadata.setmetadata, hmetadata.setmetadata, AUTH),  # RFC 5464 §4.3
    # §6.4 selected
    "CHECK": CommandSpec(p.no_args, messages.check, SELECTED),
    "CLOSE": CommandSpec(p.no_args, messages.close, SELECTED),
    "UNSELECT": CommandSpec(p.no_args, messages.unselect, SELECTED),  # RFC 3691
    "EXPUNGE": CommandSpec(p.no_args, messages.expunge, SELECTED),
    "SEARCH": CommandSpec(p.search, search.search, SELECTED, expunge_ok=False),
    "FETCH": CommandSpec(pc.fetch, condstore.fetch, SELECTED, expunge_ok=False),  # RFC 7162 modifiers
    "STORE": CommandSpec(pc.store, condstore.store, SELECTED, expunge_ok=False),
    "COPY": CommandSpec(p.copy, messages.copy, SELECTED),
    "MOVE": CommandSpec(p.copy, messages.move, SELECTED),  # RFC 6851
    "UID SEARCH": CommandSpec(p.search, search.uid_search, SELECTED),
    "SORT": CommandSpec(psort.sort, hsort.sort, SELECTED, expunge_ok=False),  # RFC 5256
    "THREAD": CommandSpec(psort.thread, hthread.thread, SELECTED, expunge_ok=False),
    "UID SORT": CommandSpec(psort.sort, hsort.uid_sort, SELECTED),
    "UID THREAD": CommandSpec(psort.thread, hthread.uid_thread, SELECTED),
    "UID FETCH": CommandSpec(pc.fetch, condstore.uid_fetch, SELECTED),
    "UID STORE": CommandSpec(pc.store, condstore.uid_store, SELECTED),
    "UID COPY": CommandSpec(p.copy, messages.uid_copy, SELECTED),
    "UID MOVE": CommandSpec(p.copy, messages.uid_move, SELECTED),
    "UID EXPUNGE": CommandSpec(p.seqset_only, messages.uid_expunge, SELECTED),  # RFC 4315
    "CANCELUPDATE": CommandSpec(psearch.cancelupdate, hcontext.cancelupdate, SELECTED),  # RFC 5267 §4.3.5
}
