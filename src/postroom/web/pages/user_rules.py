"""A user's mail rules (``/settings/rules``), vacation reply (``/settings/vacation``)
and forwarding (``/settings/forwarding``), with their JSON API under ``/api/v1/me/``.

All three edit one model (``postroom.web.rules.RuleSet``) kept in the account's active
Sieve script; ``services/user_rules.py`` reads and writes it. The forms work without
JavaScript: a rule's conditions and actions are numbered rows (``c0_field``,
``c0_match`` …, ``a0_kind``, ``a0_folder`` …), an empty row is ignored, and "Add a
condition"/"Add an action" re-show the form with one more empty row without saving.

Every form goes through the model's own validation (``rules.from_json``), whose error
names a path such as ``rules[3].conditions[1].value``; :func:`_form_errors` turns it back
into the form field, so the error shows next to what the user typed.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

from aiohttp import web

from ..errors import Invalid, NotFound, WebError
from ..render import redirect, render
from ..rules import (
    FIELDS,
    MAX_ACTIONS,
    MAX_CONDITIONS,
    RULESET_SCHEMA,
    Rule,
    RuleSet,
    from_json,
    to_json,
)
from ..services import user_rules
from ..site import Role, Site, ctx_of, form, viewer

FIELD_LABELS = {"from": "From", "to": "To", "cc": "Cc", "subject": "Subject", "header": "Header named…",
                "body": "Body", "size": "Size (bytes)", "attachment": "Has an attachment"}
MATCH_LABELS = {"contains": "contains", "not_contains": "does not contain", "is": "is", "not_is": "is not",
                "matches": "matches (* and ?)", "not_matches": "does not match", "exists": "exists",
                "not_exists": "does not exist", "over": "is over", "under": "is under"}
ACTION_LABELS = {"fileinto": "Move to folder", "copyinto": "Copy to folder", "flag": "Flag",
                 "read": "Mark as read", "forward": "Forward to", "discard": "Delete", "stop": "Stop (no more rules)"}
MATCH_ORDER = ("contains", "not_contains", "is", "not_is", "matches", "not_matches", "exists", "not_exists",
               "over", "under")

_P = RULESET_SCHEMA["properties"]
STATE = {
    "type": "object", "additionalProperties": False,
    "required": ["expressible", "script_name", "script", "ruleset"],
    "properties": {
        "expressible": {"type": "boolean",
                        "description": "false: the active script was not written by the editor (ruleset is "
                                       "then empty; saving needs ?replace=true)"},
        "script_name": {"type": "string", "nullable": True},
        "script": {"type": "string"},
        "ruleset": RULESET_SCHEMA,
    },
}
REPLACE_QUERY = {"replace": {"type": "boolean", "description": "replace a hand-written active script (it is kept "
                                                              "under another name)"}}


def setup(site: Site) -> None:
    site.page("GET", "/settings/rules", rules_page, role=Role.USER)
    site.page("GET", "/settings/rules/new", rule_form, role=Role.USER)
    site.page("POST", "/settings/rules/new", rule_save, role=Role.USER)
    site.page("GET", "/settings/rules/{index:\\d{1,4}}", rule_form, role=Role.USER)
    site.page("POST", "/settings/rules/{index:\\d{1,4}}", rule_save, role=Role.USER)
    site.page("POST", "/settings/rules/{index:\\d{1,4}}/delete", rule_delete, role=Role.USER)
    site.page("POST", "/settings/rules/{index:\\d{1,4}}/move", rule_move, role=Role.USER)
    site.page("GET", "/settings/vacation", vacation_page, role=Role.USER)
    site.page("POST", "/settings/vacation", vacation_save, role=Role.USER)
    site.page("GET", "/settings/forwarding", forwarding_page, role=Role.USER)
    site.page("POST", "/settings/forwarding", forwarding_save, role=Role.USER)
    site.nav(Role.USER, "/settings/rules", "Mail rules")
    site.nav(Role.USER, "/settings/vacation", "Vacation reply")
    site.nav(Role.USER, "/settings/forwarding", "Forwarding")
    site.api("GET", "/api/v1/me/rules", api_get_rules, role=Role.USER, tag="me",
             summary="Your rules, forwarding and vacation, and the active Sieve script", response=STATE)
    site.api("PUT", "/api/v1/me/rules", api_put_rules, role=Role.USER, tag="me", query=REPLACE_QUERY,
             summary="Replace your rules, forwarding and vacation (writes your active Sieve script)",
             request=RULESET_SCHEMA, response=STATE)
    for part in ("vacation", "forwarding"):
        site.api("GET", f"/api/v1/me/{part}", _api_get_part(part), role=Role.USER, tag="me",
                 summary=f"Your {part} settings", response=_P[part])
        site.api("PUT", f"/api/v1/me/{part}", _api_put_part(part), role=Role.USER, tag="me", query=REPLACE_QUERY,
                 summary=f"Change your {part} settings (the rest of the script is kept)",
                 request=_P[part], response=_P[part])


# -- form ↔ model ----------------------------------------------------------------------
def _remap(exc: WebError, mapping: dict[str, str]) -> dict[str, str]:
    """The error keyed by the form field its model path names ("" when none does)."""
    path = exc.field or ""
    for prefix, name in mapping.items():
        if path == prefix or path.startswith(prefix + "."):
            return {name: exc.message}
    m = re.fullmatch(r"(vacation|forwarding)\.(\w+)", path)
    if m:
        return {m.group(2): exc.message}
    if path in ("replace", "name"):
        return {path: exc.message}
    return {"": exc.message if not path else f"{path}: {exc.message}"}


def _rows(fields: dict[str, str], prefix: str, key: str, limit: int) -> list[int]:
    """Row numbers present in the form (``c0_field``, ``c1_field`` …), at most ``limit``."""
    return [i for i in range(limit) if f"{prefix}{i}_{key}" in fields]


def _rule_from_form(fields: dict[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """The rule's JSON form (for ``from_json``) and the model-path → form-field mapping."""
    mapping: dict[str, str] = {}
    conditions: list[dict[str, Any]] = []
    for i in _rows(fields, "c", "field", MAX_CONDITIONS + 10):
        field = fields.get(f"c{i}_field", "")
        if not field:
            continue  # an empty row
        j = len(conditions)
        conditions.append({"field": field, "match": fields.get(f"c{i}_match", ""),
                           "value": fields.get(f"c{i}_value", ""), "header": fields.get(f"c{i}_header", "")})
        for attr in ("value", "header", "match", "field"):
            mapping[f"rules[0].conditions[{j}].{attr}"] = f"c{i}_{attr}"
        mapping[f"rules[0].conditions[{j}]"] = f"c{i}_field"
    actions: list[dict[str, Any]] = []
    for i in _rows(fields, "a", "kind", MAX_ACTIONS + 10):
        kind = fields.get(f"a{i}_kind", "")
        if not kind:
            continue
        j = len(actions)
        actions.append({"kind": kind, "folder": fields.get(f"a{i}_folder", ""), "flag": fields.get(f"a{i}_flag", ""),
                        "address": fields.get(f"a{i}_address", ""),
                        "keep_copy": fields.get(f"a{i}_keep_copy") == "on"})
        for attr in ("folder", "flag", "address", "kind"):
            mapping[f"rules[0].actions[{j}].{attr}"] = f"a{i}_{attr}"
        mapping[f"rules[0].actions[{j}]"] = f"a{i}_kind"
    mapping["rules[0].conditions"] = "c0_field"
    mapping["rules[0].actions"] = "a0_kind"
    mapping["rules[0].name"] = "name"
    rule = {"name": fields.get("name", ""), "enabled": fields.get("enabled") == "on",
            "match_all": fields.get("match_all", "all") != "any", "conditions": conditions, "actions": actions}
    return rule, mapping


def _rule_values(rule: Rule, extra_conditions: int = 1, extra_actions: int = 1) -> dict[str, Any]:
    values: dict[str, Any] = {"name": rule.name, "enabled": "on" if rule.enabled else "",
                              "match_all": "all" if rule.match_all else "any"}
    for i, c in enumerate(rule.conditions):
        values.update({f"c{i}_field": c.field, f"c{i}_match": c.match, f"c{i}_value": c.value,
                       f"c{i}_header": c.header})
    for i, a in enumerate(rule.actions):
        values.update({f"a{i}_kind": a.kind, f"a{i}_folder": a.folder, f"a{i}_flag": a.flag,
                       f"a{i}_address": a.address, f"a{i}_keep_copy": "on" if a.keep_copy else ""})
    values["n_conditions"] = min(len(rule.conditions) + extra_conditions, MAX_CONDITIONS)
    values["n_actions"] = min(len(rule.actions) + extra_actions, MAX_ACTIONS)
    return values


def describe(rule: Rule) -> str:
    """One line a person reads in the list: "all of: subject contains "x" → Move to folder A"."""
    def cond(c: Any) -> str:
        what = f"header {c.header}" if c.field == "header" else FIELD_LABELS.get(c.field, c.field).lower()
        if c.match in ("exists", "not_exists"):
            return f"{what} {MATCH_LABELS[c.match]}"
        return f"{what} {MATCH_LABELS.get(c.match, c.match)} “{c.value}”"

    def act(a: Any) -> str:
        arg = {"fileinto": a.folder, "copyinto": a.folder, "flag": a.flag,
               "forward": a.address + (" (keep a copy)" if a.keep_copy else "")}.get(a.kind, "")
        return f"{ACTION_LABELS.get(a.kind, a.kind)} {arg}".strip()

    when = "every message" if not rule.conditions else \
        (" and " if rule.match_all else " or ").join(cond(c) for c in rule.conditions)
    return f"If {when} → " + (", ".join(act(a) for a in rule.actions) or "nothing")


def _options() -> dict[str, Any]:
    return {
        "field_options": [("", "(none)")] + [(f, FIELD_LABELS[f]) for f in FIELDS],
        "match_options": [(m, MATCH_LABELS[m]) for m in MATCH_ORDER],
        "action_options": [("", "(none)")] + list(ACTION_LABELS.items()),
    }


async def _mailboxes(request: web.Request) -> list[str]:
    boxes = await ctx_of(request).store.list_mailboxes(viewer(request).account_id)
    return sorted(b.name for b in boxes)


async def _save(request: web.Request, data: dict[str, Any], replace_ok: bool) -> str:
    return await user_rules.save(request, from_json(data), replace_ok)


# -- rules list ------------------------------------------------------------------------
async def rules_page(request: web.Request, errors: dict[str, str] | None = None,
                     status: int = 200) -> web.StreamResponse:
    now = await user_rules.current(request)
    return render(request, "settings/rules.html", {
        "now": now, "rows": [(i, r, describe(r)) for i, r in enumerate(now.ruleset.rules)],
        "errors": errors or {}}, status=status)


def _index(request: web.Request, rs: RuleSet, allow_new: bool = False) -> int | None:
    raw = request.match_info.get("index")
    if raw is None:
        if allow_new:
            return None
        raise NotFound("no such rule")
    index = int(raw)
    if index >= len(rs.rules):
        raise NotFound("no such rule (the list may have changed: reload it)")
    return index


async def rule_form(request: web.Request) -> web.StreamResponse:
    now = await user_rules.current(request)
    index = _index(request, now.ruleset, allow_new=True)
    rule = now.ruleset.rules[index] if index is not None else Rule(enabled=True)
    values = _rule_values(rule, extra_conditions=0 if index is not None and rule.conditions else 1)
    return await _rule_page(request, now, index, values, {})


async def _rule_page(request: web.Request, now: user_rules.Current, index: int | None, values: dict[str, Any],
                     errors: dict[str, str], status: int = 200) -> web.Response:
    return render(request, "settings/rule.html", {
        "now": now, "index": index, "values": values, "errors": errors, "mailboxes": await _mailboxes(request),
        "action": "/settings/rules/new" if index is None else f"/settings/rules/{index}", **_options()},
        status=status)


async def rule_save(request: web.Request) -> web.StreamResponse:
    fields = await form(request)
    now = await user_rules.current(request)
    index = _index(request, now.ruleset, allow_new=True)
    rule, mapping = _rule_from_form(fields)
    more = fields.get("more", "")
    if more in ("condition", "action"):  # one more empty row, nothing saved
        values: dict[str, Any] = dict(fields)
        values["n_conditions"] = min(len(_rows(fields, "c", "field", MAX_CONDITIONS)) + (more == "condition"),
                                     MAX_CONDITIONS)
        values["n_actions"] = min(len(_rows(fields, "a", "kind", MAX_ACTIONS)) + (more == "action"), MAX_ACTIONS)
        return await _rule_page(request, now, index, values, {})
    data = to_json(now.ruleset)
    if index is None:
        data["rules"].append(rule)
        pos = len(data["rules"]) - 1
    else:
        data["rules"][index] = rule
        pos = index
    mapping = {k.replace("rules[0]", f"rules[{pos}]", 1): v for k, v in mapping.items()}
    try:
        await _save(request, data, fields.get("replace") == "on")
    except WebError as exc:
        values = dict(fields)
        values["n_conditions"] = len(_rows(fields, "c", "field", MAX_CONDITIONS))
        values["n_actions"] = len(_rows(fields, "a", "kind", MAX_ACTIONS))
        return await _rule_page(request, now, index, values, _remap(exc, mapping), exc.status)
    return redirect(request, "/settings/rules", flash="Rule saved.")


async def _change_list(request: web.Request, change: Any, flash: str) -> web.StreamResponse:
    fields = await form(request)
    now = await user_rules.current(request)
    index = _index(request, now.ruleset)
    assert index is not None
    rules = list(now.ruleset.rules)
    change(rules, index, fields)
    try:
        await user_rules.save(request, replace(now.ruleset, rules=tuple(rules)), fields.get("replace") == "on")
    except WebError as exc:
        return await rules_page(request, _remap(exc, {}), exc.status)
    return redirect(request, "/settings/rules", flash=flash)


async def rule_delete(request: web.Request) -> web.StreamResponse:
    return await _change_list(request, lambda rules, i, f: rules.pop(i), "Rule deleted.")


async def rule_move(request: web.Request) -> web.StreamResponse:
    def move(rules: list[Rule], i: int, fields: dict[str, str]) -> None:
        j = i - 1 if fields.get("direction") == "up" else i + 1
        if fields.get("direction") not in ("up", "down"):
            raise Invalid("direction must be up or down", "direction")
        if 0 <= j < len(rules):
            rules[i], rules[j] = rules[j], rules[i]
    return await _change_list(request, move, "Rule moved.")


# -- vacation and forwarding -----------------------------------------------------------
def _part_values(now: user_rules.Current, part: str) -> dict[str, Any]:
    data = to_json(now.ruleset)[part]
    values = {k: ("on" if v is True else "" if v is False or v is None else str(v)) for k, v in data.items()
              if k != "addresses"}
    return values


def _part_from_form(now: user_rules.Current, part: str, fields: dict[str, str]) -> dict[str, Any]:
    """The whole rule set's JSON with ``part`` taken from the form (checked by from_json)."""
    data = to_json(now.ruleset)
    if part == "vacation":
        days = fields.get("days", "").strip() or "7"
        if not days.isascii() or not days.isdigit() or len(days) > 4:
            raise Invalid("enter a number of days", "vacation.days")
        data["vacation"] = {"enabled": fields.get("enabled") == "on",
                            "start": fields.get("start", "").strip() or None,
                            "end": fields.get("end", "").strip() or None,
                            "subject": fields.get("subject", ""), "text": fields.get("text", "").replace("\r\n", "\n"),
                            "days": int(days), "addresses": data["vacation"]["addresses"]}
    else:
        data["forwarding"] = {"enabled": fields.get("enabled") == "on", "address": fields.get("address", "").strip(),
                              "keep_copy": fields.get("keep_copy") == "on"}
    return data


def _part_page(part: str) -> Any:
    async def page(request: web.Request) -> web.StreamResponse:
        now = await user_rules.current(request)
        return render(request, f"settings/{part}.html", {"now": now, "values": _part_values(now, part)})
    return page


def _part_save(part: str) -> Any:
    async def save(request: web.Request) -> web.StreamResponse:
        fields = await form(request)
        now = await user_rules.current(request)
        try:
            await _save(request, _part_from_form(now, part, fields), fields.get("replace") == "on")
        except WebError as exc:
            return render(request, f"settings/{part}.html", {"now": now, "values": fields,
                                                              "errors": _remap(exc, {})}, status=exc.status)
        return redirect(request, f"/settings/{part}", flash=f"{part.capitalize()} saved.")
    return save


vacation_page = _part_page("vacation")
vacation_save = _part_save("vacation")
forwarding_page = _part_page("forwarding")
forwarding_save = _part_save("forwarding")


# -- API ---------------------------------------------------------------------------------
def _state(now: user_rules.Current) -> dict[str, Any]:
    return {"expressible": now.expressible, "script_name": now.script_name, "script": now.script,
            "ruleset": to_json(now.ruleset)}


def _replace(request: web.Request) -> bool:
    return request.query.get("replace") == "true"


async def api_get_rules(request: web.Request, body: None) -> dict[str, Any]:
    return _state(await user_rules.current(request))


async def api_put_rules(request: web.Request, body: dict[str, Any]) -> dict[str, Any]:
    await _save(request, body, _replace(request))
    return _state(await user_rules.current(request))


def _api_get_part(part: str) -> Any:
    async def get(request: web.Request, body: None) -> dict[str, Any]:
        return to_json((await user_rules.current(request)).ruleset)[part]  # type: ignore[no-any-return]
    return get


def _api_put_part(part: str) -> Any:
    async def put(request: web.Request, body: dict[str, Any]) -> dict[str, Any]:
        data = to_json((await user_rules.current(request)).ruleset)
        if part == "vacation" and "addresses" not in body:
            body = {**body, "addresses": data["vacation"]["addresses"]}
        data[part] = {**data[part], **body}
        try:
            await _save(request, data, _replace(request))
        except WebError as exc:  # "vacation.subject" → "subject": the field of this body
            if exc.field and exc.field.startswith(part + "."):
                exc.field = exc.field[len(part) + 1:]
            raise
        return to_json((await user_rules.current(request)).ruleset)[part]  # type: ignore[no-any-return]
    return put
