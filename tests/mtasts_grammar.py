"""RFC 8461 §3.2's ABNF for the policy body, as a checker for tests.

Transcribed rule by rule from the RFC, independently of the parser under test
(``postroom.outbound.stspolicy``), so that a test can say "this body is an
``sts-policy-record``" without trusting the code that made or parses it.
"""

from __future__ import annotations

import re

_WSP = r"[ \t]"
_LET_DIG = r"[A-Za-z0-9]"
_SUB_DOMAIN = rf"{_LET_DIG}(?:[A-Za-z0-9-]*{_LET_DIG})?"  # RFC 5321 sub-domain
_DOMAIN = rf"{_SUB_DOMAIN}(?:\.{_SUB_DOMAIN})*"
_DELIM = rf":{_WSP}*"
_VCHAR = r"[\x21-\x3a\x3c\x3e-\x7e]"
_KNOWN = {
    "version": rf"version{_DELIM}STSv1",
    "mode": rf"mode{_DELIM}(?:testing|enforce|none)",
    "max_age": rf"max_age{_DELIM}[0-9]{{1,10}}",
    "mx": rf"mx{_DELIM}(?:\*\.)?{_DOMAIN}",
}
_EXTENSION = rf"[A-Za-z0-9][A-Za-z0-9_.-]{{0,31}}{_DELIM}{_VCHAR}(?:{_WSP}*{_VCHAR})*"
_FIELD = "|".join([*_KNOWN.values(), _EXTENSION])
_TERM = r"(?:\r\n|\n)"
STS_POLICY_RECORD = re.compile(rf"(?:{_FIELD}){_WSP}*(?:{_TERM}(?:{_FIELD}){_WSP}*)*{_TERM}?", re.DOTALL)


def grammar_ok(body: str) -> bool:
    """The whole body is an sts-policy-record; a known field name must have its own rule's
    value (the ABNF would otherwise read ``mode: Enforce`` as an extension); §3.2's counts."""
    if not STS_POLICY_RECORD.fullmatch(body):
        return False
    lines = [line.rstrip(" \t") for line in body.splitlines()]
    names = [line.split(":", 1)[0] for line in lines]
    for name, line in zip(names, lines):
        if name in _KNOWN and not re.fullmatch(_KNOWN[name], line):
            return False
    if not all(names.count(n) == 1 for n in ("version", "mode", "max_age")):
        return False
    mode = lines[names.index("mode")].split(":", 1)[1].strip()
    return mode == "none" or names.count("mx") >= 1
