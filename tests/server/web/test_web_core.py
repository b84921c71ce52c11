"""The web UI's foundation against a real server: login, sessions, CSRF, roles, TOTP, API tokens,
the OpenAPI document, who may reach the UI at all, and body limits.

One server for the module (``srv``); each test uses its own accounts, so the order does not matter.
"""

from __future__ import annotations

import imaplib
import json
import socket
import ssl
import time
from collections.abc import Iterator
from contextlib import closing

import pytest
from webclient import WebClient
from webharness import WebHarness, web_config

ADMIN, ADMIN_PW = "admin@example.test", "admin-password-1"
JOE, JOE_PW = "joe@example.test", "joe-password-1"


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebHarness]:
    pytest.importorskip("jinja2")
    with closing(WebHarness(web_config(tmp_path_factory.mktemp("web")))) as h:
        h.add_user(ADMIN, ADMIN_PW, admin=True)
        h.add_user(JOE, JOE_PW)
        yield h


def cookie_line(r: object, name: str) -> str:
    lines = [c for c in r.set_cookies if c.startswith(name + "=")]  # type: ignore[attr-defined]
    assert lines, f"no {name} cookie in {r.set_cookies}"  # type: ignore[attr-defined]
    return lines[-1]


# -- login, logout, cookies ----------------------------------------------------------------
def test_login_logout_over_https(srv: WebHarness) -> None:
    c = WebClient.https(srv)
    r = c.get("/settings/")
    assert r.status == 303 and r.location == "/login?next=/settings/"
    page = c.get("/login")
    assert page.status == 200 and '<label for="username">' in page.text
    r = c.post("/login", {"username": JOE, "password": JOE_PW, "next": "/settings/"})
    assert r.status == 303 and r.location == "/settings/"
    flags = [f.strip().lower() for f in cookie_line(r, "postroom_session").split(";")[1:]]
    assert {"httponly", "samesite=strict", "secure", "path=/"} <= set(flags)
    assert not any(f.startswith(("max-age", "expires")) for f in flags)  # ends with the browser
    home = c.get("/settings/")
    assert home.status == 200 and JOE in home.text
    assert home.headers["x-frame-options"] == "DENY"
    assert "script-src 'self'" in home.headers["content-security-policy"]
    assert "unsafe-inline" not in home.headers["content-security-policy"]
    assert home.headers["cache-control"] == "no-store"
    assert home.headers["referrer-policy"] == "same-origin"
    r = c.logout()
    assert r.status == 303 and r.location == "/login"
    assert "max-age=0" in cookie_line(r, "postroom_session").lower()
    assert "postroom_session" not in c.cookies
    page = c.get("/login")
    assert 'role="status">You are logged out.</div>' in page.text  # the flash message, once
    assert "You are logged out." not in c.get("/login").text
    assert c.get("/settings/").status == 303
    # logging out with a session that has already ended just goes to the login page
    r = c.post("/logout", {"csrf": "stale"})
    assert r.status == 303 and r.location == "/login"


def test_logout_ends_the_session_on_the_server(srv: WebHarness) -> None:
    """A copy of the cookie taken before "Log out" (a stolen one) is refused after it, and
    the account's other sessions are left alone (that is "Log out everywhere")."""
    c = WebClient.https(srv)
    c.login(JOE, JOE_PW)
    other = WebClient.https(srv)
    other.login(JOE, JOE_PW)
    stolen = c.cookies["postroom_session"]
    thief = WebClient.https(srv)
    thief.cookies["postroom_session"] = stolen
    assert thief.get("/settings/").status == 200 and thief.api("GET", "/api/v1/me").status == 200
    epoch = srv.account(JOE).session_epoch
    assert c.logout().status == 303
    r = thief.get("/settings/")
    assert r.status == 303 and r.location == "/login?next=/settings/"
    assert "max-age=0" in cookie_line(r, "postroom_session").lower()  # and the copy is told to forget it
    thief.cookies["postroom_session"] = stolen  # sent again anyway
    assert thief.api("GET", "/api/v1/me").status == 401
    assert other.get("/settings/").status == 200 and srv.account(JOE).session_epoch == epoch


def test_logout_needs_csrf_while_logged_in(srv: WebHarness) -> None:
    c = WebClient.https(srv)
    c.login(JOE, JOE_PW)
    assert c.post("/logout", {}, csrf=False).status == 403
    assert c.get("/settings/").status == 200


def test_cookie_not_secure_on_loopback_http(srv: WebHarness) -> None:
    c = WebClient.http(srv)
    c.get("/login")
    r = c.post("/login", {"username": JOE, "password": JOE_PW})
    assert r.status == 303
    line = cookie_line(r, "postroom_session").lower()
    assert "httponly" in line and "samesite=strict" in line and "secure" not in line
    assert c.get("/settings/").status == 200


def test_login_redirects_only_to_local_paths(srv: WebHarness) -> None:
    for target in ("https://evil.example/", "//evil.example/x", "/\\evil.example"):
        c = WebClient.https(srv)
        c.get("/login")
        r = c.post("/login", {"username": JOE, "password": JOE_PW, "next": target})
        assert r.status == 303 and r.location == "/settings/", (target, r.location)


def test_wrong_password_counts_with_imap(srv: WebHarness) -> None:
    """The web login and IMAP share the failure counters: web failures throttle IMAP and back."""
    auth = srv.server.ctx.auth
    before = srv.call(auth.failures.counts("127.0.0.1", "joe@example.test")).user
    c = WebClient.https(srv)
    c.get("/login")
    r = c.post("/login", {"username": JOE, "password": "wrong"})
    assert r.status == 403 and "Wrong address or password." in r.text and "postroom_session" not in c.cookies
    assert srv.call(auth.failures.counts("127.0.0.1", "joe@example.test")).user == before + 1
    ip_count = srv.call(auth.failures.counts("127.0.0.1", None)).ip
    saved = auth.max_failures
    auth.max_failures = ip_count  # the IP is now at its limit: both doors are shut
    try:
        r = c.post("/login", {"username": JOE, "password": JOE_PW})
        assert r.status == 429 and "Too many failed logins" in r.text
        imap = imaplib.IMAP4("127.0.0.1", srv.ports["imap"], timeout=10)
        try:
            with pytest.raises(imaplib.IMAP4.error):
                imap.login(JOE, JOE_PW)
        finally:
            imap.shutdown()
    finally:
        auth.max_failures = saved
    c.login(JOE, JOE_PW)


def test_app_password_does_not_open_the_web(srv: WebHarness) -> None:
    from postroom.accounts import app_passwords

    async def make() -> str:
        account = await srv.store.get_account(JOE)
        return (await app_passwords.create(srv.store, account, "phone"))[1]
    secret = srv.call(make())
    c = WebClient.https(srv)
    c.get("/login")
    assert c.post("/login", {"username": JOE, "password": secret}).status == 403


def test_missing_fields_and_garbage_cookie(srv: WebHarness) -> None:
    c = WebClient.https(srv)
    c.get("/login")
    r = c.post("/login", {"username": JOE})
    assert r.status == 400 and "Enter your address and password." in r.text
    r = c.post("/login", {"username": '"><script>alert(1)</script>', "password": "x"})
    assert r.status == 403 and "<script>alert" not in r.text and "&lt;script&gt;alert(1)" in r.text
    c.cookies["postroom_session"] = "not-a-session"
    r = c.get("/settings/")
    assert r.status == 303 and r.location.startswith("/login")
    assert "max-age=0" in cookie_line(r, "postroom_session").lower()


# -- session validity ------------------------------------------------------------------------
def _signer(srv: WebHarness):
    from postroom.web.app import web_state

    return web_state(srv.server.ctx).signer


def test_tampered_and_expired_cookies_go_to_login(srv: WebHarness) -> None:
    c = WebClient.https(srv)
    c.login(JOE, JOE_PW)
    good = c.cookies["postroom_session"]
    body, mac = good.split(".")
    forged = body[:-2] + ("A" if body[-2] != "A" else "B") + body[-1] + "." + mac
    for value in (forged, body + "." + mac[::-1], good + "x"):
        c.cookies["postroom_session"] = value
        r = c.get("/settings/")
        assert r.status == 303 and r.location.startswith("/login"), value
    signer = _signer(srv)
    account = srv.account(JOE)
    now = time.time()
    idle = signer.new(account.id, JOE, account.session_epoch, False, now=now - 31 * 60)
    old = signer.new(account.id, JOE, account.session_epoch, False, now=now - 13 * 3600).touched(now)
    for session in (idle, old):
        c.cookies["postroom_session"] = signer.encode(session)
        assert c.get("/settings/").status == 303
        assert c.api("GET", "/api/v1/me").status == 401
    c.cookies["postroom_session"] = good
    assert c.get("/settings/").status == 200


def test_logout_everywhere_ends_other_sessions(srv: WebHarness) -> None:
    srv.add_user("eve@example.test", "eve-password-1")
    a, b = WebClient.https(srv), WebClient.https(srv)
    a.login("eve@example.test", "eve-password-1")
    b.login("eve@example.test", "eve-password-1")
    r = a.post("/settings/logout-everywhere", {})
    assert r.status == 303 and r.location == "/login"
    assert b.get("/settings/").status == 303
    assert b.api("GET", "/api/v1/me").status == 401


def test_disabled_account_loses_its_session(srv: WebHarness) -> None:
    from postroom.accounts import attributes

    srv.add_user("gone@example.test", "gone-password-1")
    c = WebClient.https(srv)
    c.login("gone@example.test", "gone-password-1")
    srv.call(attributes.set_disabled(srv.store, "gone@example.test", True))
    assert c.get("/settings/").status == 303
    c.get("/login")
    assert c.post("/login", {"username": "gone@example.test", "password": "gone-password-1"}).status == 403


# -- CSRF -------------------------------------------------------------------------------------
def test_csrf_missing_or_wrong_changes_nothing(srv: WebHarness) -> None:
    srv.add_user("csrf@example.test", "csrf-password-1")
    c = WebClient.https(srv)
    c.login("csrf@example.test", "csrf-password-1")
    epoch = srv.account("csrf@example.test").session_epoch
    assert c.post("/settings/logout-everywhere", {}, csrf=False).status == 403
    r = c.post("/settings/logout-everywhere", {"csrf": "forged"})
    assert r.status == 403 and "reload the page" in r.text
    assert c.request("POST", "/settings/logout-everywhere", b"", {"X-CSRF-Token": "x"}).status == 403
    other = WebClient.https(srv)
    other.login(JOE, JOE_PW)  # a real token, but of another session
    assert c.post("/settings/logout-everywhere", {"csrf": other.csrf}).status == 403
    assert srv.account("csrf@example.test").session_epoch == epoch
    assert c.get("/settings/").status == 200
    # the header works as well as the field
    r = c.request("POST", "/settings/logout-everywhere", b"", {"X-CSRF-Token": c.csrf})
    assert r.status == 303 and srv.account("csrf@example.test").session_epoch == epoch + 1


def test_login_form_needs_its_csrf_token(srv: WebHarness) -> None:
    c = WebClient.https(srv)
    r = c.post("/login", {"username": JOE, "password": JOE_PW}, csrf=False)  # no anonymous cookie yet
    assert r.status == 403 and "postroom_session" not in c.cookies
    c.get("/login")
    assert c.post("/login", {"username": JOE, "password": JOE_PW, "csrf": "nope"}).status == 403


# -- roles --------------------------------------------------------------------------------------
def test_roles_pages_and_api(srv: WebHarness) -> None:
    anon = WebClient.https(srv)
    r = anon.get("/admin/")
    assert r.status == 303 and r.location == "/login?next=/admin/"
    r = anon.api("GET", "/api/v1/me")
    assert r.status == 401 and r.json()["error"]
    user = WebClient.https(srv)
    user.login(JOE, JOE_PW)
    r = user.get("/admin/")
    assert r.status == 403 and "for administrators" in r.text and "Traceback" not in r.text
    assert user.api("GET", "/api/v1/server").status == 403
    assert user.api("GET", "/api/v1/me").json() == {"address": JOE, "admin": False, "totp": False,
                                                     "via_token": False}
    admin = WebClient.https(srv)
    admin.login(ADMIN, ADMIN_PW)
    assert admin.get("/admin/").status == 200
    assert admin.api("GET", "/api/v1/server").json()["hostname"] == "mail.example.test"
    root = admin.get("/")
    assert root.status == 303 and root.location == "/admin/"


def test_unknown_web_paths_and_methods(srv: WebHarness) -> None:
    c = WebClient.https(srv)
    c.login(JOE, JOE_PW)
    assert c.get("/settings/no-such-page").status == 404
    assert c.api("GET", "/api/v1/no-such").status == 404
    assert c.api("DELETE", "/api/v1/me").status == 405
    r = c.api("GET", "/api/v1/me?bogus=1")
    assert r.status == 400 and r.json() == {"error": "unknown query parameter bogus", "field": "bogus"}


# -- TOTP ---------------------------------------------------------------------------------------
def test_totp_enrol_and_login(srv: WebHarness, monkeypatch: pytest.MonkeyPatch) -> None:
    import re

    from postroom.web import totp

    # A code is accepted once (test_web_totp.py): each step below uses the next time step.
    now = [time.time()]
    monkeypatch.setattr(totp, "clock", lambda: now[0])
    srv.add_user("boss@example.test", "boss-password-1", admin=True)
    c = WebClient.https(srv)
    c.login("boss@example.test", "boss-password-1")
    page = c.get("/settings/totp")
    assert page.status == 200 and "is <strong>off</strong>" in page.text
    secret = re.search(r'<code class="secret">([A-Z2-7]+)</code>', page.text).group(1)
    enrol = re.search(r'name="enrol" value="([^"]+)"', page.text).group(1)
    r = c.post("/settings/totp", {"action": "enable", "enrol": enrol, "code": "000000"
                                  if totp.code_at(secret, now[0]) != "000000" else "111111"})
    assert r.status == 400 and "not right" in r.text
    assert srv.account("boss@example.test").totp_secret is None
    r = c.post("/settings/totp", {"action": "enable", "enrol": enrol, "code": totp.code_at(secret, now[0])})
    assert r.status == 303
    assert srv.account("boss@example.test").totp_secret == secret

    # a new login needs the code; the half-logged-in session reaches nothing else
    d = WebClient.https(srv)
    d.get("/login")
    r = d.post("/login", {"username": "boss@example.test", "password": "boss-password-1", "next": "/admin/"})
    assert r.status == 303 and r.location == "/totp?next=/admin/"
    assert d.get("/admin/").status == 303 and d.api("GET", "/api/v1/me").status == 401
    d.get("/totp?next=/admin/")
    r = d.post("/totp", {"code": "12345x", "next": "/admin/"})
    assert r.status == 403 and "not right" in r.text
    now[0] += totp.STEP
    r = d.post("/totp", {"code": totp.code_at(secret, now[0]), "next": "/admin/"})
    assert r.status == 303 and r.location == "/admin/"
    assert d.get("/admin/").status == 200
    assert d.api("GET", "/api/v1/me").json()["totp"] is True

    # the enrolment token of one account is worth nothing to another
    e = WebClient.https(srv)
    e.login(JOE, JOE_PW)
    r = e.post("/settings/totp", {"action": "enable", "enrol": enrol, "code": totp.code_at(secret, now[0])})
    assert r.status == 400 and srv.account(JOE).totp_secret is None

    # turning it off needs a current code
    now[0] += totp.STEP
    r = d.post("/settings/totp", {"action": "disable", "code": "000000"
                                  if totp.code_at(secret, now[0]) != "000000" else "111111"})
    assert r.status == 403 and srv.account("boss@example.test").totp_secret == secret
    r = d.post("/settings/totp", {"action": "disable", "code": totp.code_at(secret, now[0])})
    assert r.status == 303 and srv.account("boss@example.test").totp_secret is None


# -- API tokens and the OpenAPI document ----------------------------------------------------------
def test_api_token(srv: WebHarness) -> None:
    token = srv.api_token(ADMIN)
    c = WebClient.https(srv)
    r = c.api("GET", "/api/v1/me", token=token)
    assert r.status == 200 and r.json() == {"address": ADMIN, "admin": True, "totp": False, "via_token": True}
    assert c.api("GET", "/api/v1/server", token=token).status == 200
    assert "postroom_session" not in c.cookies
    for bad in (token + "x", "prt_" + "A" * 43, ""):
        r = c.api("GET", "/api/v1/me", token=bad)
        assert r.status == 401 and "error" in r.json()
    r = c.request("GET", "/api/v1/me", headers={"Authorization": "Basic YTpi"})
    assert r.status == 401
    # a token is no way into the pages
    r = c.request("GET", "/admin/", headers={"Authorization": f"Bearer {token}"})
    assert r.status == 303


def test_openapi_document(srv: WebHarness) -> None:
    c = WebClient.https(srv)
    r = c.get("/api/openapi.json")
    assert r.status == 200 and r.headers["content-type"].startswith("application/json")
    doc = r.json()
    assert doc["openapi"] == "3.0.3"
    assert doc["paths"]["/api/v1/me"]["get"]["responses"]["200"]["content"]["application/json"]["schema"][
        "required"] == ["address", "admin", "totp", "via_token"]
    validator = pytest.importorskip("openapi_spec_validator")
    validator.validate(doc)


# -- who may reach the UI -----------------------------------------------------------------------------
def _other_address() -> str | None:
    """An address of this machine that is not loopback (a client from there is "remote")."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("192.0.2.1", 9))  # no packet is sent: this only picks the outgoing address
            ip = s.getsockname()[0]
    except OSError:
        return None
    return None if ip.startswith("127.") else ip


def test_plain_http_only_from_loopback(srv: WebHarness) -> None:
    ip = _other_address()
    if ip is None:
        pytest.skip("this machine has no non-loopback IPv4 address")
    remote = WebClient(srv.ports["http_any"], host=ip)
    for path in ("/login", "/admin/", "/api/openapi.json", "/static/web.css", "/"):
        r = remote.get(path)
        assert r.status == 404 and r.body == b"404: Not Found", path
    assert remote.get("/healthz").status == 200  # the rest of the HTTP side is still there
    local = WebClient(srv.ports["http_any"])
    assert local.get("/login").status == 200


def test_disabled_web_section(tmp_path_factory: pytest.TempPathFactory) -> None:
    with closing(WebHarness(web_config(tmp_path_factory.mktemp("webx"), web="enabled = false"))) as h:
        c = WebClient.https(h)
        assert c.get("/login").status == 404
        assert c.get("/api/openapi.json").status == 404
        assert c.get("/healthz").status == 200


# -- bodies ---------------------------------------------------------------------------------------------
def test_huge_form_field(srv: WebHarness) -> None:
    c = WebClient.https(srv)
    c.login(JOE, JOE_PW)
    # 10 MB announced: refused before it is read
    ctx = ssl.create_default_context(cafile=str(srv.cert))
    ctx.check_hostname = False
    with socket.create_connection(("127.0.0.1", srv.ports["https"]), timeout=10) as raw, \
            ctx.wrap_socket(raw) as s:
        cookie = "; ".join(f"{k}={v}" for k, v in c.cookies.items())
        s.sendall(b"POST /settings/totp HTTP/1.1\r\nHost: mail.example.test\r\n"
                  b"Content-Type: application/x-www-form-urlencoded\r\n"
                  b"Content-Length: 10485760\r\nCookie: " + cookie.encode() + b"\r\n\r\ncode=")
        head = s.recv(65536)
    assert head.startswith(b"HTTP/1.1 413"), head[:200]
    # within the body limit, but one field over 64 KiB: a clear page, nothing changed
    r = c.post("/settings/totp", {"action": "enable", "code": "1" * (70 * 1024)})
    assert r.status == 400 and "is longer than" in r.text
    assert c.get("/settings/").status == 200


def test_error_pages_leak_nothing(srv: WebHarness) -> None:
    c = WebClient.https(srv)
    c.get("/login")
    r = c.request("POST", "/login", b"\xff\xfe=\x00", {"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status in (400, 403) and "Traceback" not in r.text
    r = c.request("POST", "/login", b"{}", {"Content-Type": "application/json"})
    assert r.status in (400, 403) and "Traceback" not in r.text
    r = c.api("GET", "/api/v1/me")
    assert r.status == 401 and set(json.loads(r.body)) == {"error", "field"}
