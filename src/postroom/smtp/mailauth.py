"""Mail authentication on the SMTP path: what is checked, what a result does, what is signed.

- Mail from strangers (a listener in ``[mailauth] check_listeners``, port 25 by default,
  not authenticated, not from ``[smtp] trusted_networks``) is checked
  (:mod:`postroom.mailauth.inbound`) and the policy of each recipient's domain decides
  (:mod:`postroom.mailauth.policy`).
- Mail from our users (AUTH, trusted networks, ``postroom sendmail``) that leaves is
  DKIM-signed for its ``From:`` domain (:mod:`postroom.mailauth.signing`).
- Checked mail that leaves again (an alias with remote targets) is ARC-sealed, so the
  next hop can see that it passed here (RFC 8617 §1).

One SMTP reply answers every recipient at the end of DATA, so a message is refused only
when every recipient's domain refuses it; a recipient whose domain would refuse it while
another's accepts it gets it in the quarantine mailbox instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .. import log
from ..context import ServerContext
from ..mailauth import inbound
from ..mailauth.dnsbridge import run_blocking
from ..mailauth.policy import Verdict, decide
from ..mailauth.settings import MailauthSettings, settings_for
from ..resolver import Resolver
from ..resolver import shared as shared_resolver
from .replies import Reply, r
from .transaction import Peer, Transaction

logger = log.get("mailauth")


@dataclass(slots=True)
class Outcome:
    """What the checks of one message decided, for :func:`postroom.smtp.delivery.deliver`."""

    result: inbound.Inbound
    verdicts: dict[str, Verdict]  # recipient domain → verdict
    settings: MailauthSettings
    refusal: Reply | None = None
    reason: str = ""
    quarantined: int = 0  # recipient domains whose copy goes to the quarantine mailbox
    seal_domain: str = ""  # the domain whose key seals a forwarded copy
    _mailbox: dict[str, str] = field(default_factory=dict)

    @property
    def message(self) -> bytes:
        return self.result.message

    @property
    def summary(self) -> str:
        return inbound.summary(self.result.checks)

    def mailbox_for(self, domain: str) -> str:
        return self._mailbox.get(domain, "INBOX")


def is_checked(peer: Peer, settings: MailauthSettings) -> bool:
    return bool(peer.ip) and not peer.login and not peer.trusted and peer.listener in settings.check_listeners


def _resolver(ctx: ServerContext) -> Resolver:
    """The process's resolver for this config, found once per config: ``resolver.shared``
    parses the ``[dns]`` section at every call, once a message on this path
    (``ctx.state`` is cleared when the config is reloaded)."""
    res = ctx.state.get("mailauth.resolver")
    if not isinstance(res, Resolver):
        res = ctx.state["mailauth.resolver"] = shared_resolver(ctx.config)
    return res


def _refusal(v: Verdict) -> Reply:
    return r(v.code, v.status, v.text)


async def inbound_for(ctx: ServerContext, peer: Peer, txn: Transaction, body: bytes) -> Outcome | None:
    """Check ``body`` if it comes from a stranger; ``None`` when it is not checked."""
    settings = settings_for(ctx)
    if not is_checked(peer, settings):
        return None
    res = await inbound.check(_resolver(ctx), settings, ctx.config.hostname, ip=peer.ip,
                              helo=peer.helo, mail_from=txn.sender.address, message=body)
    domains = list(dict.fromkeys(rc.path.domain for rc in txn.rcpts))
    verdicts = {d: decide(res.checks, settings.policy_for(d)) for d in domains}
    out = Outcome(res, verdicts, settings)
    if res.removed:
        logger.info("%s removed %d forged Authentication-Results field(s)", peer.session_id, res.removed)
    acts = [v.action for v in verdicts.values()]
    if acts and all(a == "reject" for a in acts):
        v = verdicts[domains[0]]
        out.refusal, out.reason = _refusal(v), v.reason
        return out
    if acts and all(a == "tempfail" for a in acts):
        v = verdicts[domains[0]]
        out.refusal, out.reason = _refusal(v), v.reason
        return out
    for d, v in verdicts.items():
        if v.action in ("quarantine", "reject"):
            out._mailbox[d] = settings.policy_for(d).quarantine_mailbox
            out.quarantined += 1
    # A forwarded copy is sealed for the domain that forwards it: the first recipient
    # whose address resolved to remote targets (an alias).
    out.seal_domain = next((rc.path.domain for rc in txn.rcpts if rc.resolved.remote), "")
    return out


def signs(peer: Peer) -> bool:
    """Our users' mail: authenticated, from a trusted network, or from a local program."""
    return bool(peer.login or peer.trusted or not peer.ip)


async def outgoing(ctx: ServerContext, peer: Peer, auth: Outcome | None, data: bytes, message: bytes) -> bytes:
    """``data`` (trace fields + ``message``) as it goes into the outbound queue: with our
    DKIM signature when a user of ours sent it, ARC-sealed when we pass a checked
    message on, unchanged otherwise."""
    settings = settings_for(ctx) if auth is None else auth.settings
    data_dir = ctx.config.data_dir
    if auth is None:
        if not (settings.sign and signs(peer)):
            return data
        from ..mailauth.signing import signature_for

        sig = await run_blocking(signature_for, data_dir, message, settings.sign_headers)
        return sig + data
    arc = auth.result.checks.arc
    if not settings.arc_seal:
        return data
    from ..mailauth.arc import is_temporary
    from ..mailauth.signing import seal_for

    if arc is not None and is_temporary(arc):
        # Our own DNS trouble must not end a chain the next hop can still verify (cv=fail is final).
        return data
    chain = arc.result if arc else "none"
    domain = auth.seal_domain or ctx.config.hostname
    seal = await run_blocking(seal_for, data_dir, data, domain, ctx.config.hostname, chain)
    return seal + data
