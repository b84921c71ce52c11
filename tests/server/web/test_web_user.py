"""A user's own pages and their JSON API against a real server: password, app passwords,
vacation, forwarding and the rules editor, with mail delivered over SMTP (smtplib), read
back over IMAP, and the replies/forwards Postroom sends caught by an SMTP sink standing
for remote.test (a local DNS fixture points its MX at 127.0.0.2).

One server for the module; each test uses its own accounts, so the order does not matter.
"""

from __future__ import annotations

import email
import imaplib
import smtplib
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from webclient import WebClient
from webharness import WebHarness, web_config

sys.path.append(str(Path(__file__).resolve().parents[1] / "sieve"))  # the Sieve delivery tests' sink and DNS
from sieve_server_harness import (
    REMOTE,
    SINK_IP,
    DnsFixture,
    ScriptedSmtp,
    free_port,
    wait_for,
)

D = "example.test"
PW = "user-password-1"
CLI = "import sys; from postroom.cli import main; sys.exit(main(sys.argv[1:]))"  # `postroom ...`
USERS = ("pw", "pwapi", "app", "vac", "fwd", "fwdcopy", "rules", "hand", "bad", "api", "other", "mover")


class Net:
    def __init__(self, srv: WebHarness, sink: Any, cfg: Path) -> None:
        self.srv, self.sink, self.cfg = srv, sink, cfg


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    pytest.importorskip("jinja2")
    port = free_port((SINK_IP,))
    with DnsFixture() as dns, ScriptedSmtp(SINK_IP, port) as sink:
        dns.mx(REMOTE, [(10, f"mx.{REMOTE}")])
        dns.a(f"mx.{REMOTE}", SINK_IP)
        # web_config puts these lines under [web]; the sections after it are the test's own.
        extra = (f'\n[outbound]\nresolver = "{dns.address}"\nport = {port}\nretry_schedule = ["1s"]\n'
                 'poll_interval = "0.1s"\nconnect_timeout = "2s"\nconnection_idle = "0s"\n'
                 '[sieve]\nvacation_min_period = "1s"\n'
                 '[listeners.smtp]\naddress = "127.0.0.1:0"\ntls = "starttls"\n')
        cfg = web_config(tmp_path_factory.mktemp("webuser"), web=extra)
        with closing(WebHarness(cfg)) as h:
            h.server.ctx.auth.base_delay = 0.01
            for u in USERS:
                h.add_user(f"{u}@{D}", PW)
            yield Net(h, sink, cfg)


def login(net: Net, user: str, password: str = PW) -> WebClient:
    c = WebClient.https(net.srv)
    c.login(f"{user}@{D}", password)
    return c


def send(net: Net, user: str, subject: str, sender: str = f"pal@{REMOTE}") -> None:
    msg = (f"From: Pal <{sender}>\r\nTo: {user}@{D}\r\nSubject: {subject}\r\n"
           f"Message-ID: <{subject.replace(' ', '-')}.{time.time_ns()}@{REMOTE}>\r\n\r\nbody of {subject}\r\n")
    with smtplib.SMTP("127.0.0.1", net.srv.ports["smtp"], timeout=10) as s:
        s.ehlo(f"client.{REMOTE}")
        s.sendmail(sender, [f"{user}@{D}"], msg.encode())


def sent_to(net: Net, to: str, subject_part: str) -> list[email.message.Message]:
    msgs = [email.message_from_bytes(raw) for raw in net.sink.messages]
    return [m for m in msgs if to in str(m.get("To", "")) and subject_part in str(m.get("Subject", ""))]


def imap(net: Net, user: str, password: str = PW) -> imaplib.IMAP4:
    m = imaplib.IMAP4("127.0.0.1", net.srv.ports["imap"], timeout=10)
    m.starttls(ssl._create_unverified_context())
    m.login(f"{user}@{D}", password)
    return m


def imap_find(net: Net, user: str, box: str, subject: str) -> list[str]:
    """The FLAGS of the messages in ``box`` whose subject has ``subject`` (over IMAP)."""
    m = imap(net, user)
    try:
        typ, _ = m.select(f'"{box}"', readonly=True)
        if typ != "OK":
            return []
        _, data = m.search(None, "SUBJECT", f'"{subject}"')
        out = []
        for num in data[0].split():
            _, got = m.fetch(num, "(FLAGS)")
            out.append(got[0].decode() if isinstance(got[0], bytes) else str(got[0]))
        return out
    finally:
        m.logout()


def active(net: Net, user: str) -> tuple[str, str] | None:
    acct = net.srv.account(f"{user}@{D}")
    return net.srv.call(net.srv.store.get_active_sieve_script(acct.id))  # type: ignore[no-any-return]


# -- password -----------------------------------------------------------------------------
def test_change_password_ends_other_sessions_and_keeps_this_one(net: Net) -> None:
    here, elsewhere = login(net, "pw"), login(net, "pw")
    assert here.get("/settings/password").status == 200
    new = "a-much-better-secret-9"
    r = here.post("/settings/password", {"current": "wrong-password", "new": new, "confirm": new})
    assert r.status == 403 and 'id="current-error"' in r.text
    r = here.post("/settings/password", {"current": PW, "new": "short", "confirm": "short"})
    assert r.status == 400 and 'id="new-error"' in r.text and "at least 10" in r.text
    r = here.post("/settings/password", {"current": PW, "new": "pwpwpwpwpwpwpw", "confirm": "pwpwpwpwpwpwpw"})
    assert r.status == 400 and "different characters" in r.text
    r = here.post("/settings/password", {"current": PW, "new": new, "confirm": new + "x"})
    assert r.status == 400 and 'id="confirm-error"' in r.text
    imap(net, "pw").logout()  # the old password still works: nothing was changed
    r = here.post("/settings/password", {"current": PW, "new": new, "confirm": new})
    assert r.status == 303 and r.location == "/settings/"
    assert here.get("/settings/").status == 200  # this browser got a cookie with the new epoch
    assert elsewhere.get("/settings/").status == 303  # the other session ended
    with pytest.raises(imaplib.IMAP4.error):
        imap(net, "pw")  # the verified-credentials cache forgot the old password
    imap(net, "pw", new).logout()


def test_change_password_api(net: Net) -> None:
    c = login(net, "pwapi")
    r = c.api("POST", "/api/v1/me/password", {"current": PW, "new": "x"})
    assert r.status == 400 and r.json()["field"] == "new"
    r = c.api("POST", "/api/v1/me/password", {"current": "nope-nope-nope", "new": "another-good-one-7"})
    assert r.status == 403 and r.json()["field"] == "current"
    r = c.api("POST", "/api/v1/me/password", {"current": PW, "new": "another-good-one-7", "extra": 1})
    assert r.status == 400
    r = c.api("POST", "/api/v1/me/password", {"current": PW, "new": "another-good-one-7"})
    assert r.status == 204
    assert c.api("GET", "/api/v1/me").status == 200  # still logged in here
    imap(net, "pwapi", "another-good-one-7").logout()


# -- app passwords --------------------------------------------------------------------------
def test_app_password_page_imap_login_and_revoke(net: Net) -> None:
    c = login(net, "app")
    page = c.get("/settings/app-passwords")
    assert page.status == 200 and "You have none." in page.text
    assert c.post("/settings/app-passwords", {"name": "  "}).status == 400
    r = c.post("/settings/app-passwords", {"name": "bad\x01name"})
    assert r.status == 400 and 'id="name-error"' in r.text
    r = c.post("/settings/app-passwords", {"name": 'Phone "<b>"'})
    assert r.status == 200 and 'Phone &#34;&lt;b&gt;&#34;' in r.text  # escaped, never markup
    secret = r.text.split('id="new-app-password">')[1].split("<")[0]
    assert len(secret.replace("-", "")) == 28
    assert "IMAP: server <code>mail.example.test</code>" in r.text and "STARTTLS" in r.text
    assert c.post("/settings/app-passwords", {"name": 'Phone "<b>"'}).status == 409
    assert secret not in c.get("/settings/app-passwords").text  # shown once only
    imap(net, "app", secret).logout()
    rows = c.api("GET", "/api/v1/me/app-passwords").json()
    assert [row["name"] for row in rows] == ['Phone "<b>"'] and rows[0]["created"].endswith("Z")
    r = c.post("/settings/app-passwords/revoke", {"name": "no such"})
    assert r.status == 404
    r = c.post("/settings/app-passwords/revoke", {"name": 'Phone "<b>"'})
    assert r.status == 303
    with pytest.raises(imaplib.IMAP4.error):
        imap(net, "app", secret)
    # The API: create, list, revoke; the app password does not open the web login.
    r = c.api("POST", "/api/v1/me/app-passwords", {"name": "laptop"})
    assert r.status == 201 and r.json()["username"] == f"app@{D}"
    made = r.json()["password"]
    assert WebClient.https(net.srv).post("/login", {"username": f"app@{D}", "password": made}).status == 403
    imap(net, "app", made).logout()
    assert c.api("DELETE", "/api/v1/me/app-passwords/laptop").status == 204
    assert c.api("DELETE", "/api/v1/me/app-passwords/laptop").status == 404
    assert c.api("GET", "/api/v1/me/app-passwords").json() == []
    first = c.api("POST", "/api/v1/me/app-passwords", {"name": "one"}).json()["password"]
    c.api("POST", "/api/v1/me/app-passwords", {"name": "two"})
    c.get("/settings/app-passwords")
    assert c.post("/settings/app-passwords/revoke-all", {}).status == 303
    assert c.api("GET", "/api/v1/me/app-passwords").json() == []
    with pytest.raises(imaplib.IMAP4.error):
        imap(net, "app", first)
    c.api("POST", "/api/v1/me/app-passwords", {"name": "three"})
    assert c.api("DELETE", "/api/v1/me/app-passwords").status == 204
    assert c.api("GET", "/api/v1/me/app-passwords").json() == []


def test_users_see_only_their_own_app_passwords(net: Net) -> None:
    mine = login(net, "other")
    mine.api("POST", "/api/v1/me/app-passwords", {"name": "other-device"})
    theirs = login(net, "mover")
    assert theirs.api("GET", "/api/v1/me/app-passwords").json() == []
    assert theirs.api("DELETE", "/api/v1/me/app-passwords/other-device").status == 404
    r = theirs.post("/settings/app-passwords/revoke", {"name": "other-device", "account": f"other@{D}"})
    assert r.status == 404
    assert [x["name"] for x in mine.api("GET", "/api/v1/me/app-passwords").json()] == ["other-device"]


# -- vacation and forwarding -------------------------------------------------------------------
def test_vacation_page_and_reply_once_per_sender(net: Net) -> None:
    c = login(net, "vac")
    assert c.get("/settings/vacation").status == 200
    base = {"enabled": "on", "subject": "Away", "text": "I am away.\r\nBack soon.", "days": "1"}
    r = c.post("/settings/vacation", {**base, "subject": "Away\r\nBcc: victim@evil.test"})
    assert r.status == 400 and 'id="subject-error"' in r.text and active(net, "vac") is None
    r = c.post("/settings/vacation", {**base, "days": "zero"})
    assert r.status == 400 and 'id="days-error"' in r.text
    r = c.post("/settings/vacation", {**base, "days": "91"})
    assert r.status == 400 and 'id="days-error"' in r.text
    r = c.post("/settings/vacation", {**base, "text": "x" * 20_000})
    assert r.status == 400 and 'id="text-error"' in r.text
    assert c.post("/settings/vacation", {**base, "text": "x" * 70_000}).status == 400  # over the field limit
    big = c.request("POST", "/settings/vacation", b"text=" + b"x" * (10 << 20),
                    {"Content-Type": "application/x-www-form-urlencoded", "X-CSRF-Token": c.csrf})
    assert big.status == 413
    r = c.post("/settings/vacation", {**base, "start": "2020-13-01"})
    assert r.status == 400 and 'id="start-error"' in r.text
    assert active(net, "vac") is None  # nothing stored by any bad form
    r = c.post("/settings/vacation", {**base, "subject": 'Away "until" \\Monday'})
    assert r.status == 303
    page = c.get("/settings/vacation")
    assert 'value="Away &#34;until&#34; \\Monday"' in page.text
    assert c.api("GET", "/api/v1/me/vacation").json()["subject"] == 'Away "until" \\Monday'
    send(net, "vac", "question 1", sender=f"boss@{REMOTE}")
    [reply] = wait_for(lambda: sent_to(net, f"boss@{REMOTE}", "Away"), what="the vacation reply")
    assert "Back soon." in reply.get_payload(decode=True).decode()
    send(net, "vac", "question 2", sender=f"boss@{REMOTE}")
    send(net, "vac", "from a peer", sender=f"peer@{REMOTE}")
    wait_for(lambda: sent_to(net, f"peer@{REMOTE}", "Away"), what="the reply to the second sender")
    wait_for(lambda: len(imap_find(net, "vac", "INBOX", "question")) == 2, what="both kept")
    assert len(sent_to(net, f"boss@{REMOTE}", "Away")) == 1


def test_vacation_api(net: Net) -> None:
    c = login(net, "api")
    r = c.api("PUT", "/api/v1/me/vacation", {"enabled": True, "subject": "a\nb", "text": "t"})
    assert r.status == 400 and r.json()["field"] == "subject"
    r = c.api("PUT", "/api/v1/me/vacation", {"enabled": True, "subject": "Out", "text": "Gone", "days": 3})
    assert r.status == 200 and r.json()["days"] == 3
    state = c.api("GET", "/api/v1/me/rules").json()
    assert state["expressible"] and state["ruleset"]["vacation"]["text"] == "Gone"
    assert state["script_name"] == "rules" and "vacation" in state["script"]


def test_forwarding_without_and_with_a_copy(net: Net) -> None:
    c = login(net, "fwd")
    assert c.get("/settings/forwarding").status == 200
    r = c.post("/settings/forwarding", {"enabled": "on", "address": 'x"@evil\r\n.test'})
    assert r.status == 400 and 'id="address-error"' in r.text
    r = c.post("/settings/forwarding", {"enabled": "on", "address": f"away@{REMOTE}"})
    assert r.status == 303
    send(net, "fwd", "forward me")
    wait_for(lambda: [m for m in net.sink.messages if b"Subject: forward me" in m], what="the forwarded copy")
    time.sleep(0.5)
    assert imap_find(net, "fwd", "INBOX", "forward me") == []  # no copy kept
    c2 = login(net, "fwdcopy")
    assert c2.api("PUT", "/api/v1/me/forwarding", {"enabled": True, "address": f"keep@{REMOTE}",
                                                    "keep_copy": True}).status == 200
    send(net, "fwdcopy", "copy me")
    wait_for(lambda: [m for m in net.sink.messages if b"Subject: copy me" in m], what="the forwarded copy")
    wait_for(lambda: imap_find(net, "fwdcopy", "INBOX", "copy me"), what="the copy kept")


# -- rules -----------------------------------------------------------------------------------
def rule_fields(**over: str) -> dict[str, str]:
    fields = {"name": "Invoices", "enabled": "on", "match_all": "all",
              "c0_field": "subject", "c0_match": "contains", "c0_value": "invoice", "c0_header": "",
              "c1_field": "", "c1_match": "contains", "c1_value": "", "c1_header": "",
              "a0_kind": "fileinto", "a0_folder": "Finance/Invoices", "a0_flag": "", "a0_address": "",
              "a1_kind": "flag", "a1_folder": "", "a1_flag": "\\Flagged", "a1_address": "",
              "a2_kind": "", "a2_folder": "", "a2_flag": "", "a2_address": ""}
    fields.update(over)
    return fields


def test_rules_editor_saves_and_delivery_files_and_flags(net: Net) -> None:
    c = login(net, "rules")
    assert "You have no rules." in c.get("/settings/rules").text
    form = c.get("/settings/rules/new")
    assert form.status == 200 and 'name="c0_field"' in form.text and 'id="mailboxes"' in form.text
    more = c.post("/settings/rules/new", rule_fields(more="condition"))
    assert more.status == 200 and 'name="c2_field"' in more.text and active(net, "rules") is None
    r = c.post("/settings/rules/new", rule_fields(a0_folder="../etc"))
    assert r.status == 400 and 'id="a0_folder-error"' in r.text and active(net, "rules") is None
    r = c.post("/settings/rules/new", rule_fields(c1_field="header", c1_header="X:Bad", c1_value="v"))
    assert r.status == 400 and 'id="c1_header-error"' in r.text
    r = c.post("/settings/rules/new", rule_fields(c0_value="a\r\nb"))
    assert r.status == 400 and 'id="c0_value-error"' in r.text
    r = c.post("/settings/rules/new", rule_fields(c0_match="over"))
    assert r.status == 400 and 'id="c0_match-error"' in r.text
    r = c.post("/settings/rules/new", rule_fields(a1_flag="\\Bogus"))
    assert r.status == 400 and 'id="a1_flag-error"' in r.text
    assert active(net, "rules") is None
    r = c.post("/settings/rules/new", rule_fields())
    assert r.status == 303 and r.location == "/settings/rules"
    tricky = 'say "hi" \\ "bye'
    r = c.post("/settings/rules/new", rule_fields(name="Quotes", c0_value=tricky, a0_folder="Odd",
                                                  a1_kind="read", a1_flag=""))
    assert r.status == 303
    page = c.get("/settings/rules")
    assert "Invoices" in page.text and "Quotes" in page.text and "postroom-rules" in page.text
    assert "say &#34;hi&#34; \\ &#34;bye" in page.text
    name, script = active(net, "rules")  # type: ignore[misc]
    assert name == "rules" and 'say \\"hi\\" \\\\ \\"bye' in script
    send(net, "rules", "March Invoice 12")
    send(net, "rules", "lunch")
    send(net, "rules", tricky)
    [flags] = wait_for(lambda: imap_find(net, "rules", "Finance/Invoices", "March Invoice"), what="the filed invoice")
    assert "\\Flagged" in flags and "\\Seen" not in flags
    [flags] = wait_for(lambda: imap_find(net, "rules", "Odd", "bye"), what="the quoted subject filed")
    assert "\\Seen" in flags
    wait_for(lambda: imap_find(net, "rules", "INBOX", "lunch"), what="other mail in INBOX")
    # Edit, reorder, delete.
    edit = c.get("/settings/rules/1")
    assert edit.status == 200 and "Quotes" in edit.text
    assert c.post("/settings/rules/1/move", {"direction": "up"}).status == 303
    state = c.api("GET", "/api/v1/me/rules").json()
    assert [r["name"] for r in state["ruleset"]["rules"]] == ["Quotes", "Invoices"]
    assert c.post("/settings/rules/1/move", {"direction": "sideways"}).status == 400
    r = c.post("/settings/rules/1", rule_fields(name="Bills", c0_value="bill"))
    assert r.status == 303
    assert c.post("/settings/rules/0/delete", {}).status == 303
    state = c.api("GET", "/api/v1/me/rules").json()
    assert [(r["name"], r["conditions"][0]["value"]) for r in state["ruleset"]["rules"]] == [("Bills", "bill")]
    assert c.get("/settings/rules/7").status == 404
    assert c.post("/settings/rules/7/delete", {}).status == 404


def test_rules_api(net: Net) -> None:
    c = login(net, "bad")
    body = {"rules": [{"name": "x", "conditions": [{"field": "from", "match": "is", "value": f"a@{REMOTE}"}],
                       "actions": [{"kind": "fileinto", "folder": "a/../b"}]}]}
    r = c.api("PUT", "/api/v1/me/rules", body)
    assert r.status == 400 and r.json()["field"] == "rules[0].actions[0].folder"
    body["rules"][0]["actions"] = [{"kind": "discard"}]  # type: ignore[index]
    r = c.api("PUT", "/api/v1/me/rules", body)
    assert r.status == 200 and r.json()["expressible"] and r.json()["ruleset"]["rules"][0]["name"] == "x"
    assert c.api("PUT", "/api/v1/me/rules?replace=maybe", body).status == 400
    assert c.api("PUT", "/api/v1/me/rules", {"rules": "nope"}).status == 400


@pytest.mark.sqlite_only("the `postroom sieve put` subprocess stores on SQLite")
def test_hand_written_script_is_read_only_until_confirmed(net: Net, tmp_path: Path) -> None:
    script = tmp_path / "mine.sieve"
    script.write_text('require "fileinto";\nif header :contains "subject" "hand" { fileinto "Hand"; }\n')
    out = subprocess.run([sys.executable, "-c", CLI, "-c", str(net.cfg), "sieve", "put", f"hand@{D}",
                          "mine", str(script), "--activate"], check=False, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    c = login(net, "hand")
    page = c.get("/settings/rules")
    assert "not written by this editor" in page.text and "fileinto &#34;Hand&#34;" in page.text
    assert 'name="replace"' in c.get("/settings/vacation").text
    r = c.post("/settings/rules/new", rule_fields())
    assert r.status == 409 and 'id="replace-error"' in r.text
    r = c.post("/settings/vacation", {"enabled": "on", "subject": "Away", "text": "Gone", "days": "2"})
    assert r.status == 409
    assert c.api("PUT", "/api/v1/me/forwarding", {"enabled": True, "address": f"x@{REMOTE}"}).status == 409
    assert active(net, "hand") == ("mine", script.read_text())  # untouched
    state = c.api("GET", "/api/v1/me/rules").json()
    assert state["expressible"] is False and state["script_name"] == "mine" and state["ruleset"]["rules"] == []
    r = c.post("/settings/rules/new", rule_fields(replace="on"))
    assert r.status == 303
    assert active(net, "hand")[0] == "rules"  # type: ignore[index]
    acct = net.srv.account(f"hand@{D}")
    names = {i.name: i.active for i in net.srv.call(net.srv.store.list_sieve_scripts(acct.id))}
    backups = [n for n in names if n.startswith("mine-replaced-")]
    assert names["mine"] is False and len(backups) == 1 and names["rules"] is True
    kept = net.srv.call(net.srv.store.get_sieve_script(acct.id, backups[0]))
    assert kept == script.read_text()


def test_pages_need_a_session_and_csrf(net: Net) -> None:
    anon = WebClient.https(net.srv)
    assert anon.get("/settings/rules").status == 303
    assert anon.api("GET", "/api/v1/me/rules").status == 401
    c = login(net, "other")
    assert c.post("/settings/forwarding", {"enabled": "on", "address": f"x@{REMOTE}"}, csrf=False).status == 403
    assert c.post("/settings/password", {"current": PW, "new": "zzzzzzzzzzzz1"}, csrf=False).status == 403
    assert active(net, "other") is None


def test_openapi_lists_the_me_routes(net: Net) -> None:
    c = login(net, "other")
    doc = c.get("/api/openapi.json").json()
    for path in ("/api/v1/me/password", "/api/v1/me/app-passwords", "/api/v1/me/app-passwords/{name}",
                 "/api/v1/me/rules", "/api/v1/me/vacation", "/api/v1/me/forwarding"):
        assert path in doc["paths"], path
