"""The browser test infrastructure (tests/browser.py) against what the HTTP listeners serve
without the web interface: a real Chromium loads pages over plain HTTP and over TLS with the
server's self-signed certificate (trusted by its key pin, not by ignoring all errors), and
every page lands as a screenshot in the artefacts directory."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
from browser import Browser, BrowserError, artifacts_root, browser_fixture
from browser_server import DOMAIN, HOSTNAME, WebServer, write_web_config

browser = browser_fixture("browser")
phone = browser_fixture("phone", size="phone")


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebServer]:
    pytest.importorskip("aiohttp")
    with closing(WebServer(write_web_config(tmp_path_factory.mktemp("browsersrv")))) as h:
        yield h


def pngs(b: Browser) -> list[Path]:
    return sorted(b.shots.glob("*.png"))


def test_plain_http_page_screenshot(browser: Browser, srv: WebServer) -> None:
    before = len(pngs(browser))
    browser.get(srv.url("/healthz", tls=False))
    assert browser.text().strip() == "ok"
    shots = pngs(browser)
    assert len(shots) == before + 1
    png = shots[-1]
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n") and png.stat().st_size > 100
    assert png.with_suffix(".html").read_text().count("ok") >= 1
    assert png.is_relative_to(artifacts_root() / "test_browser_smoke" / "desktop")
    assert "healthz" in png.name and "test-plain-http-page-screenshot" in png.name


def test_https_with_pinned_self_signed_cert(browser: Browser, srv: WebServer) -> None:
    # Without the pin Chromium shows its interstitial instead of the document.
    browser.quit()
    b_untrusted = browser.get(srv.url(f"/mail/config-v1.1.xml?emailaddress=a%40{DOMAIN}"))
    assert "emailProvider" not in b_untrusted.source()
    browser.trust(srv.cert)
    browser.get(srv.url(f"/mail/config-v1.1.xml?emailaddress=a%40{DOMAIN}"))
    src = browser.source()
    assert "emailProvider" in src and HOSTNAME in src
    assert browser.url.startswith("https://")


def test_cookies_cleared_between_tests(browser: Browser, srv: WebServer) -> None:
    browser.trust(srv.cert)
    browser.get(srv.url("/healthz"))
    assert browser.cookies() == {}


def test_missing_label_is_reported_with_what_the_page_has(browser: Browser, srv: WebServer) -> None:
    browser.trust(srv.cert)
    browser.get(srv.url("/healthz"))
    # A page built in the browser: a labelled field, an aria-labelled one, a button and a link.
    browser.d.execute_script("""document.body.innerHTML =
        '<form action="/healthz" method="get"><label for=u>User name *</label><input id=u name=u>'
        + '<input name=p type=password aria-label="Password">'
        + '<label><input type=checkbox name=c> Remember me</label>'
        + '<button type=submit>Log in</button></form><a href="/readyz">Ready?</a>'""")
    browser.fill("user name", "alice@example.test").fill("Password", "secret").fill("Remember me", True)
    assert browser.field("User name").get_attribute("value") == "alice@example.test"
    assert browser.field("Remember me").is_selected()
    with pytest.raises(BrowserError, match=r"no form field labelled 'Email'.*User name"):
        browser.field("Email")
    with pytest.raises(BrowserError, match=r"no button or link named 'Sign in'.*Log in"):
        browser.button("Sign in")
    browser.click("Log in")  # a GET form: navigates to /healthz?u=...
    assert browser.path.startswith("/healthz?u=alice%40example.test")
    assert browser.visited[-1] == browser.url
    browser.get(srv.url("/healthz"))
    browser.d.execute_script("document.body.innerHTML = '<a href=\"/readyz\">Ready?</a>'")
    browser.click("Ready?")
    assert browser.path == "/readyz"


def test_phone_size(phone: Browser, srv: WebServer) -> None:
    phone.trust(srv.cert)
    phone.get(srv.url("/healthz"))
    # A plain-text page has no <meta name=viewport>, so its layout is the 980px desktop fallback
    # phones use; the device itself is phone-sized and touch.
    assert phone.d.execute_script("return [screen.width, navigator.maxTouchPoints > 0]") == [390, True]
    assert "phone" in str(phone.shots)
    assert pngs(phone)
