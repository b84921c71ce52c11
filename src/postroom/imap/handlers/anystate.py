"""Commands valid in every state (RFC 3501 §6.1): CAPABILITY, NOOP, LOGOUT."""

from __future__ import annotations

from ...auth import kerberos
from ..responses import After, Reply, untagged
from ..session import Session, State
from . import append, compress, condstore, context, listext, quota, session_ext
from . import rev2, search, sort, thread
from . import metadata
from . import notify

BASE_CAPS = ("IMAP4rev1", *rev2.CAPS,  # RFC 9051 Appendix A: both; rev2 after ENABLE IMAP4rev2
             "LITERAL+", "SASL-IR", "IDLE", "UIDPLUS", "MOVE", "NAMESPACE", "UNSELECT",
             "CHILDREN", "BINARY",  # RFC 3516: handlers/fetch.py, parser/fetch.py, APPEND literal8
             "UTF8=ACCEPT",  # RFC 6855: names.py, enabled.py, APPEND UTF8, SEARCH
             "OBJECTID",  # RFC 8474: MAILBOXID (handlers/mailboxes.py), EMAILID/THREADID (fetch.py, search.py)
             *quota.CAPS, *session_ext.CAPS, *listext.CAPS, *condstore.CAPS, *append.CAPS,
             *compress.CAPS, *sort.CAPS, *thread.CAPS, *search.CAPS,
             *context.CAPS,  # RFC 5267 §4 CONTEXT=SEARCH, CONTEXT=SORT
             *metadata.CAPS,  # RFC 5464: handlers/metadata.py
             *notify.CAPS)  # RFC 5465: handlers/notify.py


def capabilities(s: Session) -> bytes:
    caps = list(BASE_CAPS)
    caps.append(f"APPENDLIMIT={s.ctx.config.limits.message_size}")  # RFC 7889 §2
    if s.state is State.NOT_AUTHENTICATED:
        if s.starttls_available and not s.tls_active:
            caps.append("STARTTLS")
        if s.login_allowed:
            caps += ["AUTH=PLAIN", "AUTH=LOGIN"]
            # RFC 4752 GSSAPI and GSS-SPNEGO when [kerberos] names an imap service (auth/kerberos.py)
            caps += [f"AUTH={m}" for m in kerberos.mechanisms(s.ctx, "imap")]
        else:
            caps.append("LOGINDISABLED")  # RFC 3501 §6.2.3
    return " ".join(caps).encode()


async def capability(s: Session, _: None) -> Reply:
    return Reply("Capability completed", untagged=[untagged(b"CAPABILITY " + capabilities(s))])


async def noop(s: Session, _: None) -> Reply:
    # The dispatcher appends the pending mailbox updates (§6.1.2).
    return Reply("NOOP completed")


async def logout(s: Session, _: None) -> Reply:
    # §6.1.3: BYE first, then the tagged OK, then close.
    s.state = State.LOGOUT
    return Reply("Logout completed", untagged=[untagged(b"BYE Postroom logging out")], after=After.LOGOUT)
