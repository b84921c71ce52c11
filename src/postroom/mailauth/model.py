"""The results of each check, as they appear in Authentication-Results (RFC 8601 §2.7).

Frozen values with no behaviour: the checks produce them, :mod:`.results` writes the
header from them and :mod:`.policy` decides what to do with the message.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# RFC 8601 §2.7.1 (DKIM), §2.7.2 (SPF), RFC 7489 §11.2 (DMARC), RFC 8617 §4.4 (ARC).
SPF_RESULTS = ("pass", "fail", "softfail", "neutral", "none", "temperror", "permerror")
DKIM_RESULTS = ("pass", "fail", "neutral", "none", "policy", "temperror", "permerror")
DMARC_RESULTS = ("pass", "fail", "none", "temperror", "permerror")
ARC_RESULTS = ("pass", "fail", "none")


@dataclass(frozen=True, slots=True)
class SpfResult:
    result: str  # one of SPF_RESULTS
    domain: str  # the domain checked (MAIL FROM's, or the HELO name)
    scope: str = "mailfrom"  # "mailfrom" or "helo" (RFC 7208 §2.3, §2.4)
    reason: str = ""  # for the comment in the header and the log


@dataclass(frozen=True, slots=True)
class DkimResult:
    result: str  # one of DKIM_RESULTS
    domain: str = ""  # d=
    selector: str = ""  # s=
    algorithm: str = ""  # a=, e.g. "rsa-sha256", "ed25519-sha256"
    header_b: str = ""  # the first characters of b= (RFC 6008: tells signatures apart)
    identity: str = ""  # i=, when present
    reason: str = ""


@dataclass(frozen=True, slots=True)
class DmarcResult:
    result: str  # one of DMARC_RESULTS
    from_domain: str = ""  # RFC5322.From domain
    policy: str = "none"  # the policy that applies: p= or sp= (none, quarantine, reject)
    published_policy: str = ""  # p= as published, for the header
    org_domain: str = ""
    spf_aligned: bool = False
    dkim_aligned: bool = False
    reason: str = ""


@dataclass(frozen=True, slots=True)
class ArcResult:
    result: str  # one of ARC_RESULTS
    instances: int = 0  # i= of the newest set seen
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Checks:
    """Everything learnt about one inbound message."""

    spf: SpfResult | None = None
    helo: SpfResult | None = None
    dkim: tuple[DkimResult, ...] = field(default_factory=tuple)
    dmarc: DmarcResult | None = None
    arc: ArcResult | None = None
