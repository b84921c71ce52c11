"""The web rules editor's model, and its translation to a Sieve script and back.

I/O free: :func:`generate` turns a :class:`RuleSet` (forwarding, filter rules, vacation)
into the text of the account's one active Sieve script, :func:`parse` turns a script back
into a :class:`RuleSet` when this module wrote it, and answers None for any other script
(hand-written, edited, uploaded over ManageSieve), which the pages then show read-only
and never overwrite without the user's confirmation.

Why one script for everything: a user has one active script (RFC 5804 §1.4), so the
editor's three parts must share it. Their order is fixed:

1. forwarding first, so every message is forwarded whatever the rules do with it (a
   rule's ``stop`` or ``discard`` cannot silently end forwarding); without "keep a copy"
   nothing stays here, so the rules are not run at all (they would file a local copy)
   and only the vacation reply follows;
2. the rules, in the user's order; ``stop`` ends the script, vacation included, so a rule
   that throws away junk also keeps the auto-reply from answering it;
3. vacation last, so it answers only mail the rules let through.

How a generated script is recognised: its first line is ``# postroom-rules 1 <sha256>``
(the format version and the SHA-256 of everything after that line), its second line is
``# `` followed by the whole model as compact ASCII JSON. :func:`parse` checks the
checksum, rebuilds the model from the JSON (validating it as if the user had sent it),
generates the script again and accepts it only if that gives the very same text: a
script that was edited anywhere, even in a way that keeps the checksum right, or that an
older generator wrote differently, is "not expressible", never half-understood.

Values are validated before any text is written (:class:`RulesError` names the field),
strings are written as Sieve quoted strings with ``\\`` and ``"`` escaped (RFC 5228
§2.4.2), so no value can end its string; values that land in a header (vacation
subject, flags, header names, addresses) or in a single-line match refuse control
characters, CR and LF included; folder names follow the store's mailbox name rules.
Every generated script compiles in Postroom's engine and uses only extensions Pigeonhole
has too (tests/unit/web/test_rules.py checks both).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from ..sieve.core import valid_address
from ..storage.models import HIERARCHY_SEPARATOR as SEP
from .errors import Invalid

__all__ = [
    "ACTIONS",
    "FIELDS",
    "MARKER",
    "MATCHES",
    "RULESET_SCHEMA",
    "VERSION",
    "Condition",
    "Forwarding",
    "Rule",
    "RuleAction",
    "RuleSet",
    "RulesError",
    "VacationSettings",
    "from_json",
    "generate",
    "parse",
    "to_json",
    "validate",
]

MARKER = "# postroom-rules"
VERSION = 1

# Bounds: a rule set the pages can show and the engine runs well within its limits
# (postroom.sieve.api.Limits: 1 MiB scripts, 4 redirects per message).
MAX_RULES = 200
MAX_CONDITIONS = 20
MAX_ACTIONS = 10
MAX_NAME = 100
MAX_VALUE = 1000
MAX_FOLDER = 200
MAX_FLAG = 64
MAX_HEADER_NAME = 76  # RFC 5322 §2.1.1: a field name and its colon fit one 78-character line
MAX_SUBJECT = 200
MAX_TEXT = 10_000
MAX_ADDRESS = 254  # RFC 5321 §4.5.3.1.3 path minus its angle brackets
MAX_ADDRESSES = 20
MAX_DAYS = 90
MAX_SIZE = 1 << 30  # bytes; far above any message size limit
MAX_FORWARDS = 4  # Limits.max_redirects: more could never all be done for one message
MAX_SCRIPT = 512 * 1024

#: Condition fields → the match kinds each accepts.
_TEXT_MATCHES = ("contains", "not_contains", "is", "not_is", "matches", "not_matches")
FIELDS: dict[str, tuple[str, ...]] = {
    "from": (*_TEXT_MATCHES, "exists", "not_exists"),
    "to": (*_TEXT_MATCHES, "exists", "not_exists"),
    "cc": (*_TEXT_MATCHES, "exists", "not_exists"),
    "subject": (*_TEXT_MATCHES, "exists", "not_exists"),
    "header": (*_TEXT_MATCHES, "exists", "not_exists"),
    "body": _TEXT_MATCHES,
    "size": ("over", "under"),
    "attachment": ("exists", "not_exists"),
}
MATCHES = frozenset(m for kinds in FIELDS.values() for m in kinds)
ACTIONS = ("fileinto", "copyinto", "flag", "read", "forward", "discard", "stop")

_SYSTEM_FLAGS = {f.lower(): f for f in ("\\Flagged", "\\Answered", "\\Draft", "\\Seen")}
# RFC 3501 §9 atom: no atom-specials, no "\" (only system flags start with one).
_KEYWORD = re.compile(r"^[!#$&'+\-./0-9:;<=>?@A-Z^_`a-z|~]+$")
_HEADER_NAME = re.compile(r"^[!-9;-~]+$")  # RFC 5322 §3.6.8: printable ASCII except ":"
_CONTROLS = re.compile(r"[\x00-\x1f\x7f]")
_TEXT_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # a body text keeps LF and TAB
_FOLDER_BAD = re.compile(r"[\x00-\x1f\x7f*%\\]")  # IMAP wildcards, controls; "\" is no separator here


class RulesError(Invalid):
    """A value the editor cannot accept. ``field`` is its path in the JSON form
    (``rules[2].conditions[0].value``; None: the whole body). An :class:`Invalid`, so a
    service can let it through: pages show it by its field, the API answers 400
    ``{"error", "field"}`` (docs/web-dev.md)."""


# ------------------------------------------------------------------------------ model


@dataclass(frozen=True, slots=True)
class Condition:
    """One test. ``field`` is a key of :data:`FIELDS`; ``header`` names the field for
    ``"header"``; ``value`` is the text (a decimal byte count for ``size``)."""

    field: str
    match: str = "contains"
    value: str = ""
    header: str = ""


@dataclass(frozen=True, slots=True)
class RuleAction:
    """``fileinto``/``copyinto`` use ``folder``; ``flag`` uses ``flag``; ``forward`` uses
    ``address`` and ``keep_copy``; ``read``, ``discard`` and ``stop`` take nothing."""

    kind: str
    folder: str = ""
    flag: str = ""
    address: str = ""
    keep_copy: bool = False


@dataclass(frozen=True, slots=True)
class Rule:
    name: str = ""
    conditions: tuple[Condition, ...] = ()  # none: every message
    actions: tuple[RuleAction, ...] = ()
    match_all: bool = True  # allof (True) or anyof (False)
    enabled: bool = True


@dataclass(frozen=True, slots=True)
class Forwarding:
    enabled: bool = False
    address: str = ""
    keep_copy: bool = True


@dataclass(frozen=True, slots=True)
class VacationSettings:
    """An auto-reply. ``start``/``end`` are inclusive days in the server's time zone
    (either may be None: from now on / until switched off)."""

    enabled: bool = False
    start: date | None = None
    end: date | None = None
    subject: str = ""  # empty: "Auto: <their subject>" (RFC 5230 §4.6)
    text: str = ""
    days: int = 7  # at most one reply per sender in this many days (RFC 5230 §4.1)
    addresses: tuple[str, ...] = ()  # the account's other addresses (aliases), RFC 5230 §4.5


@dataclass(frozen=True, slots=True)
class RuleSet:
    rules: tuple[Rule, ...] = ()
    forwarding: Forwarding = field(default_factory=Forwarding)
    vacation: VacationSettings = field(default_factory=VacationSettings)


# ------------------------------------------------------------------------- validation


def _text(value: object, where: str, limit: int, *, required: bool = False, multiline: bool = False) -> str:
    if not isinstance(value, str):
        raise RulesError("must be text", where)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise RulesError("is not valid Unicode text", where) from None
    if len(value) > limit:
        raise RulesError(f"is longer than {limit} characters", where)
    if (_TEXT_CONTROLS if multiline else _CONTROLS).search(value):
        raise RulesError("may not contain line breaks or control characters" if not multiline
                         else "may not contain control characters", where)
    if required and not value.strip():
        raise RulesError("is required", where)
    return value


def _address(value: object, where: str) -> str:
    text = _text(value, where, MAX_ADDRESS, required=True).strip()
    # A bare addr-spec (no display name, comments or list): what redirect and vacation need.
    if not re.fullmatch(r"[^\s<>()\[\],;:\"@]+@[^\s<>()\[\],;:\"@]+", text) or not valid_address(text):
        raise RulesError("is not an email address", where)
    return text


def folder_name(value: object, where: str = "folder") -> str:
    """A mailbox name as the store accepts one (imap/handlers/mailboxes.check_name's rules,
    plus no "." or ".." level so no name can look like a path step)."""
    name = _text(value, where, MAX_FOLDER, required=True).strip()
    if _FOLDER_BAD.search(name):
        raise RulesError("may not contain *, %, \\ or control characters", where)
    levels = name.split(SEP)
    if any(level.strip() in ("", ".", "..") for level in levels):
        raise RulesError(f"has an empty, '.' or '..' level between '{SEP}'", where)
    if levels[0].upper() == "INBOX":  # RFC 3501 §5.1: INBOX is case-insensitive
        levels[0] = "INBOX"
    return SEP.join(levels)


def _flag(value: object, where: str) -> str:
    text = _text(value, where, MAX_FLAG, required=True).strip()
    if text.startswith("\\"):
        system = _SYSTEM_FLAGS.get(text.lower())
        if system is None:
            raise RulesError("is not one of \\Flagged, \\Answered, \\Draft, \\Seen", where)
        return system
    if not _KEYWORD.fullmatch(text):
        raise RulesError("is not a valid IMAP keyword (letters, digits, $ and a few marks)", where)
    return text


def _condition(c: Condition, where: str) -> Condition:
    if c.field not in FIELDS:
        raise RulesError(f"unknown field (one of {', '.join(FIELDS)})", f"{where}.field")
    if c.match not in FIELDS[c.field]:
        raise RulesError(f"cannot be used with {c.field} (one of {', '.join(FIELDS[c.field])})", f"{where}.match")
    header = ""
    if c.field == "header":
        header = _text(c.header, f"{where}.header", MAX_HEADER_NAME, required=True).strip()
        if not _HEADER_NAME.fullmatch(header):
            raise RulesError("is not a header field name", f"{where}.header")
    value = ""
    if c.field == "size":
        value = _text(c.value, f"{where}.value", 12, required=True).strip()
        if not value.isascii() or not value.isdigit() or not 0 < int(value) <= MAX_SIZE:
            raise RulesError(f"must be a number of bytes from 1 to {MAX_SIZE}", f"{where}.value")
        value = str(int(value))
    elif c.match not in ("exists", "not_exists"):
        value = _text(c.value, f"{where}.value", MAX_VALUE, required=True)
    return Condition(c.field, c.match, value, header)


def _action(a: RuleAction, where: str) -> RuleAction:
    if a.kind not in ACTIONS:
        raise RulesError(f"unknown action (one of {', '.join(ACTIONS)})", f"{where}.kind")
    if a.kind in ("fileinto", "copyinto"):
        return RuleAction(a.kind, folder=folder_name(a.folder, f"{where}.folder"))
    if a.kind == "flag":
        return RuleAction(a.kind, flag=_flag(a.flag, f"{where}.flag"))
    if a.kind == "forward":
        return RuleAction(a.kind, address=_address(a.address, f"{where}.address"), keep_copy=bool(a.keep_copy))
    return RuleAction(a.kind)


def _rule(r: Rule, where: str) -> Rule:
    if len(r.conditions) > MAX_CONDITIONS:
        raise RulesError(f"at most {MAX_CONDITIONS} conditions", f"{where}.conditions")
    if not r.actions:
        raise RulesError("a rule needs at least one action", f"{where}.actions")
    if len(r.actions) > MAX_ACTIONS:
        raise RulesError(f"at most {MAX_ACTIONS} actions", f"{where}.actions")
    return Rule(name=_text(r.name, f"{where}.name", MAX_NAME).strip(),
                conditions=tuple(_condition(c, f"{where}.conditions[{i}]") for i, c in enumerate(r.conditions)),
                actions=tuple(_action(a, f"{where}.actions[{i}]") for i, a in enumerate(r.actions)),
                match_all=bool(r.match_all), enabled=bool(r.enabled))


def _vacation(v: VacationSettings) -> VacationSettings:
    if not isinstance(v.days, int) or isinstance(v.days, bool) or not 1 <= v.days <= MAX_DAYS:
        raise RulesError(f"must be a whole number of days from 1 to {MAX_DAYS}", "vacation.days")
    days: list[date | None] = []
    for name in ("start", "end"):
        d = getattr(v, name)
        if d is not None and not isinstance(d, date):
            raise RulesError("must be a date", f"vacation.{name}")
        days.append(d.date() if isinstance(d, datetime) else d)  # a day, never a time of day
    start, end = days
    if start is not None and end is not None and end < start:
        raise RulesError("is before the start date", "vacation.end")
    if len(v.addresses) > MAX_ADDRESSES:
        raise RulesError(f"at most {MAX_ADDRESSES} addresses", "vacation.addresses")
    text = v.text
    if isinstance(text, str):  # a browser's textarea sends CRLF: one line end in the script
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _text(text, "vacation.text", MAX_TEXT, required=v.enabled, multiline=True)
    return VacationSettings(
        enabled=bool(v.enabled), start=start, end=end,
        subject=_text(v.subject, "vacation.subject", MAX_SUBJECT).strip(),
        text=text,
        days=v.days,
        addresses=tuple(_address(a, f"vacation.addresses[{i}]") for i, a in enumerate(v.addresses)))


def validate(rs: RuleSet) -> RuleSet:
    """``rs`` checked and normalised (trimmed names, canonical flag and INBOX spelling),
    or :class:`RulesError` for the first bad value."""
    if len(rs.rules) > MAX_RULES:
        raise RulesError(f"at most {MAX_RULES} rules", "rules")
    rules = tuple(_rule(r, f"rules[{i}]") for i, r in enumerate(rs.rules))
    f = rs.forwarding
    if f.enabled:
        forwarding = Forwarding(True, _address(f.address, "forwarding.address"), bool(f.keep_copy))
    else:  # kept as typed so switching it back on restores it; checked all the same
        address = _address(f.address, "forwarding.address") if f.address else ""
        forwarding = Forwarding(False, address, bool(f.keep_copy))
    forwards = sum(1 for r in rules if r.enabled for a in r.actions if a.kind == "forward") + forwarding.enabled
    if forwards > MAX_FORWARDS:
        raise RulesError(f"at most {MAX_FORWARDS} forwarding actions in all", "rules")
    return RuleSet(rules, forwarding, _vacation(rs.vacation))


# -------------------------------------------------------------------------- generate


def quote(text: str) -> str:
    """A Sieve quoted string (RFC 5228 §2.4.2): only ``"`` and ``\\`` need escaping; UTF-8
    and (in vacation text) line breaks go in as they are."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _test(c: Condition, req: set[str]) -> str:
    negate = c.match.startswith("not_")
    kind = c.match.removeprefix("not_")
    if c.field == "size":
        out = f"size :{c.match} {c.value}"
    elif c.field == "attachment":
        # RFC 5703 §4.2: any part below the top whose Content-Disposition is "attachment".
        req.add("mime")
        out = 'header :mime :anychild :type "Content-Disposition" "attachment"'
    elif kind == "exists":
        out = f"exists {quote(c.header or c.field)}"
    elif c.field == "body":
        req.add("body")
        out = f"body :text :{kind} {quote(c.value)}"
    elif c.field in ("from", "to", "cc"):
        # The address (not the display name): "is" means exactly this address.
        out = f"address :all :{kind} {quote(c.field)} {quote(c.value)}"
    else:
        out = f"header :{kind} {quote(c.header or c.field)} {quote(c.value)}"  # subject or a named one
    return f"not {out}" if negate else out


def _rule_lines(r: Rule, req: set[str]) -> list[str]:
    tests = [_test(c, req) for c in r.conditions]
    if not tests:
        cond = "true"
    elif len(tests) == 1:
        cond = tests[0]
    else:
        cond = ("allof" if r.match_all else "anyof") + "(" + ", ".join(tests) + ")"
    # Flags first: imap4flags' internal variable (RFC 5232 §3) is what fileinto and keep
    # store with, so "flag" and "mark read" apply whatever their place in the list.
    flags = [a.flag for a in r.actions if a.kind == "flag"] + ["\\Seen" for a in r.actions if a.kind == "read"]
    body: list[str] = []
    if flags:
        req.add("imap4flags")
        unique = list(dict.fromkeys(flags))
        body.append(f"addflag [{', '.join(quote(f) for f in unique)}];")
    for a in r.actions:
        if a.kind in ("fileinto", "copyinto"):
            req.update(("fileinto", "mailbox"))  # RFC 5490 :create: a new folder is made
            if a.kind == "copyinto":
                req.add("copy")
            body.append(f"fileinto {':copy ' if a.kind == 'copyinto' else ''}:create {quote(a.folder)};")
        elif a.kind == "forward":
            if a.keep_copy:
                req.add("copy")
            body.append(f"redirect {':copy ' if a.keep_copy else ''}{quote(a.address)};")
        elif a.kind == "discard":
            body.append("discard;")
    if any(a.kind == "stop" for a in r.actions):
        body.append("stop;")  # last: it ends the script (RFC 5228 §3.3)
    head = f"# {json.dumps(r.name)}" if r.name else None
    return [*([head] if head else []), f"if {cond} {{", *(f"    {line}" for line in body), "}"]


def _vacation_lines(v: VacationSettings, req: set[str]) -> list[str]:
    req.add("vacation")
    args = f":days {v.days}"
    if v.subject:
        args += f" :subject {quote(v.subject)}"
    if v.addresses:
        args += f" :addresses [{', '.join(quote(a) for a in v.addresses)}]"
    line = f"vacation {args} {quote(v.text)};"
    tests = []
    if v.start is not None:
        tests.append(f'currentdate :value "ge" "date" {quote(v.start.isoformat())}')
    if v.end is not None:
        tests.append(f'currentdate :value "le" "date" {quote(v.end.isoformat())}')
    if not tests:
        return [line]
    req.update(("date", "relational"))
    cond = tests[0] if len(tests) == 1 else f"allof({', '.join(tests)})"
    return [f"if {cond} {{", f"    {line}", "}"]


def _body(rs: RuleSet) -> str:
    req: set[str] = set()
    lines: list[str] = []
    f = rs.forwarding
    run_rules = not f.enabled or f.keep_copy
    if f.enabled:
        if f.keep_copy:
            req.add("copy")
        lines += ["# forwarding", f"redirect {':copy ' if f.keep_copy else ''}{quote(f.address)};"]
    if run_rules:
        for r in rs.rules:
            if r.enabled:
                lines += _rule_lines(r, req)
    if rs.vacation.enabled:
        lines += ["# vacation", *_vacation_lines(rs.vacation, req)]
    model = json.dumps(to_json(rs), ensure_ascii=True, separators=(",", ":"), sort_keys=True)
    head = [f"# {model}"]
    if req:
        head.append(f"require [{', '.join(quote(r) for r in sorted(req))}];")
    return "\n".join(head + lines) + "\n"


def generate(rs: RuleSet) -> str:
    """The Sieve script for ``rs`` (validated first: :class:`RulesError` on a bad value)."""
    rs = validate(rs)
    body = _body(rs)
    text = f"{MARKER} {VERSION} {hashlib.sha256(body.encode('utf-8')).hexdigest()}\n{body}"
    if len(text.encode("utf-8")) > MAX_SCRIPT:
        raise RulesError(f"the rules make a script over {MAX_SCRIPT // 1024} KiB; remove some", "rules")
    return text


# ----------------------------------------------------------------------------- parse


def parse(script: str | bytes) -> RuleSet | None:
    """The rule set a script generated by :func:`generate` holds, or None when the script
    is anything else (not ours, edited, from another format version): the editor can
    then only show it, and replacing it needs the user's confirmation."""
    if isinstance(script, bytes):
        try:
            script = script.decode("utf-8")
        except UnicodeDecodeError:
            return None
    text = script.replace("\r\n", "\n")  # a script fetched back over ManageSieve may carry CRLF
    first, _, body = text.partition("\n")
    parts = first.split(" ")
    if len(parts) != 4 or " ".join(parts[:2]) != MARKER or parts[2] != str(VERSION):
        return None
    if hashlib.sha256(body.encode("utf-8")).hexdigest() != parts[3]:
        return None
    model_line = body.partition("\n")[0]
    if not model_line.startswith("# "):
        return None
    try:
        rs = from_json(json.loads(model_line[2:]))
        again = generate(rs)
    except (RulesError, ValueError, RecursionError):  # json's errors are ValueErrors
        return None
    return rs if again == text else None


# ------------------------------------------------------------------------------ JSON


def _strings(limit: int) -> dict[str, Any]:
    return {"type": "string", "maxLength": limit}


_DATE = {"type": "string", "nullable": True, "pattern": r"^\d{4}-\d{2}-\d{2}$"}

#: The JSON form as a schema (the subset postroom.web.schema checks and writes into
#: /api/openapi.json): the API's request and response body for a user's rules. The
#: shape and the bounds only; :func:`from_json` checks the rest (addresses, folder
#: names, which match goes with which field) and names the field it refuses.
RULESET_SCHEMA: dict[str, Any] = {
    "type": "object", "additionalProperties": False,
    "properties": {
        "rules": {"type": "array", "maxItems": MAX_RULES, "items": {
            "type": "object", "additionalProperties": False,
            "properties": {
                "name": _strings(MAX_NAME), "enabled": {"type": "boolean"}, "match_all": {"type": "boolean"},
                "conditions": {"type": "array", "maxItems": MAX_CONDITIONS, "items": {
                    "type": "object", "additionalProperties": False, "required": ["field"],
                    "properties": {"field": {"type": "string", "enum": list(FIELDS)},
                                   "match": {"type": "string", "enum": sorted(MATCHES)},
                                   "value": _strings(MAX_VALUE), "header": _strings(MAX_HEADER_NAME)}}},
                "actions": {"type": "array", "maxItems": MAX_ACTIONS, "items": {
                    "type": "object", "additionalProperties": False, "required": ["kind"],
                    "properties": {"kind": {"type": "string", "enum": list(ACTIONS)},
                                   "folder": _strings(MAX_FOLDER), "flag": _strings(MAX_FLAG),
                                   "address": _strings(MAX_ADDRESS), "keep_copy": {"type": "boolean"}}}}}}},
        "forwarding": {"type": "object", "additionalProperties": False, "properties": {
            "enabled": {"type": "boolean"}, "address": _strings(MAX_ADDRESS), "keep_copy": {"type": "boolean"}}},
        "vacation": {"type": "object", "additionalProperties": False, "properties": {
            "enabled": {"type": "boolean"}, "start": _DATE, "end": _DATE, "subject": _strings(MAX_SUBJECT),
            "text": _strings(MAX_TEXT), "days": {"type": "integer", "minimum": 1, "maximum": MAX_DAYS},
            "addresses": {"type": "array", "maxItems": MAX_ADDRESSES, "items": _strings(MAX_ADDRESS)}}},
    },
}


def to_json(rs: RuleSet) -> dict[str, Any]:
    """The JSON form the API exchanges and the script's model line carries."""
    v = rs.vacation
    return {
        "rules": [{"name": r.name, "enabled": r.enabled, "match_all": r.match_all,
                   "conditions": [{"field": c.field, "match": c.match, "value": c.value, "header": c.header}
                                  for c in r.conditions],
                   "actions": [{"kind": a.kind, "folder": a.folder, "flag": a.flag, "address": a.address,
                                "keep_copy": a.keep_copy} for a in r.actions]}
                  for r in rs.rules],
        "forwarding": {"enabled": rs.forwarding.enabled, "address": rs.forwarding.address,
                       "keep_copy": rs.forwarding.keep_copy},
        "vacation": {"enabled": v.enabled, "start": v.start.isoformat() if v.start else None,
                     "end": v.end.isoformat() if v.end else None, "subject": v.subject, "text": v.text,
                     "days": v.days, "addresses": list(v.addresses)},
    }


def _obj(value: object, where: str | None, schema: dict[str, Any]) -> dict[str, Any]:
    """``value`` as an object with only the keys ``schema`` names (as the API's check)."""
    if not isinstance(value, dict):
        raise RulesError("must be an object", where)
    for key in value:
        if key not in schema["properties"]:
            raise RulesError(f"unknown field {str(key)[:40]!r}", where)
    return value


def _list(value: object, where: str, limit: int) -> list[Any]:
    if not isinstance(value, list):
        raise RulesError("must be a list", where)
    if len(value) > limit:
        raise RulesError(f"at most {limit} entries", where)
    return value


def _bool(d: dict[str, Any], key: str, where: str, default: bool) -> bool:
    value = d.get(key, default)
    if not isinstance(value, bool):
        raise RulesError("must be true or false", f"{where}.{key}")
    return value


def _str(d: dict[str, Any], key: str, where: str) -> str:
    value = d.get(key, "")
    if not isinstance(value, str):
        raise RulesError("must be text", f"{where}.{key}")
    return value


def _date(value: object, where: str) -> date | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        raise RulesError("must be a date as YYYY-MM-DD", where)
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise RulesError("is not a real date", where) from None


def from_json(data: object) -> RuleSet:
    """A :class:`RuleSet` from its JSON form (the API's request body), validated."""
    top = RULESET_SCHEMA["properties"]
    rule_schema = top["rules"]["items"]
    d = _obj(data, None, RULESET_SCHEMA)
    rules = []
    for i, raw in enumerate(_list(d.get("rules", []), "rules", MAX_RULES)):
        w = f"rules[{i}]"
        r = _obj(raw, w, rule_schema)
        conds = [_obj(c, f"{w}.conditions[{j}]", rule_schema["properties"]["conditions"]["items"])
                 for j, c in enumerate(_list(r.get("conditions", []), f"{w}.conditions", MAX_CONDITIONS))]
        acts = [_obj(a, f"{w}.actions[{j}]", rule_schema["properties"]["actions"]["items"])
                for j, a in enumerate(_list(r.get("actions", []), f"{w}.actions", MAX_ACTIONS))]
        rules.append(Rule(
            name=_str(r, "name", w),
            conditions=tuple(Condition(_str(c, "field", f"{w}.conditions[{j}]"),
                                       _str(c, "match", f"{w}.conditions[{j}]") or "contains",
                                       _str(c, "value", f"{w}.conditions[{j}]"),
                                       _str(c, "header", f"{w}.conditions[{j}]")) for j, c in enumerate(conds)),
            actions=tuple(RuleAction(_str(a, "kind", f"{w}.actions[{j}]"), _str(a, "folder", f"{w}.actions[{j}]"),
                                     _str(a, "flag", f"{w}.actions[{j}]"), _str(a, "address", f"{w}.actions[{j}]"),
                                     _bool(a, "keep_copy", f"{w}.actions[{j}]", False))
                          for j, a in enumerate(acts)),
            match_all=_bool(r, "match_all", w, True), enabled=_bool(r, "enabled", w, True)))
    f = _obj(d.get("forwarding", {}), "forwarding", top["forwarding"])
    v = _obj(d.get("vacation", {}), "vacation", top["vacation"])
    days = v.get("days", 7)
    if not isinstance(days, int) or isinstance(days, bool):
        raise RulesError("must be a whole number", "vacation.days")
    addresses = _list(v.get("addresses", []), "vacation.addresses", MAX_ADDRESSES)
    for i, a in enumerate(addresses):
        if not isinstance(a, str):
            raise RulesError("must be text", f"vacation.addresses[{i}]")
    rs = RuleSet(
        rules=tuple(rules),
        forwarding=Forwarding(_bool(f, "enabled", "forwarding", False), _str(f, "address", "forwarding"),
                              _bool(f, "keep_copy", "forwarding", True)),
        vacation=VacationSettings(
            enabled=_bool(v, "enabled", "vacation", False), start=_date(v.get("start"), "vacation.start"),
            end=_date(v.get("end"), "vacation.end"), subject=_str(v, "subject", "vacation"),
            text=_str(v, "text", "vacation"), days=days, addresses=tuple(addresses)))
    return validate(rs)
