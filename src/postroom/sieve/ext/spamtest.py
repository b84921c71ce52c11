"""RFC 5235 ``spamtest``, ``spamtestplus`` (``spamtest :percent``) and ``virustest``.

The scanner's verdict reaches the engine as a string from ``Host.spam_score`` /
``Host.virus_score`` (delivery reads it from the scanner's header). This module turns
it into the RFC's scales and matches that with the test's comparator and match type:

- spamtest: "0" when the message was not tested (§3.2.1), else "1" (certainly not spam)
  to "10" (certainly spam);
- spamtest :percent: "0" to "100" (§3.2.2); an untested message also gives "0", so a
  script tells the two apart with plain ``spamtest :is "0"`` first (the RFC's example);
- virustest: "0" not tested, "1" clean … "5" certainly infected (§3.3).

What the host may answer for spam: a score ``"5.3"`` (measured against
:data:`DEFAULT_SPAM_MAX`, twice SpamAssassin's default threshold of 5), a score with
its scale ``"12.4/15"`` (rspamd's ``[12.40 / 15.00]``), or a word ("yes"/"spam",
"no"/"ham"). For viruses: a digit 0–5 as the RFC defines it, or a word
("clean"/"no" → 1, "infected"/"yes"/"virus" → 5). Anything else reads as not tested,
with a note in ``Result.log``.

The values are numbers as text: scripts compare them with ``:value`` and
``:comparator "i;ascii-numeric"`` (RFC 5231, RFC 4790), which must be required as
usual; with the default i;ascii-casemap, "10" sorts before "9".
"""

from __future__ import annotations

import math
import re

from ..ast import Node
from ..interp import Context
from ..registry import REGISTRY, STRING, Spec, TagSpec

__all__ = ["DEFAULT_SPAM_MAX", "spam_percent", "spam_value", "virus_value"]

#: The score that counts as 100 % when the scanner gives no scale of its own.
DEFAULT_SPAM_MAX = 10.0

_NUMBER = r"[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
_SCORE = re.compile(rf"\s*({_NUMBER})\s*(?:/\s*({_NUMBER})\s*)?")
_SPAM_WORDS = {"yes": 100.0, "spam": 100.0, "true": 100.0, "no": 0.0, "ham": 0.0, "false": 0.0, "clean": 0.0}
_VIRUS_WORDS = {"clean": 1, "no": 1, "ok": 1, "infected": 5, "yes": 5, "virus": 5, "found": 5}


def spam_percent(raw: str | None) -> float | None:
    """The spam likelihood 0–100 the host's answer means, or None for "not tested"."""
    if raw is None:
        return None
    text = raw.strip()
    word = _SPAM_WORDS.get(text.lower())
    if word is not None:
        return word
    m = _SCORE.fullmatch(text)
    if m is None:
        return None
    score = float(m.group(1))
    top = float(m.group(2)) if m.group(2) is not None else DEFAULT_SPAM_MAX
    if not math.isfinite(score) or not math.isfinite(top) or top <= 0:
        return None
    return min(100.0, max(0.0, score * 100.0 / top))


def spam_value(percent: float | None, as_percent: bool) -> str:
    """RFC 5235 §3.2.1/§3.2.2: the string spamtest compares."""
    if percent is None:
        return "0"
    if as_percent:
        return str(int(percent + 0.5))
    return str(1 + int(percent * 9 / 100 + 0.5))  # 0 % → "1", 100 % → "10"


def virus_value(raw: str | None) -> str | None:
    """RFC 5235 §3.3: "0"–"5", or None when the answer means nothing (not tested)."""
    if raw is None:
        return None
    text = raw.strip().lower()
    if text in _VIRUS_WORDS:
        return str(_VIRUS_WORDS[text])
    if len(text) == 1 and text in "012345":
        return text
    return None


def _spamtest(ctx: Context, node: Node) -> bool:
    raw = ctx.host.spam_score()
    percent = spam_percent(raw)
    if percent is None and raw is not None and raw.strip():
        ctx.result.log.append(f"spamtest: cannot read the scanner's score {raw[:60]!r}; not tested")
    value = spam_value(percent, ":percent" in node.tags)
    return ctx.match(node, [value], ctx.strings(node.positional[0]))


def _virustest(ctx: Context, node: Node) -> bool:
    raw = ctx.host.virus_score()
    value = virus_value(raw)
    if value is None:
        if raw is not None and raw.strip():
            ctx.result.log.append(f"virustest: cannot read the scanner's verdict {raw[:60]!r}; not tested")
        value = "0"
    return ctx.match(node, [value], ctx.strings(node.positional[0]))


REGISTRY.extension("spamtest")
REGISTRY.extension("spamtestplus", implies=("spamtest",))  # RFC 5235 §3.2: a superset
REGISTRY.extension("virustest")
REGISTRY.test(Spec("spamtest", True, _spamtest, extension="spamtest", positional=(STRING,), match=True,
                   tags={":percent": TagSpec(":percent", extension="spamtestplus")}))
REGISTRY.test(Spec("virustest", True, _virustest, extension="virustest", positional=(STRING,), match=True))
