"""The ``[mailauth]`` section: which mail is checked, what a failed check does, signing.

Policy is per listener (``check_listeners``) and per recipient domain
(``[mailauth.domains."example.org"]`` overrides the policy keys for mail to that domain):
a domain that is moving in may want headers only (``enforce = false``) while the
others reject forged mail.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from ..config import Config, Section, parse_duration

# RFC 6376 §5.4.1's recommended set; From is signed twice ("oversigned", §8.15) so
# that a second From added in transit breaks the signature.
DEFAULT_SIGN_HEADERS = (
    "from", "from", "reply-to", "subject", "date", "to", "cc", "resent-date", "resent-from", "resent-to",
    "resent-cc", "in-reply-to", "references", "list-id", "list-help", "list-unsubscribe",
    "list-unsubscribe-post", "list-subscribe", "list-post", "list-owner", "list-archive", "message-id",
    "mime-version", "content-type", "content-transfer-encoding", "content-id", "content-description",
)


@dataclass(frozen=True, slots=True)
class Policy:
    """What failed checks do to mail for one recipient domain."""

    enforce: bool = True  # False: only add Authentication-Results, deliver everything
    reject_dmarc: bool = True  # DMARC fail with p=reject → 550 5.7.1 at end of DATA
    quarantine_dmarc: bool = True  # DMARC fail with p=quarantine → the Junk mailbox
    reject_spf_fail: bool = False  # SPF fail ("-all") and no DKIM pass → 550 5.7.23
    tempfail: bool = True  # a DNS temperror that decides the outcome → 451 4.4.3
    quarantine_mailbox: str = "Junk"


@dataclass(frozen=True, slots=True)
class MailauthSettings:
    check_listeners: tuple[str, ...] = ("smtp",)  # listeners whose unauthenticated mail is checked
    policy: Policy = Policy()
    domains: dict[str, Policy] = field(default_factory=dict)  # recipient domain → policy
    timeout: float = 20.0  # all the lookups for one message together
    sign: bool = True  # DKIM-sign mail that leaves, for domains with an active key
    sign_headers: tuple[str, ...] = DEFAULT_SIGN_HEADERS
    arc_seal: bool = True  # ARC-seal mail forwarded to remote addresses
    min_key_bits: int = 1024  # RSA keys shorter than this verify as fail (RFC 8301 §3.2)

    def policy_for(self, domain: str) -> Policy:
        return self.domains.get(domain.lower().rstrip("."), self.policy)


_POLICY_KEYS = ("enforce", "reject_dmarc", "quarantine_dmarc", "reject_spf_fail", "tempfail")


def _policy(sec: Section, base: Policy) -> Policy:
    changes: dict[str, object] = {k: sec.get(k, bool, getattr(base, k)) for k in _POLICY_KEYS}
    mailbox = sec.get("quarantine_mailbox", str, base.quarantine_mailbox)
    if not mailbox.strip():
        sec.problem("quarantine_mailbox", "must not be empty")
        mailbox = base.quarantine_mailbox
    changes["quarantine_mailbox"] = mailbox
    return replace(base, **changes)  # type: ignore[arg-type]


def parse(cfg: Config, problems: list[str]) -> MailauthSettings:
    sec = cfg.section("mailauth", problems)
    d = MailauthSettings()
    policy = _policy(sec, d.policy)
    domains: dict[str, Policy] = {}
    dsec = sec.sub("domains")
    for name in dsec.data:
        one = dsec.sub(name)
        domains[name.lower().rstrip(".")] = _policy(one, policy)
        one.finish()
    timeout = sec.convert("timeout", parse_duration, d.timeout)
    if timeout <= 0:
        sec.problem("timeout", "must be positive")
        timeout = d.timeout
    headers = tuple(h.lower() for h in sec.strings("sign_headers", d.sign_headers))
    if "from" not in headers:
        sec.problem("sign_headers", "must include from (RFC 6376 §5.4)")
        headers = d.sign_headers
    min_bits = sec.get("min_key_bits", int, d.min_key_bits)
    if min_bits < 512:
        sec.problem("min_key_bits", "must be at least 512")
        min_bits = d.min_key_bits
    listeners = sec.strings("check_listeners", d.check_listeners)
    known = {lst.name for lst in cfg.listeners}
    for name in listeners if "check_listeners" in sec.data else ():  # the default may name none
        if name not in known:
            sec.problem("check_listeners", f"no listener named {name!r}")
    s = MailauthSettings(
        check_listeners=listeners, policy=policy, domains=domains, timeout=timeout,
        sign=sec.get("sign", bool, d.sign), sign_headers=headers, arc_seal=sec.get("arc_seal", bool, d.arc_seal),
        min_key_bits=min_bits,
    )
    sec.finish()
    return s


def check_settings(cfg: Config, problems: list[str]) -> None:
    parse(cfg, problems)


def settings_for(ctx: object) -> MailauthSettings:
    """Parsed once per config (``ctx.state`` is cleared on SIGHUP)."""
    state: dict[str, object] = ctx.state  # type: ignore[attr-defined]
    s = state.get("mailauth")
    if not isinstance(s, MailauthSettings):
        s = parse(ctx.config, [])  # type: ignore[attr-defined]
        state["mailauth"] = s
    return s
