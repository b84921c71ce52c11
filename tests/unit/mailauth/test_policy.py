"""What a set of results does to a message under a Policy: one table, one row per rule."""

from __future__ import annotations

import pytest

from postroom.mailauth.model import ArcResult, Checks, DkimResult, DmarcResult, SpfResult
from postroom.mailauth.policy import Verdict, decide
from postroom.mailauth.settings import Policy

ON = Policy()
OFF = Policy(enforce=False)
NO_REJECT = Policy(reject_dmarc=False)
NOTHING = Policy(reject_dmarc=False, quarantine_dmarc=False)
SPF_STRICT = Policy(reject_spf_fail=True)
NO_TEMP = Policy(tempfail=False)
SPF_STRICT_NO_TEMP = Policy(reject_spf_fail=True, tempfail=False)


def dmarc(result: str, policy: str = "reject", published: str | None = None, *, spf: bool = False,
          dkim: bool = False) -> DmarcResult:
    return DmarcResult(result, "example.com", policy, policy if published is None else published, "example.com",
                       spf, dkim, "why")


SPF_FAIL = SpfResult("fail", "example.com")
SPF_TEMP = SpfResult("temperror", "example.com")
HELO_FAIL = SpfResult("fail", "mx.example.com", scope="helo")
DKIM_PASS = (DkimResult("pass", "other.example"),)
DKIM_FAIL = (DkimResult("fail", "example.com"),)
ARC_PASS = ArcResult("pass", 1)

CASES = [
    # name, checks, policy, action, code, status
    ("nothing checked", Checks(), ON, "accept", 250, ""),
    ("dmarc pass", Checks(dmarc=dmarc("pass", spf=True)), ON, "accept", 250, ""),
    ("dmarc none", Checks(dmarc=dmarc("none", "none", "")), ON, "accept", 250, ""),
    ("reject", Checks(dmarc=dmarc("fail")), ON, "reject", 550, "5.7.1"),
    ("reject, not enforced", Checks(dmarc=dmarc("fail")), OFF, "accept", 250, ""),
    ("reject without reject_dmarc: quarantine", Checks(dmarc=dmarc("fail")), NO_REJECT, "quarantine", 250, ""),
    ("reject with neither", Checks(dmarc=dmarc("fail")), NOTHING, "accept", 250, ""),
    ("quarantine", Checks(dmarc=dmarc("fail", "quarantine")), ON, "quarantine", 250, ""),
    ("quarantine off", Checks(dmarc=dmarc("fail", "quarantine")), NOTHING, "accept", 250, ""),
    ("p=none fail", Checks(dmarc=dmarc("fail", "none")), ON, "accept", 250, ""),
    ("pct lowered reject to quarantine", Checks(dmarc=dmarc("fail", "quarantine", "reject")), ON,
     "quarantine", 250, ""),
    ("ARC pass does not override", Checks(dmarc=dmarc("fail"), arc=ARC_PASS), ON, "reject", 550, "5.7.1"),
    ("several From: strictest failing policy", Checks(dmarc=dmarc("permerror", "reject")), ON,
     "reject", 550, "5.7.1"),
    ("no From", Checks(dmarc=DmarcResult("permerror", reason="no From field")), ON, "accept", 250, ""),
    # SPF fail (RFC 7372 §3.2 5.7.23), only with reject_spf_fail and no DKIM pass
    ("spf fail, default policy", Checks(spf=SPF_FAIL), ON, "accept", 250, ""),
    ("spf fail", Checks(spf=SPF_FAIL, dkim=DKIM_FAIL), SPF_STRICT, "reject", 550, "5.7.23"),
    ("spf fail, dkim pass of any domain", Checks(spf=SPF_FAIL, dkim=DKIM_PASS), SPF_STRICT, "accept", 250, ""),
    ("spf fail, not enforced", Checks(spf=SPF_FAIL), Policy(enforce=False, reject_spf_fail=True),
     "accept", 250, ""),
    ("helo-scope fail is not rejected on", Checks(spf=HELO_FAIL), SPF_STRICT, "accept", 250, ""),
    ("spf softfail", Checks(spf=SpfResult("softfail", "example.com")), SPF_STRICT, "accept", 250, ""),
    ("spf fail beats dmarc quarantine", Checks(spf=SPF_FAIL, dmarc=dmarc("fail", "quarantine")), SPF_STRICT,
     "reject", 550, "5.7.23"),
    ("dmarc reject comes first", Checks(spf=SPF_FAIL, dmarc=dmarc("fail")), SPF_STRICT, "reject", 550, "5.7.1"),
    # tempfail (451 4.4.3): only when a DNS failure decides the outcome
    ("dmarc record lookup failed", Checks(dmarc=dmarc("temperror", "none", "")), ON, "tempfail", 451, "4.4.3"),
    ("... without tempfail", Checks(dmarc=dmarc("temperror", "none", "")), NO_TEMP, "accept", 250, ""),
    ("... but an aligned DKIM pass exists", Checks(dmarc=dmarc("temperror", "none", "", dkim=True)), ON,
     "accept", 250, ""),
    ("... but an aligned SPF pass exists", Checks(dmarc=dmarc("temperror", "none", "", spf=True)), ON,
     "accept", 250, ""),
    ("aligned check temperror, p=reject", Checks(dmarc=dmarc("temperror", "reject")), ON, "tempfail", 451, "4.4.3"),
    ("aligned check temperror, p=none: nothing to decide", Checks(dmarc=dmarc("temperror", "none")), ON,
     "accept", 250, ""),
    ("aligned check temperror, p=quarantine, quarantine off", Checks(dmarc=dmarc("temperror", "quarantine")),
     NOTHING, "accept", 250, ""),
    ("aligned check temperror, no tempfail: judged as the fail", Checks(dmarc=dmarc("temperror", "reject")),
     NO_TEMP, "reject", 550, "5.7.1"),
    ("... quarantine", Checks(dmarc=dmarc("temperror", "quarantine")), NO_TEMP, "quarantine", 250, ""),
    ("spf temperror decides with reject_spf_fail", Checks(spf=SPF_TEMP), SPF_STRICT, "tempfail", 451, "4.4.3"),
    ("spf temperror without reject_spf_fail", Checks(spf=SPF_TEMP), ON, "accept", 250, ""),
    ("spf temperror, dkim pass", Checks(spf=SPF_TEMP, dkim=DKIM_PASS), SPF_STRICT, "accept", 250, ""),
    ("spf temperror, no tempfail", Checks(spf=SPF_TEMP), SPF_STRICT_NO_TEMP, "accept", 250, ""),
    ("spf temperror but dmarc passes", Checks(spf=SPF_TEMP, dkim=(DkimResult("pass", "example.com"),),
                                              dmarc=dmarc("pass", dkim=True)), SPF_STRICT, "accept", 250, ""),
    ("spf temperror before dmarc quarantine", Checks(spf=SPF_TEMP, dmarc=dmarc("fail", "quarantine")),
     SPF_STRICT, "tempfail", 451, "4.4.3"),
]


@pytest.mark.parametrize("name, checks, policy, action, code, status", CASES, ids=[c[0] for c in CASES])
def test_decide(name: str, checks: Checks, policy: Policy, action: str, code: int, status: str) -> None:
    v = decide(checks, policy)
    assert (v.action, v.code, v.status) == (action, code, status)
    if action in ("reject", "tempfail"):
        assert v.text and v.text.isascii() and len(v.text) < 400
        assert v.reason


def test_reject_text_names_the_domain_and_its_policy() -> None:
    v = decide(Checks(dmarc=dmarc("fail")), ON)
    assert "example.com" in v.text and "DMARC policy" in v.text
    assert "dmarc=fail" in v.reason and "policy=reject" in v.reason


def test_reply_text_never_carries_odd_characters() -> None:
    d = DmarcResult("fail", "ex\r\nample\u00e9.com 250 OK" + "x" * 600, "reject", "reject")
    v = decide(Checks(dmarc=d), ON)
    assert v.action == "reject" and v.text.isascii()
    assert "\r" not in v.text and "\n" not in v.text and len(v.text) < 450


def test_verdict_is_frozen() -> None:
    v = Verdict("accept")
    with pytest.raises(AttributeError):
        v.action = "reject"  # type: ignore[misc]
