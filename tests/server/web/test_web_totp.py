"""A TOTP code opens one session only (RFC 6238 §5.2), against a real server on both stores.

The store keeps the time step of the last code accepted for each account; a login, an
enrolment or turning the factor off takes a code only if its step is later, by one
compare-and-set UPDATE. So a code seen over a shoulder (or relayed by a phishing proxy)
is refused once its owner used it, and two requests racing with one code cannot both win.
TOTP attempts meet the password's failure counters and IP throttle.

The module freezes ``totp.clock`` (the server runs in this process) and moves it a whole
step at a time, so which step a code belongs to never depends on when the test runs.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from contextlib import closing

import pytest
from webclient import Response, WebClient
from webharness import WebHarness, web_config

from postroom.web import totp

PASSWORD = "totp-password-1"


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebHarness]:
    pytest.importorskip("jinja2")
    with closing(WebHarness(web_config(tmp_path_factory.mktemp("web-totp")))) as h:
        # Failures here are deliberate: no doubling penalty sleep (the counting is what is tested).
        h.server.ctx.auth.base_delay = 0.0
        yield h


class Clock:
    """What the server's TOTP check takes as now: the middle of a step, moved by whole steps."""

    def __init__(self) -> None:
        self.now = (int(time.time()) // totp.STEP) * totp.STEP + totp.STEP / 2

    def tick(self, steps: int = 1) -> None:
        self.now += steps * totp.STEP

    @property
    def step(self) -> int:
        return int(self.now) // totp.STEP

    def code(self, secret: str, steps: int = 0) -> str:
        return totp.code_at(secret, self.now + steps * totp.STEP)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    c = Clock()
    monkeypatch.setattr(totp, "clock", lambda: c.now)
    return c


def setup_form(c: WebClient) -> tuple[str, str]:
    """The secret and the signed enrolment token of a fresh ``/settings/totp`` page."""
    page = c.get("/settings/totp").text
    found = re.search(r'<code class="secret">([A-Z2-7]+)</code>', page)
    enrol = re.search(r'name="enrol" value="([^"]+)"', page)
    assert found and enrol, page[:500]
    return found.group(1), enrol.group(1)


def enrolled(srv: WebHarness, clock: Clock, address: str) -> tuple[str, WebClient]:
    """A new account with the second factor turned on at the clock's step; its secret and session."""
    srv.add_user(address, PASSWORD)
    c = WebClient.https(srv)
    c.login(address, PASSWORD)
    secret, enrol = setup_form(c)
    r = c.post("/settings/totp", {"action": "enable", "enrol": enrol, "code": clock.code(secret)})
    assert r.status == 303 and srv.account(address).totp_secret == secret
    return secret, c


def pending(srv: WebHarness, address: str) -> WebClient:
    """A browser that gave the right password and is asked for the code."""
    c = WebClient.https(srv)
    c.get("/login")
    r = c.post("/login", {"username": address, "password": PASSWORD, "next": "/settings/"})
    assert r.status == 303 and r.location == "/totp?next=/settings/", (r.status, r.location)
    c.get(r.location)
    return c


def answer(c: WebClient, code: str) -> Response:
    return c.post("/totp", {"code": code, "next": "/settings/"})


def logged_in(c: WebClient) -> bool:
    return c.get("/settings/").status == 200


def user_failures(srv: WebHarness, address: str) -> int:
    auth = srv.server.ctx.auth
    return int(srv.call(auth.failures.counts("127.0.0.1", address)).user)


def test_same_code_twice_second_refused(srv: WebHarness, clock: Clock) -> None:
    address = "replay@example.test"
    secret, _ = enrolled(srv, clock, address)
    clock.tick()
    code = clock.code(secret)
    first = pending(srv, address)
    r = answer(first, code)
    assert r.status == 303 and r.location == "/settings/" and logged_in(first)
    line = [c for c in r.set_cookies if c.startswith("postroom_session=")][-1]
    flags = {f.strip().lower() for f in line.split(";")[1:]}
    assert {"httponly", "samesite=strict", "secure"} <= flags  # the full session's cookie too

    # The same code, seen by someone else who knows the password: refused, and counted.
    before = user_failures(srv, address)
    thief = pending(srv, address)
    r = answer(thief, code)
    assert r.status == 403 and "used already" in r.text
    assert not logged_in(thief) and user_failures(srv, address) == before + 1
    # The previous step's code is still inside the clock-skew window but older than the used one.
    assert answer(thief, clock.code(secret, -1)).status == 403
    # The next code works (the pending session is still good for it), and only once.
    clock.tick()
    assert answer(thief, clock.code(secret)).status == 303 and logged_in(thief)
    assert answer(pending(srv, address), clock.code(secret)).status == 403


def test_code_one_step_ahead_uses_up_the_current_one(srv: WebHarness, clock: Clock) -> None:
    """A phone clock 30 s fast gives next step's code; once it is used, this step's is stale."""
    address = "ahead@example.test"
    secret, _ = enrolled(srv, clock, address)
    clock.tick()
    assert answer(pending(srv, address), clock.code(secret, +1)).status == 303
    assert answer(pending(srv, address), clock.code(secret)).status == 403
    clock.tick(2)
    assert answer(pending(srv, address), clock.code(secret)).status == 303


def test_concurrent_requests_with_one_code_exactly_one_wins(srv: WebHarness, clock: Clock) -> None:
    address = "race@example.test"
    secret, _ = enrolled(srv, clock, address)
    clock.tick()
    code = clock.code(secret)
    browsers = [pending(srv, address) for _ in range(6)]
    start = threading.Barrier(len(browsers))
    results: list[int] = []
    lock = threading.Lock()

    def go(c: WebClient) -> None:
        start.wait(timeout=30)
        status = answer(c, code).status
        with lock:
            results.append(status)

    threads = [threading.Thread(target=go, args=(c,)) for c in browsers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(results) == [303] + [403] * (len(browsers) - 1), results
    assert sum(logged_in(c) for c in browsers) == 1
    account = srv.account(address)
    # The step is spent in the store: a further claim of it (any worker, any node) fails.
    assert not srv.call(srv.store.claim_totp_step(account.id, secret, clock.step))
    assert srv.call(srv.store.claim_totp_step(account.id, secret, clock.step + 1))


def test_enrolment_uses_up_its_code(srv: WebHarness, clock: Clock) -> None:
    address = "enrol@example.test"
    secret, _ = enrolled(srv, clock, address)
    # The code that turned the factor on does not log in (it may have been seen while typed).
    c = pending(srv, address)
    assert answer(c, clock.code(secret)).status == 403
    clock.tick()
    assert answer(c, clock.code(secret)).status == 303


def test_enrolment_ends_sessions_opened_with_the_password_alone(srv: WebHarness, clock: Clock) -> None:
    address = "before@example.test"
    srv.add_user(address, PASSWORD)
    intruder = WebClient.https(srv)
    intruder.login(address, PASSWORD)  # e.g. with a stolen password, before the owner turns TOTP on
    epoch = srv.account(address).session_epoch
    c = WebClient.https(srv)
    c.login(address, PASSWORD)
    secret, enrol = setup_form(c)
    r = c.post("/settings/totp", {"action": "enable", "enrol": enrol, "code": clock.code(secret)})
    assert r.status == 303 and srv.account(address).session_epoch == epoch + 1
    assert not logged_in(intruder)
    assert logged_in(c) and "is <strong>on</strong>" in c.get("/settings/totp").text  # this browser stays in


def test_enrolling_twice_keeps_the_first_secret(srv: WebHarness, clock: Clock) -> None:
    """Two tabs' setup pages, both confirmed: the second must not replace the first secret."""
    address = "twotabs@example.test"
    srv.add_user(address, PASSWORD)
    c = WebClient.https(srv)
    c.login(address, PASSWORD)
    (first, first_enrol), (second, second_enrol) = setup_form(c), setup_form(c)
    r = c.post("/settings/totp", {"action": "enable", "enrol": first_enrol, "code": clock.code(first)})
    assert r.status == 303 and r.location == "/settings/totp"
    # The other tab's form belongs to the session that enrolling replaced: expired.
    r = c.post("/settings/totp", {"action": "enable", "enrol": second_enrol, "code": clock.code(second)})
    assert r.status == 403 and srv.account(address).totp_secret == first
    c.get("/settings/")  # a fresh page (CSRF token) and the old tab's values: still the first secret
    r = c.post("/settings/totp", {"action": "enable", "enrol": second_enrol, "code": clock.code(second)})
    assert r.status == 303 and srv.account(address).totp_secret == first


def test_turning_it_off_needs_an_unused_code(srv: WebHarness, clock: Clock) -> None:
    address = "off@example.test"
    secret, _ = enrolled(srv, clock, address)
    clock.tick()
    c = pending(srv, address)
    code = clock.code(secret)
    assert answer(c, code).status == 303
    c.get("/settings/totp")
    r = c.post("/settings/totp", {"action": "disable", "code": code})  # the login's code, replayed
    assert r.status == 403 and "used already" in r.text and srv.account(address).totp_secret == secret
    clock.tick()
    r = c.post("/settings/totp", {"action": "disable", "code": clock.code(secret)})
    assert r.status == 303 and srv.account(address).totp_secret is None


def test_totp_attempts_are_throttled_like_passwords(srv: WebHarness, clock: Clock) -> None:
    """Past the IP's failure limit even the right code is refused unchecked (and not spent)."""
    address = "throttle@example.test"
    secret, session = enrolled(srv, clock, address)
    clock.tick()
    c = pending(srv, address)
    before = user_failures(srv, address)
    assert answer(c, "000000" if clock.code(secret) != "000000" else "111111").status == 403
    assert user_failures(srv, address) == before + 1  # a wrong code is a failed login
    auth = srv.server.ctx.auth
    saved = auth.max_failures
    auth.max_failures = int(srv.call(auth.failures.counts("127.0.0.1", None)).ip)
    try:
        r = answer(c, clock.code(secret))
        assert r.status == 429 and "Too many failed logins" in r.text and not logged_in(c)
        session.get("/settings/totp")
        r = session.post("/settings/totp", {"action": "disable", "code": clock.code(secret)})
        assert r.status == 429 and srv.account(address).totp_secret == secret
    finally:
        auth.max_failures = saved
    assert answer(c, clock.code(secret)).status == 303 and logged_in(c)


def test_logging_out_a_half_logged_in_session_ends_its_copies(srv: WebHarness, clock: Clock) -> None:
    """Password given, code not yet, then "Log out": a copy of that cookie cannot finish the login."""
    address = "halfway@example.test"
    secret, _ = enrolled(srv, clock, address)
    clock.tick()
    c = pending(srv, address)
    copy = WebClient.https(srv)
    copy.cookies = dict(c.cookies)
    copy.csrf = c.csrf
    r = c.post("/logout", {})
    assert r.status == 303 and r.location == "/login"
    r = answer(copy, clock.code(secret))
    assert r.status == 303 and r.location == "/login" and not logged_in(copy)
    # and the code was not spent by the refused attempt
    assert answer(pending(srv, address), clock.code(secret)).status == 303
