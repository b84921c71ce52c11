"""The admin pages and their JSON API against a real server: domains, users, aliases, the
outbound queue. Every page and route for success and for bad input (the form comes back with the
error by its field and nothing changes).

One server for the module; tests use their own names so their order does not matter.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import closing

import pytest
from dnsfixture import DnsFixture
from webclient import WebClient
from webharness import DOMAIN, WebHarness, web_config

ADMIN, ADMIN_PW = "admin@example.test", "admin-password-1"
JOE, JOE_PW = "joe@example.test", "joe-password-1"
HOSTILE = '<script>alert("x")</script>'


@pytest.fixture(scope="module")
def dns() -> Iterator[DnsFixture]:
    with DnsFixture() as d:
        # remote.test's MX answers on no port: deliveries there stay deferred in the queue.
        d.mx("remote.test", [(10, "mx.remote.test")])
        d.a("mx.remote.test", "127.0.0.9")
        yield d


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory, dns: DnsFixture) -> Iterator[WebHarness]:
    pytest.importorskip("jinja2")
    cfg = web_config(tmp_path_factory.mktemp("web-admin"))
    with cfg.open("a") as f:
        f.write(f'\n[dns]\nresolver = "{dns.address}"\n[outbound]\nport = 1\n')
    with closing(WebHarness(cfg)) as h:
        assert DOMAIN == "example.test"
        h.add_user(ADMIN, ADMIN_PW, admin=True)
        h.add_user(JOE, JOE_PW)
        yield h


@pytest.fixture
def admin(srv: WebHarness) -> WebClient:
    c = WebClient.https(srv)
    c.login(ADMIN, ADMIN_PW)
    return c


def field_error(page: str, field: str) -> bool:
    return f'id="{field}-error"' in page and f'aria-describedby="{field}-error"' in page


# -- roles -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["/admin/domains", "/admin/users", "/admin/aliases", "/admin/queue",
                                  f"/admin/users/{JOE}"])
def test_admin_pages_need_an_admin(srv: WebHarness, path: str) -> None:
    anon = WebClient.https(srv)
    r = anon.get(path)
    assert r.status == 303 and r.location.startswith("/login")
    joe = WebClient.https(srv)
    joe.login(JOE, JOE_PW)
    assert joe.get(path).status == 403


@pytest.mark.parametrize("path", ["/api/v1/admin/domains", "/api/v1/admin/users", "/api/v1/admin/aliases",
                                  "/api/v1/admin/queue"])
def test_admin_api_needs_an_admin(srv: WebHarness, path: str) -> None:
    joe = WebClient.https(srv)
    joe.login(JOE, JOE_PW)
    assert joe.api("GET", path).status == 403
    assert WebClient.https(srv).api("GET", path).status == 401


def test_admin_landing_links(admin: WebClient) -> None:
    page = admin.get("/admin/").text
    for href in ("/admin/domains", "/admin/users", "/admin/aliases", "/admin/queue"):
        assert f'href="{href}"' in page


# -- domains ---------------------------------------------------------------------------------------
def test_domain_add_and_delete_page(admin: WebClient) -> None:
    r = admin.post("/admin/domains", {"name": "New-One.test."})
    assert r.status == 303 and r.location == "/admin/domains"
    page = admin.get("/admin/domains")
    assert "Domain new-one.test added." in page.text and "<th scope=\"row\">new-one.test</th>" in page.text
    r = admin.post("/admin/domains", {"name": "new-one.test"})
    assert r.status == 409 and field_error(r.text, "name") and "already served" in r.text
    r = admin.post("/admin/domains/new-one.test/delete", {})
    assert r.status == 303
    assert "new-one.test</th>" not in admin.get("/admin/domains").text


@pytest.mark.parametrize("bad", ["", "a..b.test", "bad name.test", "x\r\ny.test", HOSTILE, "nodot",
                                 "-lead.test", "a" * 300 + ".test", "../etc"])
def test_domain_bad_names(admin: WebClient, srv: WebHarness, bad: str) -> None:
    before = srv.call(srv.store.list_domains())
    r = admin.post("/admin/domains", {"name": bad})
    assert r.status == 400 and field_error(r.text, "name"), r.text
    assert "<script>" not in r.text
    assert srv.call(srv.store.list_domains()) == before
    assert admin.api("POST", "/api/v1/admin/domains", {"name": bad}).status == 400


def test_domain_with_accounts_is_kept(admin: WebClient, srv: WebHarness) -> None:
    assert admin.api("POST", "/api/v1/admin/domains", {"name": "busy.test"}).status == 201
    srv.add_user("someone@busy.test", "some-password-1")
    r = admin.post("/admin/domains/busy.test/delete", {})
    assert r.status == 409 and "still has 1 account(s) (someone@busy.test)" in r.text
    r = admin.api("DELETE", "/api/v1/admin/domains/busy.test")
    assert r.status == 409 and r.json()["field"] == "name"
    assert srv.call(srv.store.has_domain("busy.test"))
    # the config file's domain is managed there
    r = admin.api("DELETE", "/api/v1/admin/domains/example.test")
    assert r.status == 409 and "configuration file" in r.json()["error"]
    assert admin.api("DELETE", "/api/v1/admin/domains/absent.test").status == 404


def test_domain_api(admin: WebClient) -> None:
    r = admin.api("POST", "/api/v1/admin/domains", {"name": "api-dom.test"})
    assert r.status == 201 and r.json() == {"name": "api-dom.test", "accounts": 0, "aliases": 0,
                                            "in_config": False}
    rows = {d["name"]: d for d in admin.api("GET", "/api/v1/admin/domains").json()}
    assert rows["example.test"]["in_config"] and rows["example.test"]["accounts"] >= 2
    assert admin.api("POST", "/api/v1/admin/domains", {"name": "api-dom.test"}).status == 409
    assert admin.api("POST", "/api/v1/admin/domains", {"nom": "x.test"}).status == 400
    assert admin.api("DELETE", "/api/v1/admin/domains/api-dom.test").status == 204


def test_domain_api_by_token_needs_no_csrf(srv: WebHarness) -> None:
    token = srv.api_token(ADMIN, "admin-pages")
    c = WebClient.https(srv)
    assert c.api("POST", "/api/v1/admin/domains", {"name": "tok.test"}, token=token).status == 201
    assert c.api("DELETE", "/api/v1/admin/domains/tok.test", token=token).status == 204


def test_page_post_without_csrf_changes_nothing(admin: WebClient, srv: WebHarness) -> None:
    assert admin.post("/admin/domains", {"name": "nocsrf.test"}, csrf=False).status == 403
    assert not srv.call(srv.store.has_domain("nocsrf.test"))


# -- users -----------------------------------------------------------------------------------------
def test_user_add_page_and_flags(admin: WebClient, srv: WebHarness) -> None:
    r = admin.post("/admin/users", {"address": "Ann@Example.test", "password": "secret-pw-4711"})
    assert r.status == 303 and r.location == "/admin/users"
    page = admin.get("/admin/users").text
    assert "Account ann@example.test added." in page and "ann@example.test" in page
    assert "argon2" not in page.lower() and "{ARGON2ID}" not in page
    acct = srv.account("ann@example.test")
    assert acct is not None and not acct.admin
    assert admin.post("/admin/users/ann@example.test", {"action": "make-admin"}).status == 303
    assert srv.account("ann@example.test").admin
    assert admin.post("/admin/users/ann@example.test", {"action": "drop-admin"}).status == 303
    assert admin.post("/admin/users/ann@example.test", {"action": "disable"}).status == 303
    acct = srv.account("ann@example.test")
    assert acct.disabled and not acct.admin
    assert "disabled (cannot log in" in admin.get("/admin/users/ann@example.test").text
    assert admin.post("/admin/users/ann@example.test", {"action": "enable"}).status == 303
    assert not srv.account("ann@example.test").disabled


def test_user_quota_page(admin: WebClient, srv: WebHarness) -> None:
    srv.add_user("quota@example.test", "quota-pass-1")
    r = admin.post("/admin/users/quota@example.test", {"action": "quota", "storage": "2M", "messages": "100"})
    assert r.status == 303
    acct = srv.account("quota@example.test")
    q = srv.call(srv.store.get_quota(acct.id))
    assert (q.storage_limit, q.message_limit) == (2 * 1024 * 1024, 100)
    page = admin.get("/admin/users/quota@example.test").text
    assert 'value="2097152"' in page and 'value="100"' in page
    for bad in ({"storage": "lots", "messages": ""}, {"storage": "", "messages": "-1"},
                {"storage": "1M\r\n", "messages": ""}, {"storage": "", "messages": "9" * 40}):
        r = admin.post("/admin/users/quota@example.test", {"action": "quota", **bad})
        assert r.status == 400, bad
        assert field_error(r.text, "storage" if bad["storage"] else "messages")
    q = srv.call(srv.store.get_quota(acct.id))
    assert (q.storage_limit, q.message_limit) == (2 * 1024 * 1024, 100)
    assert admin.post("/admin/users/quota@example.test", {"action": "quota", "storage": "",
                                                          "messages": ""}).status == 303
    q = srv.call(srv.store.get_quota(acct.id))
    assert (q.storage_limit, q.message_limit) == (None, None)


def test_user_reset_password_ends_sessions(admin: WebClient, srv: WebHarness) -> None:
    srv.add_user("reset@example.test", "reset-pass-old")
    user = WebClient.https(srv)
    user.login("reset@example.test", "reset-pass-old")
    assert user.get("/settings/").status == 200
    epoch = srv.account("reset@example.test").session_epoch
    r = admin.post("/admin/users/reset@example.test", {"action": "password", "password": "short"})
    assert r.status == 400 and field_error(r.text, "password") and "short" not in r.text.split("<main")[-1]
    r = admin.post("/admin/users/reset@example.test", {"action": "password", "password": "brand-new-pass-9"})
    assert r.status == 303
    assert srv.account("reset@example.test").session_epoch == epoch + 1
    assert user.get("/settings/").status == 303  # logged out
    WebClient.https(srv).login("reset@example.test", "brand-new-pass-9")


@pytest.mark.parametrize("address,password,field", [
    ("", "good-password-1", "address"),
    ("no-at-sign", "good-password-1", "address"),
    ("x@unserved.test", "good-password-1", "address"),
    (f"{HOSTILE}@example.test", "good-password-1", "address"),
    ("cr\r\nlf@example.test", "good-password-1", "address"),
    ("a..b@example.test", "good-password-1", "address"),
    ("short@example.test", "abc", "password"),
    ("few@example.test", "aaaaaaaaaaaaaab", "password"),
    ("samename@example.test", "samename-123456", "password"),
    ("ctl@example.test", "good\npassword-1", "password"),
    (JOE, "good-password-1", "address"),
])
def test_user_add_bad_input(admin: WebClient, srv: WebHarness, address: str, password: str, field: str) -> None:
    before = [a.address for a in srv.call(srv.store.list_accounts())]
    r = admin.post("/admin/users", {"address": address, "password": password})
    assert r.status in (400, 409) and field_error(r.text, field), r.text
    assert "<script>alert" not in r.text
    assert [a.address for a in srv.call(srv.store.list_accounts())] == before
    r = admin.api("POST", "/api/v1/admin/users", {"address": address, "password": password})
    assert r.status in (400, 409) and r.json()["field"] == field


def test_user_page_bad_requests(admin: WebClient) -> None:
    assert admin.get("/admin/users/nobody@example.test").status == 404
    assert admin.get("/admin/users/..").status in (400, 404)
    r = admin.post(f"/admin/users/{JOE}", {"action": "explode"})
    assert r.status == 400 and "unknown action" in r.text
    r = admin.post(f"/admin/users/{ADMIN}", {"action": "disable"})
    assert r.status == 403 and "your own account" in r.text
    assert admin.post("/admin/users", {"address": "big@example.test", "password": "x" * (70 * 1024)}).status \
        in (400, 413)


def test_user_api(admin: WebClient, srv: WebHarness) -> None:
    r = admin.api("POST", "/api/v1/admin/users", {"address": "api-user@example.test",
                                                  "password": "first-pass-4711", "admin": True})
    assert r.status == 201
    assert r.json() == {"address": "api-user@example.test", "admin": True, "disabled": False, "totp": False,
                        "storage_used": 0, "storage_limit": None, "messages_used": 0, "message_limit": None}
    rows = admin.api("GET", "/api/v1/admin/users").json()
    assert {r["address"] for r in rows} >= {ADMIN, JOE, "api-user@example.test"}
    assert all("password" not in str(k) and "hash" not in str(k) for row in rows for k in row)
    r = admin.api("PATCH", "/api/v1/admin/users/api-user@example.test", {"disabled": True, "message_limit": 5})
    assert r.status == 200 and r.json()["disabled"] and r.json()["message_limit"] == 5
    assert r.json()["storage_limit"] is None
    r = admin.api("PATCH", "/api/v1/admin/users/api-user@example.test", {"storage_limit": -1})
    assert r.status == 400 and r.json()["field"] == "storage_limit"
    assert admin.api("PATCH", "/api/v1/admin/users/api-user@example.test", {"admin": "yes"}).status == 400
    assert admin.api("PATCH", "/api/v1/admin/users/nobody@example.test", {"admin": True}).status == 404
    epoch = srv.account("api-user@example.test").session_epoch
    r = admin.api("PUT", "/api/v1/admin/users/api-user@example.test/password", {"password": "x"})
    assert r.status == 400 and r.json()["field"] == "password"
    r = admin.api("PUT", "/api/v1/admin/users/api-user@example.test/password", {"password": "another-pass-77"})
    assert r.status == 200 and srv.account("api-user@example.test").session_epoch == epoch + 1
    assert admin.api("GET", "/api/v1/admin/users/api-user@example.test").json()["admin"]
    assert admin.api("DELETE", f"/api/v1/admin/users/{ADMIN}").status == 403
    assert admin.api("DELETE", "/api/v1/admin/users/api-user@example.test").status == 204
    assert srv.account("api-user@example.test") is None
    assert admin.api("GET", "/api/v1/admin/users/api-user@example.test").status == 404


def test_user_delete_page(admin: WebClient, srv: WebHarness) -> None:
    srv.add_user("gone@example.test", "gone-pass-123")
    r = admin.post("/admin/users/gone@example.test", {"action": "delete"})
    assert r.status == 303 and r.location == "/admin/users"
    assert srv.account("gone@example.test") is None


# -- aliases ---------------------------------------------------------------------------------------
def test_alias_add_edit_delete_page(admin: WebClient, srv: WebHarness) -> None:
    r = admin.post("/admin/aliases", {"source": "Team@example.test",
                                      "targets": f"{JOE}\r\n\r\nOther@Remote.test\r\n{JOE}\r\n"})
    assert r.status == 303
    alias = srv.call(srv.store.get_alias("team@example.test"))
    assert alias is not None and tuple(alias.targets) == (JOE, "other@remote.test")
    page = admin.get("/admin/aliases").text
    assert "team@example.test" in page and "joe@example.test, other@remote.test" in page
    edit = admin.get("/admin/aliases/team@example.test")
    assert edit.status == 200 and "other@remote.test" in edit.text
    r = admin.post("/admin/aliases/team@example.test", {"targets": f"{ADMIN}\n"})
    assert r.status == 303
    assert tuple(srv.call(srv.store.get_alias("team@example.test")).targets) == (ADMIN,)
    r = admin.post("/admin/aliases/team@example.test", {"targets": f"{ADMIN}\nnot an address"})
    assert r.status == 400 and field_error(r.text, "targets") and "not an address" in r.text
    assert tuple(srv.call(srv.store.get_alias("team@example.test")).targets) == (ADMIN,)
    r = admin.post("/admin/aliases/team@example.test", {"action": "delete"})
    assert r.status == 303
    assert srv.call(srv.store.get_alias("team@example.test")) is None
    assert admin.get("/admin/aliases/team@example.test").status == 404


def test_catch_all_alias(admin: WebClient, srv: WebHarness) -> None:
    assert admin.post("/admin/aliases", {"source": "@example.test", "targets": ADMIN}).status == 303
    assert admin.api("GET", "/api/v1/admin/aliases/@example.test").json() == {
        "source": "@example.test", "targets": [ADMIN], "newsgroups": []}
    assert admin.api("DELETE", "/api/v1/admin/aliases/@example.test").status == 204


@pytest.mark.parametrize("source,targets,field", [
    ("", JOE, "source"),
    ("x@unserved.test", JOE, "source"),
    (JOE, ADMIN, "source"),  # an account's name
    ("loop@example.test", "loop@example.test", "targets"),
    ("empty@example.test", "\n\n", "targets"),
    ("bad@example.test", HOSTILE, "targets"),
    ("crlf@example.test\r\nBcc: x@y.test", JOE, "source"),
    ("..@example.test", JOE, "source"),
    ("@..", JOE, "source"),
])
def test_alias_bad_input(admin: WebClient, srv: WebHarness, source: str, targets: str, field: str) -> None:
    before = srv.call(srv.store.list_aliases())
    r = admin.post("/admin/aliases", {"source": source, "targets": targets})
    assert r.status in (400, 409) and field_error(r.text, field), r.text
    assert "<script>alert" not in r.text
    assert srv.call(srv.store.list_aliases()) == before
    r = admin.api("POST", "/api/v1/admin/aliases", {"source": source, "targets": targets.splitlines()})
    assert r.status in (400, 409) and r.json()["field"].startswith(field)  # "targets[0]" from the schema


def test_alias_api(admin: WebClient) -> None:
    r = admin.api("POST", "/api/v1/admin/aliases", {"source": "sales@example.test", "targets": [JOE]})
    assert r.status == 201 and r.json() == {"source": "sales@example.test", "targets": [JOE], "newsgroups": []}
    assert admin.api("POST", "/api/v1/admin/aliases", {"source": "sales@example.test",
                                                       "targets": [JOE]}).status == 409
    r = admin.api("PUT", "/api/v1/admin/aliases/sales@example.test", {"targets": [ADMIN, JOE]})
    assert r.status == 200 and r.json()["targets"] == [ADMIN, JOE]
    assert admin.api("PUT", "/api/v1/admin/aliases/none@example.test", {"targets": [JOE]}).status == 404
    assert admin.api("PUT", "/api/v1/admin/aliases/sales@example.test", {"targets": "x"}).status == 400
    assert any(a["source"] == "sales@example.test" for a in admin.api("GET", "/api/v1/admin/aliases").json())
    assert admin.api("DELETE", "/api/v1/admin/aliases/sales@example.test").status == 204
    assert admin.api("DELETE", "/api/v1/admin/aliases/sales@example.test").status == 404


def test_lists_bound_to_newsgroups(admin: WebClient, srv: WebHarness) -> None:
    from postroom.news.service import News

    async def bind() -> None:
        news = await News.for_context(srv.server.ctx)
        await news.add_group("local.devel", list_address="devel@example.test")
        await news.add_group("local.other", list_address="other-list@example.test")
    srv.call(bind())
    assert admin.api("POST", "/api/v1/admin/aliases", {"source": "devel@example.test",
                                                       "targets": [JOE]}).json()["newsgroups"] == ["local.devel"]
    page = admin.get("/admin/aliases").text
    assert "also posted to the newsgroup(s) local.devel" in page
    assert "<th scope=\"row\">other-list@example.test</th><td>local.other</td>" in page
    assert "local.devel." in admin.get("/admin/aliases/devel@example.test").text


# -- outbound queue --------------------------------------------------------------------------------
def enqueue(srv: WebHarness, to: str = "someone@remote.test") -> str:
    from postroom.outbound.api import Envelope, recipients

    raw = (b"From: joe@example.test\r\nTo: " + to.encode() + b"\r\nSubject: queued <b>bold</b>\r\n"
           b"Message-ID: <q1@example.test>\r\n\r\nthe secret body\r\n")
    env = Envelope(JOE, recipients([to]), received_from="127.0.0.1")
    return str(srv.call(srv.server.ctx.outbound.enqueue(env, raw)))


def attempted(srv: WebHarness, msg_id: str, n: int = 1, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    from postroom.web.services.admin_queue import OutboundService

    service = srv.server.ctx.outbound
    assert isinstance(service, OutboundService)
    while time.monotonic() < deadline:
        msg = srv.call(service.queue.get(msg_id))
        if msg is not None and msg.recipients[0].attempts >= n:
            return
        time.sleep(0.1)
    raise AssertionError(f"{msg_id} was not tried {n} time(s)")


def test_queue_pages_and_actions(admin: WebClient, srv: WebHarness) -> None:
    msg_id = enqueue(srv)
    attempted(srv, msg_id)  # the MX refused the connection: deferred, with an error
    page = admin.get("/admin/queue").text
    assert msg_id in page and "someone@remote.test (deferred, 1 attempt(s))" in page
    detail = admin.get(f"/admin/queue/{msg_id}")
    assert detail.status == 200
    assert "Subject: queued &lt;b&gt;bold&lt;/b&gt;" in detail.text  # header shown, escaped
    assert "the secret body" not in detail.text  # not the body
    assert "deferred" in detail.text and "127.0.0.9" in detail.text or "refused" in detail.text.lower()
    assert admin.post(f"/admin/queue/{msg_id}", {"action": "hold"}).status == 303
    assert "held: not delivered until released" in admin.get(f"/admin/queue/{msg_id}").text
    r = admin.post(f"/admin/queue/{msg_id}", {"action": "release"})
    assert r.status == 303 and r.location == f"/admin/queue/{msg_id}"
    attempted(srv, msg_id, 2)  # release makes it due now and wakes the runner
    assert admin.post(f"/admin/queue/{msg_id}", {"action": "retry"}).status == 303
    attempted(srv, msg_id, 3)
    r = admin.post(f"/admin/queue/{msg_id}", {"action": "bounce-everyone"})
    assert r.status == 400 and "retry, hold, release, delete" in r.text
    r = admin.post(f"/admin/queue/{msg_id}", {"action": "delete"})
    assert r.status == 303 and r.location == "/admin/queue"
    assert admin.get(f"/admin/queue/{msg_id}").status == 404
    assert msg_id not in admin.get("/admin/queue").text


def test_queue_api(admin: WebClient, srv: WebHarness) -> None:
    msg_id = enqueue(srv, "api@remote.test")
    rows = admin.api("GET", "/api/v1/admin/queue").json()
    assert any(m["id"] == msg_id and m["recipients"][0]["address"] == "api@remote.test" for m in rows)
    one = admin.api("GET", f"/api/v1/admin/queue/{msg_id}").json()
    assert one["sender"] == JOE and one["envelope"]["received_from"] == "127.0.0.1"
    assert "Subject: queued" in one["header"] and "secret body" not in one["header"]
    r = admin.api("POST", f"/api/v1/admin/queue/{msg_id}/actions", {"action": "hold"})
    assert r.status == 200 and r.json()["held"]
    r = admin.api("POST", f"/api/v1/admin/queue/{msg_id}/actions", {"action": "release"})
    assert r.status == 200 and not r.json()["held"]
    assert admin.api("POST", f"/api/v1/admin/queue/{msg_id}/actions", {"action": "nuke"}).status == 400
    assert admin.api("POST", "/api/v1/admin/queue/NOPE/actions", {"action": "hold"}).status == 404
    assert admin.api("GET", "/api/v1/admin/queue/..").status in (400, 404)
    assert admin.api("GET", "/api/v1/admin/queue/a%0d%0ab").status == 400
    assert admin.api("DELETE", f"/api/v1/admin/queue/{msg_id}").status == 204
    assert admin.api("DELETE", f"/api/v1/admin/queue/{msg_id}").status == 404


# -- the API document ------------------------------------------------------------------------------
def test_admin_routes_in_openapi(admin: WebClient) -> None:
    paths = admin.get("/api/openapi.json").json()["paths"]
    for path, method in [("/api/v1/admin/domains", "post"), ("/api/v1/admin/domains/{name}", "delete"),
                         ("/api/v1/admin/users", "get"), ("/api/v1/admin/users/{address}", "patch"),
                         ("/api/v1/admin/users/{address}/password", "put"),
                         ("/api/v1/admin/aliases/{source}", "put"), ("/api/v1/admin/queue/{id}", "get"),
                         ("/api/v1/admin/queue/{id}/actions", "post"), ("/api/v1/admin/status", "get"),
                         ("/api/v1/admin/dkim/{domain}/keys", "post"),
                         ("/api/v1/admin/dkim/{domain}/keys/{selector}/actions", "post"),
                         ("/api/v1/admin/dns/{domain}", "get")]:
        assert method in paths[path], (path, method)
    validator = pytest.importorskip("openapi_spec_validator")
    validator.validate(admin.get("/api/openapi.json").json())


# -- server status ---------------------------------------------------------------------------------
def test_status_page_with_samples(admin: WebClient, srv: WebHarness) -> None:
    import logging

    from postroom.web.services import admin_status

    logging.getLogger("postroom.test").warning("disk <b>nearly</b> full")
    enqueue(srv, "status@remote.test")

    async def history() -> None:
        sampler = admin_status.sampler_for(srv.server.ctx)
        sampler.samples.clear()
        now = time.time()
        sampler.samples.append(admin_status.Sample(now - 180, connections=10, queue_messages=0))
        sampler.samples.append(admin_status.Sample(now - 120, connections=40, queue_messages=2))
        await sampler.sample()
    srv.call(history())
    r = admin.get("/admin/status")
    assert r.status == 200
    page = r.text
    assert "disk &lt;b&gt;nearly&lt;/b&gt; full" in page and "postroom.test" in page
    assert page.count("<polyline points=") == len(admin_status.SERIES)
    assert 'role="img" aria-labelledby="chart-connections"' in page
    assert "New connections as a table" in page and "<td>30.00</td>" in page  # 30 connections in that minute
    assert "Outbound queue" in page and 'href="/admin/queue"' in page
    assert "<script>" not in page and "style=" not in page  # the CSP allows neither inline
    data = admin.api("GET", "/api/v1/admin/status").json()
    assert len(data["history"]) >= 3 and data["history"][1]["connections"] == 40  # + the task's own
    assert data["now"]["queue_messages"] >= 1
    assert any(line["message"] == "disk <b>nearly</b> full" for line in data["log"])


def test_status_chart_scaling() -> None:
    from postroom.web.pages.admin_status import HEIGHT, PAD, WIDTH, chart

    c = chart("k", "K", "u", [(0.0, 0.0), (30.0, 5.0), (60.0, 10.0)])
    assert c.top == 10.0 and c.polyline.split() == [f"{PAD}.0,{HEIGHT - PAD}.0", f"{WIDTH / 2:.1f},{HEIGHT / 2:.1f}",
                                                     f"{WIDTH - PAD}.0,{PAD}.0"]
    assert chart("k", "K", "u", [(0.0, 3.0)]).polyline == ""
    assert chart("k", "K", "u", []).top == 1.0


# -- DKIM keys and DNS -----------------------------------------------------------------------------
def dns_row(page: str, name: str, rdtype: str) -> str:
    """The text of the records table's row for ``name`` ``rdtype``."""
    start = page.index(f'<th scope="row">{name}</th>\n    <td>{rdtype}</td>')
    return page[start:page.index("</tr>", start)]


def test_dkim_keygen_and_live_dns_check(admin: WebClient, srv: WebHarness, dns: DnsFixture) -> None:
    assert admin.api("POST", "/api/v1/admin/domains", {"name": "signed.test"}).status == 201
    dns.mx("signed.test", [(10, "elsewhere.test")])  # not this server: "different"
    r = admin.post("/admin/dkim/signed.test", {"action": "keygen", "algorithm": "ed25519", "selector": "web1"})
    assert r.status == 303 and r.location == "/admin/dkim/signed.test"
    keys = admin.api("GET", "/api/v1/admin/dkim/signed.test/keys").json()
    assert [(k["selector"], k["algorithm"], k["state"]) for k in keys] == [("web1", "ed25519", "active")]
    record = keys[0]["record"]
    assert record.startswith("v=DKIM1; k=ed25519; p=")
    page = admin.get("/admin/dkim/signed.test").text
    assert "Key web1 made, active." in page
    assert "<strong>missing</strong>" in dns_row(page, "web1._domainkey.signed.test.", "TXT")
    assert "<strong>different</strong>" in dns_row(page, "signed.test.", "MX")
    # a second key of the algorithm is pending; published before anyone asked for it, it checks ok
    r = admin.api("POST", "/api/v1/admin/dkim/signed.test/keys", {"algorithm": "ed25519", "selector": "web2"})
    assert r.status == 201 and r.json()["state"] == "pending"
    dns.txt("web2._domainkey.signed.test", r.json()["record"])
    page = admin.get("/admin/dkim/signed.test").text
    assert "<strong>ok</strong>" in dns_row(page, "web2._domainkey.signed.test.", "TXT")
    checked = admin.api("GET", "/api/v1/admin/dns/signed.test").json()
    by_name = {(r["name"], r["type"]): r for r in checked["records"]}
    assert by_name[("web2._domainkey.signed.test.", "TXT")]["status"] == "ok"
    assert by_name[("web1._domainkey.signed.test.", "TXT")]["status"] == "missing"
    assert by_name[("signed.test.", "MX")]["status"] == "different"
    assert by_name[("_dmarc.signed.test.", "TXT")]["status"] == "missing"
    # activating the pending key retires the active one
    assert admin.post("/admin/dkim/signed.test", {"action": "activate", "selector": "web2"}).status == 303
    states = {k["selector"]: k["state"] for k in admin.api("GET", "/api/v1/admin/dkim/signed.test/keys").json()}
    assert states == {"web1": "retired", "web2": "active"}
    r = admin.api("POST", "/api/v1/admin/dkim/signed.test/keys/web2/actions", {"action": "retire"})
    assert r.status == 200 and {k["state"] for k in r.json()} == {"retired"}
    assert 'href="/admin/dkim/signed.test"' in admin.get("/admin/dkim").text


@pytest.mark.parametrize("fields,field", [
    ({"action": "keygen", "algorithm": "dsa"}, "algorithm"),
    ({"action": "keygen", "algorithm": "rsa", "selector": "../../etc"}, "selector"),
    ({"action": "keygen", "algorithm": "rsa", "selector": HOSTILE}, "selector"),
    ({"action": "keygen", "algorithm": "rsa", "selector": "a\r\nb"}, "selector"),
    ({"action": "activate", "selector": "nosuch"}, "selector"),
])
def test_dkim_bad_input(admin: WebClient, srv: WebHarness, fields: dict[str, str], field: str) -> None:
    r = admin.post("/admin/dkim/example.test", fields)
    assert r.status in (400, 404) and field_error(r.text, field), r.text
    assert "<script>alert" not in r.text
    assert not (srv.data / "dkim" / "etc").exists()


def test_dkim_bad_domains_and_api(admin: WebClient) -> None:
    assert admin.get("/admin/dkim/unserved.test").status == 404
    assert admin.get("/admin/dkim/..").status in (400, 404)
    assert admin.api("GET", "/api/v1/admin/dkim/unserved.test/keys").status == 404
    assert admin.api("GET", "/api/v1/admin/dns/unserved.test").status == 404
    assert admin.api("POST", "/api/v1/admin/dkim/example.test/keys", {"algorithm": "dsa"}).status == 400
    r = admin.api("POST", "/api/v1/admin/dkim/example.test/keys/nosuch/actions", {"action": "activate"})
    assert r.status == 404 and r.json()["field"] == "selector"
    assert admin.post("/admin/dkim/example.test", {"action": "explode"}).status == 400
