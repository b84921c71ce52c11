"""What the results of the checks do to a message under a recipient domain's :class:`Policy`.

Pure: :func:`decide` takes the results and the policy and returns a :class:`Verdict`;
the SMTP server sends its reply (reject, tempfail) or files the message (accept,
quarantine). The rules, strongest first (the first that applies wins):

1. ``enforce = false``: accept, whatever the results (the header still tells).
2. **DMARC reject**: DMARC fails (or is a permerror over several From domains, whose
   strictest failing policy :mod:`.dmarc` reports) and the policy that applies after
   ``sp=``/``np=``/``pct=`` is ``reject``, with ``reject_dmarc``: 550 5.7.1
   (RFC 7489 §6.6.2 leaves the reply to us; 5.7.1 is "delivery not authorized").
3. **SPF fail**: the MAIL FROM identity's SPF result is ``fail`` (scope ``mailfrom``;
   a bounce's HELO-based result is not rejected on), no DKIM signature passes, and
   ``reject_spf_fail``: 550 5.7.23 (RFC 7372 §3.2, RFC 7208 §8.4). A DKIM pass of any
   domain keeps the message: forwarders break SPF but not DKIM.
4. **Tempfail** (``tempfail``): 451 4.4.3 (RFC 3463 "routing server failure", the code
   RFC 7208 §8.6 suggests) when a DNS failure decides the outcome, that is:

   * DMARC is ``temperror``, no aligned SPF or DKIM passed, and either the record is
     unknown (its lookup failed) or the known policy would reject or quarantine here
     (an aligned SPF or DKIM check had the temporary error); or
   * ``reject_spf_fail`` and the MAIL FROM SPF result is ``temperror`` with no DKIM pass:
     the SPF result would decide between rule 3 and delivery.

   Never when DMARC passes, and never when an aligned pass already exists: a retry
   could not turn that into a reject. It comes before quarantine: a retry may reject.
   Without ``tempfail``, a DMARC temperror whose record *is* known is judged as a fail
   (rules 2 and 5), so that a forger cannot escape ``p=reject`` by adding a signature
   whose key lookup fails; one whose record is unknown is accepted.
5. **DMARC quarantine**: the policy that applies is ``quarantine``, or ``reject`` while
   ``reject_dmarc`` is off, with ``quarantine_dmarc``: the quarantine mailbox.
6. Otherwise accept.

Not done: a passing ARC chain (RFC 8617) does not override a DMARC reject; that needs a
setting naming the sealers we trust (RFC 8617 §7.2), which does not exist yet.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .model import Checks, DmarcResult
from .settings import Policy


@dataclass(frozen=True, slots=True)
class Verdict:
    action: str  # "accept" | "quarantine" | "reject" | "tempfail"
    code: int = 250  # the SMTP reply for reject and tempfail
    status: str = ""
    text: str = ""
    reason: str = ""  # for the log line


def _domain(domain: str) -> str:
    """A domain fit for a reply line: the characters of a host name, at most 253."""
    d = re.sub(r"[^A-Za-z0-9._-]", "", domain)[:253]
    return d or "the sender's domain"


def _dmarc_acts(policy_name: str, policy: Policy) -> str:
    """What a failed DMARC check with this applicable policy does here."""
    if policy_name == "reject" and policy.reject_dmarc:
        return "reject"
    if policy_name in ("reject", "quarantine") and policy.quarantine_dmarc:
        return "quarantine"
    return "accept"


def _dmarc_failed(d: DmarcResult, policy: Policy) -> bool:
    if d.result in ("fail", "permerror"):
        return True
    return d.result == "temperror" and bool(d.published_policy) and not policy.tempfail


def _dmarc_reason(d: DmarcResult) -> str:
    return f"dmarc={d.result} policy={d.policy} from={d.from_domain or '-'} ({d.reason})"


def decide(checks: Checks, policy: Policy) -> Verdict:
    """The verdict for one message and one recipient domain's policy (rules above)."""
    if not policy.enforce:
        return Verdict("accept", reason="not enforced")
    dmarc, spf = checks.dmarc, checks.spf
    dkim_pass = any(d.result == "pass" for d in checks.dkim)
    failed_action = _dmarc_acts(dmarc.policy, policy) if dmarc and _dmarc_failed(dmarc, policy) else "accept"

    if dmarc is not None and failed_action == "reject":
        domain = _domain(dmarc.from_domain)
        return Verdict("reject", 550, "5.7.1",
                       f"Unauthenticated email from {domain} is not accepted due to the domain's DMARC "
                       "policy. Please contact the administrator of the domain if this was legitimate mail.",
                       _dmarc_reason(dmarc))
    if spf is not None and spf.scope == "mailfrom" and not dkim_pass and policy.reject_spf_fail \
            and spf.result == "fail":
        return Verdict("reject", 550, "5.7.23",
                       f"The MAIL FROM domain {_domain(spf.domain)} has an SPF policy that does not allow "
                       "this host to send its mail.", f"spf=fail {spf.domain} ({spf.reason}), no DKIM pass")
    if policy.tempfail:
        if dmarc is not None and dmarc.result == "temperror" and not (dmarc.spf_aligned or dmarc.dkim_aligned) \
                and (not dmarc.published_policy or _dmarc_acts(dmarc.policy, policy) != "accept"):
            return Verdict("tempfail", 451, "4.4.3",
                           "Temporary DNS failure checking the sender's DMARC authentication, try again later",
                           _dmarc_reason(dmarc))
        if spf is not None and spf.scope == "mailfrom" and spf.result == "temperror" and not dkim_pass \
                and policy.reject_spf_fail:
            return Verdict("tempfail", 451, "4.4.3",
                           "Temporary DNS failure checking the sender's SPF record, try again later",
                           f"spf=temperror {spf.domain} ({spf.reason}), no DKIM pass")
    if dmarc is not None and failed_action == "quarantine":
        return Verdict("quarantine", reason=_dmarc_reason(dmarc))
    return Verdict("accept", reason=_dmarc_reason(dmarc) if dmarc else "")
