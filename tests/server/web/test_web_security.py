"""Security of the web interface (issue #21, "Bad input" and "Done when"), route by route.

The routes are not listed by hand: they come from the aiohttp router the server builds
(``postroom.http.app.build``), with each route's role from the web registry (``Site``), and
from ``/api/openapi.json``, so a page or API route added later is covered without editing
this file. Checks:

- every page and API route refuses a request without a session (pages: 303 to ``/login``,
  API: 401), and no web route answers 2xx or 5xx to it;
- a user's session gets 403 on every admin route, and never sees another user's data on the
  user routes, whatever address or id it puts in the path or the query;
- a state-changing request with a session but without (or with a wrong) CSRF token gets 403
  and the store is unchanged afterwards;
- hostile values in every field of every form the pages show (scripts, CR/LF, ``..`` in
  mailbox names, 10 MB fields): no 5xx, scripts never come back unescaped, no header injected.

A user session comes from logging in in the real browser (tests/browser.py); the forged
requests then go over ``http.client`` with that browser's cookies (browser_server.Session).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import closing
from html.parser import HTMLParser
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
from browser import Browser, browser_fixture
from browser_server import (
    DOMAIN,
    Session,
    WebServer,
    fill_path,
    log_in,
    web_routes,
    write_web_config,
)

browser = browser_fixture("browser")

ADMIN, ADMIN_PW = f"root@{DOMAIN}", "admin-secret-1"
ALICE, ALICE_PW = f"alice@{DOMAIN}", "alice-secret-1"
BOB, BOB_PW = f"bob@{DOMAIN}", "bob-secret-1"
BOB_MARK = "bobs-device-zq9"  # the name of Bob's app password: must never show in Alice's pages
SCRIPT = '<script>alert("x")</script>'
STATE_CHANGING = ("POST", "PUT", "PATCH", "DELETE")


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebServer]:
    pytest.importorskip("aiohttp")
    with closing(WebServer(write_web_config(tmp_path_factory.mktemp("websec")))) as h:
        if not h.web_mounted():
            pytest.skip("this build does not serve the web interface (GET /login is not 200)")
        h.add_user(ADMIN, ADMIN_PW, admin=True)
        h.add_user(ALICE, ALICE_PW)
        h.add_user(BOB, BOB_PW)
        from postroom.accounts import app_passwords

        async def bobs_device() -> None:
            bob = await h.store.get_account(BOB)
            await app_passwords.create(h.store, bob, BOB_MARK)
        h.call(bobs_device())
        yield h


# -- the routes -----------------------------------------------------------------------------


def openapi_ops(srv: WebServer) -> list[tuple[str, str]]:
    status, _, body = Session(srv).request("GET", "/api/openapi.json")
    assert status == 200
    doc = json.loads(body)
    assert doc["openapi"].startswith("3.")
    return sorted((m.upper(), p) for p, item in doc["paths"].items() for m in item
                  if m in ("get", "put", "post", "delete", "patch"))


def store_snapshot(srv: WebServer) -> Any:
    """What a forged request could change: domains, accounts and their flags, credentials."""
    from postroom.accounts import app_passwords, tokens

    store = srv.store

    async def snap() -> Any:
        accounts = {}
        for addr in (ADMIN, ALICE, BOB):
            a = await store.get_account(addr)
            creds = [] if a is None else [(k, c.name) for k in (app_passwords.KIND, tokens.KIND)
                                          for c in await store.list_credentials(a.id, k)]
            accounts[addr] = None if a is None else (a.admin, a.disabled, a.session_epoch, a.totp_secret,
                                                     a.password_hash, sorted(creds))
        return sorted(await store.list_domains()), accounts
    return srv.call(snap())


class Forms(HTMLParser):
    """The POST forms of a page: ``(action, {field name: value})``."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[tuple[str, dict[str, str]]] = []
        self._in: dict[str, str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form" and a.get("method", "get").lower() == "post":
            self._in = {}
            self.forms.append((a.get("action", ""), self._in))
        elif tag in ("input", "select", "textarea") and self._in is not None and a.get("name"):
            self._in[a["name"]] = a.get("value", "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._in = None


def page_forms(s: Session, paths: list[str]) -> list[tuple[str, dict[str, str]]]:
    found = []
    for path in paths:
        status, _, body = s.request("GET", path)
        if status != 200:
            continue
        p = Forms()
        p.feed(body.decode("utf-8", "replace"))
        for action, fields in p.forms:
            target = urlsplit(action).path or path
            if "logout" not in target:
                found.append((target, fields))
    return found


@pytest.fixture(scope="module")
def routes(srv: WebServer) -> list[tuple[str, str, str]]:
    return web_routes(srv)


def session_of(b: Browser, srv: WebServer, user: str, password: str) -> Session:
    log_in(b, srv, user, password)
    return Session(srv, b)


# -- unauthenticated ----------------------------------------------------------------------------


def test_every_route_refuses_anonymous(srv: WebServer, routes: list[tuple[str, str, str]]) -> None:
    anon = Session(srv)
    checked = []
    for method, template, role in routes:
        if role == "public":
            continue
        path = fill_path(template, BOB)
        body = b"{}" if path.startswith("/api/") and method in STATE_CHANGING else None
        status, headers, _ = anon.request(method, path, body, "application/json" if body else None)
        where = f"{method} {path} ({role})"
        if path.startswith("/api/"):
            assert status == 401, where
        elif method == "GET":
            assert status == 303 and headers["location"].startswith("/login"), (where, status, headers)
        else:
            assert status in (303, 401, 403), (where, status)
        checked.append(where)
    assert checked, "no non-public web routes to check"


def test_every_openapi_operation_refuses_anonymous(srv: WebServer) -> None:
    anon = Session(srv)
    for method, template in openapi_ops(srv):
        body = b"{}" if method in STATE_CHANGING else None
        status, _, text = anon.request(method, fill_path(template, BOB), body, "application/json" if body else None)
        assert status == 401, (method, template, status)
        assert "error" in json.loads(text)


def test_bad_bearer_tokens_refused(srv: WebServer) -> None:
    for token in ("prt_" + "A" * 40, "x", "prt_", "\u00e9t\u00e9"):
        status, _, _ = Session(srv, token=token).request("GET", "/api/v1/me")
        assert status == 401, token
    # A user's token cannot exist (tokens are for admins), and a user's password is not a token.
    assert Session(srv, token=ALICE_PW).request("GET", "/api/v1/me")[0] == 401


# -- a user's session ---------------------------------------------------------------------


def test_user_cannot_reach_admin_routes(browser: Browser, srv: WebServer,
                                        routes: list[tuple[str, str, str]]) -> None:
    alice = session_of(browser, srv, ALICE, ALICE_PW)
    before = store_snapshot(srv)
    admin_routes = [(m, t) for m, t, role in routes if role == "admin" or t.startswith("/admin")]
    for method, template in admin_routes:
        path = fill_path(template, BOB)
        body = b"{}" if path.startswith("/api/") and method in STATE_CHANGING else None
        status, _, text = alice.request(method, path, body, "application/json" if body else None)
        assert status == 403, (method, path, status)
        assert BOB_MARK.encode() not in text
    # The admin area in the browser: a clear page, not the admin's menu.
    browser.get(srv.url("/admin/"))
    assert "403" in browser.text() or "forbidden" in browser.text().lower() or "not allowed" in browser.text().lower()
    assert store_snapshot(srv) == before


def test_user_cannot_see_another_users_data(browser: Browser, srv: WebServer,
                                            routes: list[tuple[str, str, str]]) -> None:
    alice = session_of(browser, srv, ALICE, ALICE_PW)
    from postroom.accounts import app_passwords

    async def bob_id() -> int:
        bob = await srv.store.get_account(BOB)
        assert bob is not None and (await app_passwords.list_for(srv.store, bob))
        return int(bob.id)
    ids = [BOB, str(srv.call(bob_id())), BOB_MARK]
    user_gets = [t for m, t, role in routes if role == "user" and m == "GET"]
    assert user_gets, "no user routes to check"
    for template in user_gets:
        for value in ids:
            for query in ("", f"?address={quote(BOB)}&user={quote(BOB)}&account={quote(BOB)}&id={value}"):
                path = fill_path(template, value) + query
                status, _, text = alice.request("GET", path)
                assert status < 500, (path, status)
                assert BOB_MARK.encode() not in text, f"{path} shows Bob's data to Alice"
    # And through the browser, Alice's own app-password page lists only hers.
    browser.get(srv.url("/settings/"))
    assert BOB_MARK not in browser.source()


# -- CSRF ---------------------------------------------------------------------------------


def test_state_changes_without_csrf_change_nothing(browser: Browser, srv: WebServer,
                                                   routes: list[tuple[str, str, str]]) -> None:
    admin = session_of(browser, srv, ADMIN, ADMIN_PW)
    assert admin.csrf, "the signed-in page has no <meta name=csrf-token>"
    before = store_snapshot(srv)
    fields = {"name": "forged.test", "domain": "forged.test", "address": f"forged@{DOMAIN}",
              "password": "forged-pass-1", "admin": "on", "disabled": "on"}
    changing = [(m, t) for m, t, role in routes if m in STATE_CHANGING and role != "public"]
    assert changing, "no state-changing routes"
    for method, template in changing:
        path = fill_path(template, ALICE)
        for token in (None, "0" * len(admin.csrf)):
            saved, admin.csrf = admin.csrf, token or ""
            try:
                if path.startswith("/api/"):
                    status, _, _ = admin.request(method, path, json.dumps(fields).encode(), "application/json")
                else:
                    status, _, _ = admin.form(path, fields)
            finally:
                admin.csrf = saved
            assert status == 403, (method, path, token, status)
    assert store_snapshot(srv) == before
    # The session itself still works: the forged posts did not log it out.
    assert admin.request("GET", "/api/v1/me")[0] == 200


# -- hostile values -----------------------------------------------------------------------


HOSTILE = [SCRIPT, "a\r\nX-Injected: yes", "../../etc/passwd", "INBOX/../..", "\x00", "x" * 70_000]


def test_hostile_form_values(browser: Browser, srv: WebServer, routes: list[tuple[str, str, str]]) -> None:
    admin = session_of(browser, srv, ADMIN, ADMIN_PW)
    gets = [t for m, t, role in routes if m == "GET" and "{" not in t and role in ("user", "admin")]
    forms = page_forms(admin, gets)
    assert forms, f"no POST forms on {gets}"
    for action, fields in forms:
        if not set(fields) - {"csrf"}:
            continue  # a button (delete, revoke): nothing to put a hostile value in
        for value in HOSTILE:
            sent = {k: (v if k == "csrf" else value) for k, v in fields.items()}
            status, headers, body = admin.form(action, {k: v for k, v in sent.items() if k != "csrf"})
            assert status < 500, (action, value[:20], status)
            assert "x-injected" not in headers, action
            assert SCRIPT.encode() not in body, f"{action} echoed a script unescaped"
    # Every page afterwards still renders, with whatever was stored escaped.
    for path in gets:
        status, _, body = admin.request("GET", path)
        assert status < 500, path
        assert SCRIPT.encode() not in body, f"{path} shows a stored script unescaped"
    # No folder or script escaped its place: no mailbox level "..", no script naming one.
    async def admin_state() -> tuple[list[str], str]:
        account = await srv.store.get_account(ADMIN)
        assert account is not None
        active = await srv.store.get_active_sieve_script(account.id)
        return [m.name for m in await srv.store.list_mailboxes(account.id)], active[1] if active else ""
    names, script = srv.call(admin_state())
    assert not [n for n in names if ".." in n.split("/")], names
    assert "../" not in script and "\r\nX-Injected" not in script
    for path in ("/admin/", "/settings/"):
        browser.get(srv.url(path))
        assert browser.d.execute_script("return document.querySelectorAll('script:not([src])').length") == 0


def test_ten_megabyte_fields_refused(browser: Browser, srv: WebServer, routes: list[tuple[str, str, str]]) -> None:
    admin = session_of(browser, srv, ADMIN, ADMIN_PW)
    before = store_snapshot(srv)
    big = "a" * (10 * 1024 * 1024)
    posts = [t for m, t, role in routes if m == "POST" and "{" not in t and role != "public" and "logout" not in t]
    for path in posts:
        if path.startswith("/api/"):
            status, _, body = admin.request("POST", path, json.dumps({"name": big}).encode(), "application/json")
            assert status in (400, 413), (path, status)
            assert "error" in json.loads(body)
        else:
            status, _, _ = admin.form(path, {"name": big, "address": big})
            assert status == 413, (path, status)
    assert store_snapshot(srv) == before
    assert admin.request("GET", "/api/v1/me")[0] == 200  # still serving


def test_login_next_is_not_an_open_redirect_or_header_injection(browser: Browser, srv: WebServer) -> None:
    anon = Session(srv)
    for target in ("https://evil.example/", "//evil.example/", "/\r\nX-Injected: yes", "/%0d%0aX-Injected:%20yes"):
        status, headers, _ = anon.request("GET", "/login?next=" + quote(target, safe=""))
        assert status == 200 and "x-injected" not in headers, target
    browser.trust(srv.cert)
    browser.get(srv.url("/login?next=" + quote("https://evil.example/x", safe="")))
    log_in_here = browser.url
    assert urlsplit(log_in_here).hostname == "127.0.0.1"
    b = browser
    form = b.d.find_element("css selector", "form:has(input[type=password])")
    form.find_element("css selector", "input[type=email], input[type=text], input:not([type])").send_keys(ALICE)
    form.find_element("css selector", "input[type=password]").send_keys(ALICE_PW)
    b._navigating(form.find_element("css selector", "button, input[type=submit]").click)
    assert urlsplit(b.url).hostname == "127.0.0.1", b.url
