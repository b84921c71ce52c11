"""Scripts the web rules editor writes (postroom.web.rules) run through Pigeonhole's
``sieve-test`` and ``postroom sieve test`` over the differential corpus's messages: both
compile them and both take the same actions (tests/sieve/sieve_peer.py normalises them).

The one expected difference is test_sieve_differential.py's: Postroom does not list a
vacation reply to list or robot mail (RFC 5230 §4.5/§4.6), sieve-test does.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest
from sieve_peer import PigeonholePeer, run_postroom, unavailable
from test_sieve_differential import ENVELOPES, MESSAGES

from postroom.web.rules import (
    Condition,
    Forwarding,
    Rule,
    RuleAction,
    RuleSet,
    VacationSettings,
    generate,
)

pytestmark = pytest.mark.slow

CORPUS = Path(__file__).parent / "corpus"
TODAY = date.today()

EXAMPLES: dict[str, RuleSet] = {
    "invoice": RuleSet(rules=(Rule("Invoices", (Condition("subject", "contains", "invoice"),),
                                   (RuleAction("fileinto", folder="Finance/Invoices"),
                                    RuleAction("flag", flag="\\Flagged"))),)),
    "from-any": RuleSet(rules=(Rule("", (Condition("from", "contains", "example.com"),
                                         Condition("to", "matches", "bob+*@*"),
                                         Condition("cc", "exists")),
                                    (RuleAction("copyinto", folder="Seen/From"), RuleAction("read")),
                                    match_all=False),)),
    "lists": RuleSet(rules=(Rule("", (Condition("header", "exists", header="List-Id"),),
                                 (RuleAction("fileinto", folder="Lists"), RuleAction("stop"))),
                            Rule("", (), (RuleAction("flag", flag="$NotList"),)))),
    "negations": RuleSet(rules=(Rule("", (Condition("subject", "not_contains", "a"),
                                          Condition("header", "not_is", "x", header="X-Mailer"),
                                          Condition("from", "not_exists")),
                                     (RuleAction("discard"),), match_all=False),)),
    "size-attachment": RuleSet(rules=(Rule("", (Condition("size", "over", "500"), Condition("attachment", "exists")),
                                           (RuleAction("fileinto", folder="Big"),)),
                                      Rule("", (Condition("size", "under", "400"),
                                                Condition("body", "contains", "lunch")),
                                           (RuleAction("fileinto", folder="Small"),), match_all=False))),
    "forward": RuleSet(rules=(Rule("", (Condition("subject", "matches", "*?*"),),
                                   (RuleAction("forward", address="fw@remote.example", keep_copy=True),)),),
                       forwarding=Forwarding(False, "all@remote.example", False)),
    "forward-only": RuleSet(rules=(Rule("", (), (RuleAction("fileinto", folder="Never"),)),),
                            forwarding=Forwarding(True, "all@remote.example", False)),
    "forward-keep-vacation": RuleSet(
        rules=(Rule("", (), (RuleAction("fileinto", folder="Everything"),)),),
        forwarding=Forwarding(True, "all@remote.example", True),
        vacation=VacationSettings(True, TODAY - timedelta(days=1), TODAY + timedelta(days=1), 'Away "x" \\ é',
                                  "Back later.\nÉric", 2, ("bob@example.org",))),
    "vacation-over": RuleSet(vacation=VacationSettings(True, TODAY - timedelta(days=9), TODAY - timedelta(days=1),
                                                       "", "gone")),
    "hostile": RuleSet(rules=(Rule('"; discard; "', (Condition("subject", "is", '"; discard; "\\'),),
                                   (RuleAction("fileinto", folder='a"b c'),)),)),
}

#: Messages of our own, beside the differential corpus's, that the examples' rules match.
EXTRA = {
    "invoice.eml": ("From: Ann <ann@example.com>\r\nTo: bob@example.org\r\nSubject: Your invoice 7\r\n"
                    "Message-ID: <inv7@example.com>\r\nX-Mailer: Ledger\r\n\r\nPlease pay.\r\n"),
    "hostile.eml": ('From: Eve <eve@example.net>\r\nTo: bob@example.org\r\nSubject: "; discard; "\\\r\n'
                    "Message-ID: <h@example.net>\r\n\r\nlunch?\r\n"),
}
ALL_ENVELOPES = {**ENVELOPES, "invoice.eml": ("ann@example.com", "bob@example.org"),
                 "hostile.eml": ("eve@example.net", "bob@example.org")}

_VACATION_KNOWN = {"list.eml", "autoreply.eml"}  # RFC 5230 §4.5/§4.6, see the module docstring


@pytest.fixture(scope="module")
def peer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PigeonholePeer]:
    why = unavailable()
    if why:
        pytest.skip(why)
    corpus = tmp_path_factory.mktemp("web-rules-corpus")
    (corpus / "scripts").mkdir()
    for name, rs in EXAMPLES.items():
        (corpus / "scripts" / f"{name}.sieve").write_text(generate(rs), encoding="utf-8")
    shutil.copytree(CORPUS / "messages", corpus / "messages")
    for name, text in EXTRA.items():
        (corpus / "messages" / name).write_bytes(text.encode())
    p = PigeonholePeer(corpus)
    p.corpus = corpus  # type: ignore[attr-defined]
    yield p
    p.close()


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_generated_script_same_actions_as_pigeonhole(peer: PigeonholePeer, name: str) -> None:
    corpus: Path = peer.corpus  # type: ignore[attr-defined]
    vacation = EXAMPLES[name].vacation.enabled
    problems = []
    for message in [*MESSAGES, *EXTRA]:
        sender, recipient = ALL_ENVELOPES[message]
        ours = run_postroom(corpus / "scripts" / f"{name}.sieve", corpus / "messages" / message, sender, recipient)
        theirs = peer.run(f"{name}.sieve", message, sender, recipient)
        assert ours[0][0] not in ("compile-error", "runtime-error"), (message, ours)
        if vacation and message in _VACATION_KNOWN:
            theirs = [a for a in theirs if a != ("vacation",)]
            ours = [a for a in ours if a != ("vacation",)]
        if ours != theirs:
            problems.append(f"{message}: postroom {ours} != pigeonhole {theirs}")
    assert not problems, "\n".join(problems)
