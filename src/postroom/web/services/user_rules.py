"""A user's filter rules, forwarding and vacation reply: read from and written to the
account's active Sieve script through the store's Sieve API (``postroom.web.rules``
translates; this module does the I/O and the rules about overwriting).

The editor's script is stored under the name :data:`SCRIPT_NAME` and made active. It is
compiled with ``[sieve]``'s settings first (``compile_with``: the same check ManageSieve
PUTSCRIPT and ``postroom sieve put`` make), so a script delivery could not run is never
stored.

A script the model cannot express (hand-written, uploaded over ManageSieve, edited) is
shown read-only and replaced only when the caller says ``replace=True`` (the page's
confirmation checkbox, the API's ``?replace=true``); without it :class:`Conflict`. When
it is replaced, its text is first stored, inactive, as ``<name>-replaced-<UTC time>``
(:func:`backup_name`), so nothing the user wrote is lost and ManageSieve or ``postroom
sieve`` can bring it back.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from aiohttp import web

from ...sieve.api import SieveError
from ...sieve.settings import compile_with
from ...sieve.settings import settings_for as sieve_settings_for
from ...storage.api import InvalidSieveScriptName, SieveScriptQuota
from ..errors import Conflict, Invalid
from ..rules import RuleSet, generate, parse
from ..site import ctx_of, viewer

SCRIPT_NAME = "rules"


@dataclass(frozen=True, slots=True)
class Current:
    """What the user has now: the model (empty when there is no script), whether the
    editor can express the active script, and that script's name and text."""

    ruleset: RuleSet
    expressible: bool
    script_name: str | None
    script: str


def backup_name(name: str, now: float | None = None) -> str:
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(time.time() if now is None else now))
    return f"{name[:100]}-replaced-{stamp}"


async def current(request: web.Request) -> Current:
    store = ctx_of(request).store
    active = await store.get_active_sieve_script(viewer(request).account_id)
    if active is None or not active[1].strip():
        return Current(RuleSet(), True, active[0] if active else None, active[1] if active else "")
    name, text = active
    rs = parse(text)
    if rs is None:
        return Current(RuleSet(), False, name, text)
    return Current(rs, True, name, text)


async def save(request: web.Request, rs: RuleSet, replace: bool = False) -> str:
    """Validate ``rs``, write it as the active script and return the script's text.

    Raises RulesError/Invalid (bad value, by its field; the script does not compile),
    Conflict (a hand-written script is active and ``replace`` is False; the scripts
    quota is full)."""
    ctx = ctx_of(request)
    store = ctx.store
    aid = viewer(request).account_id
    text = generate(rs)  # validates: RulesError names the field
    settings = sieve_settings_for(ctx)
    try:
        compile_with(settings, text)
    except SieveError as exc:  # a generator bug or a [sieve] limit lower than the editor's
        raise Invalid(f"the server refuses the generated script: {exc}", "rules") from None
    now = await current(request)
    backups: list[tuple[str, str]] = []
    if not now.expressible and now.script_name is not None:
        if not replace:
            raise Conflict("your active Sieve script was not written by this editor; confirm to replace it "
                           "(it is kept under another name)", "replace")
        backups.append((now.script_name, now.script))
    if now.script_name != SCRIPT_NAME:  # an inactive script of the editor's name that it did not write
        other = await store.get_sieve_script(aid, SCRIPT_NAME)
        if other is not None and other.strip() and parse(other) is None:
            backups.append((SCRIPT_NAME, other))
    try:
        for name, old in backups:
            await store.put_sieve_script(aid, backup_name(name), old, max_scripts=settings.max_scripts)
        await store.put_sieve_script(aid, SCRIPT_NAME, text, max_scripts=settings.max_scripts, activate=True)
    except SieveScriptQuota:
        raise Conflict(f"you have {settings.max_scripts} Sieve scripts already (the most allowed); delete one "
                       "over ManageSieve first", "replace") from None
    except InvalidSieveScriptName as exc:
        raise Invalid(str(exc), "replace") from None
    return text
