"""A real browser for the web interface's tests: headless Chromium driven by Selenium.

Why a real browser and not an HTTP client: the web pages are judged by what a person gets,
which is forms found by their labels, buttons by their accessible names, cookies kept and sent
the way a browser does (``SameSite=Strict``, ``Secure``), redirects followed, and pages that
render on a phone. The helpers therefore find fields and buttons the way assistive
technology does (Chromium's computed accessible name, via WebDriver's "Get Computed Label"),
so a page whose input has no label fails its test.

Every page the browser lands on is saved as a full-page PNG screenshot (and its HTML) under
the artefacts directory: ``$POSTROOM_TEST_ARTIFACTS/web/`` when that variable is set, else
``tests/artifacts/web/`` (git-ignored), one subdirectory per test module and window size,
files numbered in the order visited. ``docs/web-dev.md`` ("Browser tests") says the same.

Requirements: Debian's ``chromium`` and ``chromium-driver`` (scripts/install-test-deps.sh) and
``selenium`` (the ``test`` extra). Without them the tests skip with the reason, unless
``POSTROOM_TEST_REQUIRE_BROWSER=1`` turns the skip into a failure (as for PostgreSQL).

Use in a test module::

    from browser import browser_fixture

    browser = browser_fixture("browser")                 # desktop, 1280x900
    phone = browser_fixture("phone", size="phone")       # 390x844, touch, mobile viewport

    def test_x(browser, srv):
        browser.trust(srv.cert)            # accept this server's self-signed certificate only
        browser.get(srv.url("/login"))
        browser.fill("Username", "admin@example.test")
        browser.click("Log in")            # waits for the next page and screenshots it

The driver is started once per module (Chromium takes a second or two to start on a busy
machine); each test gets it with cookies and storage cleared.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

ARTIFACTS_ENV = "POSTROOM_TEST_ARTIFACTS"
REQUIRE_ENV = "POSTROOM_TEST_REQUIRE_BROWSER"
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
CHROMEDRIVER_PATHS = ("/usr/bin/chromedriver",)
# What Chromium says when a command meets a document being replaced by the next one.
MID_NAVIGATION = ("does not belong to the document", "document unloaded", "Execution context was destroyed",
                  "Cannot find context with specified id")
# Controls a form field can be; buttons and links a click can mean.
FIELD_CSS = "input:not([type=hidden]):not([type=submit]):not([type=button]):not([type=reset]), select, textarea"
CLICKABLE_CSS = ("button, input[type=submit], input[type=button], input[type=reset], a[href], "
                 "[role=button], [role=link], [role=menuitem], [role=tab], summary")


@dataclass(frozen=True, slots=True)
class Size:
    """A window: desktop, or a phone emulated with touch and a mobile viewport."""

    name: str
    width: int
    height: int
    mobile: bool = False


SIZES = {
    "desktop": Size("desktop", 1280, 900),
    "phone": Size("phone", 390, 844, mobile=True),
}


def artifacts_root() -> Path:
    """Where screenshots go: ``$POSTROOM_TEST_ARTIFACTS/web`` or ``tests/artifacts/web``."""
    env = os.environ.get(ARTIFACTS_ENV)
    base = Path(env) if env else Path(__file__).resolve().parent / "artifacts"
    return base / "web"


def find_chromium() -> tuple[str, str] | None:
    """The Chromium binary and its chromedriver, or None when either is missing."""
    binary = next((p for n in CHROMIUM_NAMES if (p := shutil.which(n))), None)
    driver = next((p for p in CHROMEDRIVER_PATHS if os.access(p, os.X_OK)), None) or shutil.which("chromedriver")
    if binary is None or driver is None:
        return None
    return binary, driver


def skip_without_browser() -> tuple[str, str]:
    """Skip (or fail, under ``POSTROOM_TEST_REQUIRE_BROWSER=1``) without selenium or Chromium."""
    found = find_chromium()
    reason = None
    try:
        import selenium  # noqa: F401
    except ImportError:
        reason = "selenium is not installed (pip install -e '.[test]')"
    if reason is None and found is None:
        reason = "chromium and chromium-driver are not installed (scripts/install-test-deps.sh installs them)"
    if reason is not None:
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    assert found is not None
    return found


def spki_sha256(cert_pem: Path) -> str:
    """Base64 SHA-256 of a certificate's SubjectPublicKeyInfo: what Chromium's
    ``--ignore-certificate-errors-spki-list`` takes, so that only the test server's own
    self-signed certificate is accepted, never an arbitrary one."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    cert = x509.load_pem_x509_certificate(cert_pem.read_bytes())
    spki = cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


def slug(text: str, limit: int = 60) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-")[:limit] or "root"


def norm(text: str | None) -> str:
    """Accessible names compared the way a person reads them: case and spacing ignored, and a
    trailing ``*``/``:`` (required markers, label punctuation) dropped."""
    return re.sub(r"\s+", " ", text or "").strip().rstrip("*:").strip().casefold()


class BrowserError(AssertionError):
    """A page did not have what the test looked for; the message lists what it did have."""


class Browser:
    """One headless Chromium. Call :meth:`trust` before visiting an https test server."""

    def __init__(self, shots: Path, size: Size = SIZES["desktop"], timeout: float = 15) -> None:
        binary, driver_path = skip_without_browser()
        self.shots = shots
        self.size = size
        self.timeout = timeout
        self.test = "setup"
        self.visited: list[str] = []  # every URL a screenshot was taken of, in order
        self._count = 0
        self._trusted: list[str] = []
        self._profile = tempfile.mkdtemp(prefix="postroom-chromium-")
        self._binary = binary
        self._driver_path = driver_path
        self.driver: Any = None
        shutil.rmtree(shots, ignore_errors=True)  # a module's shots are those of its last run
        shots.mkdir(parents=True, exist_ok=True)

    # -- lifecycle -------------------------------------------------------------------------

    def trust(self, cert_pem: Path) -> None:
        """Accept the self-signed certificate ``cert_pem`` (the test server's) over TLS. Chromium
        reads the list at start, so a change restarts the driver (cookies are lost)."""
        pin = spki_sha256(cert_pem)
        if pin in self._trusted:
            return
        self._trusted.append(pin)
        self.quit()

    def _start(self) -> Any:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        opts = webdriver.ChromeOptions()
        opts.binary_location = self._binary
        for arg in ("--headless=new", f"--user-data-dir={self._profile}", "--disable-gpu",
                    "--disable-dev-shm-usage", "--no-first-run", "--no-default-browser-check",
                    "--disable-extensions", "--disable-sync", "--disable-background-networking",
                    "--disable-component-update", "--disable-default-apps", "--no-proxy-server",
                    "--password-store=basic", "--lang=en-US",
                    f"--window-size={self.size.width},{self.size.height}"):
            opts.add_argument(arg)
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            opts.add_argument("--no-sandbox")  # Chromium refuses to start as root with its sandbox
        if self._trusted:
            opts.add_argument("--ignore-certificate-errors-spki-list=" + ",".join(self._trusted))
        if self.size.mobile:
            opts.add_experimental_option("mobileEmulation", {"deviceMetrics": {
                "width": self.size.width, "height": self.size.height, "pixelRatio": 2.0, "touch": True}})
        opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        # No password manager bubbles or "save card" prompts over the forms under test.
        opts.add_experimental_option("prefs", {"credentials_enable_service": False,
                                               "profile.password_manager_enabled": False})
        log = self.shots / "chromedriver.log"
        driver = webdriver.Chrome(options=opts, service=Service(self._driver_path, log_output=str(log)))
        driver.set_page_load_timeout(self.timeout * 2)
        return driver

    @property
    def d(self) -> Any:
        """The Selenium WebDriver, started on first use."""
        if self.driver is None:
            self.driver = self._start()
        return self.driver

    def reset(self) -> None:
        """Forget every cookie and all storage: the next test starts logged out."""
        if self.driver is None:
            return
        self.d.execute_cdp_cmd("Network.clearBrowserCookies", {})
        self.d.execute_cdp_cmd("Storage.clearDataForOrigin", {"origin": "*", "storageTypes": "all"})
        self.d.get("about:blank")

    def quit(self) -> None:
        if self.driver is not None:
            try:
                self.driver.quit()
            finally:
                self.driver = None

    def close(self) -> None:
        self.quit()
        shutil.rmtree(self._profile, ignore_errors=True)

    # -- navigation --------------------------------------------------------------------------

    def get(self, url: str) -> Browser:
        """Load ``url``, wait until it has loaded, and screenshot it."""
        self.d.get(url)
        self._loaded()
        self.shot()
        return self

    @property
    def url(self) -> str:
        return str(self.d.current_url)

    @property
    def path(self) -> str:
        """The current URL's path (and query), for assertions that ignore the port."""
        u = urlsplit(self.url)
        return u.path + (f"?{u.query}" if u.query else "")

    @property
    def title(self) -> str:
        return str(self.d.title)

    def text(self) -> str:
        """The page's visible text."""
        return str(self.d.find_element("tag name", "body").text)

    def source(self) -> str:
        return str(self.d.page_source)

    def _loaded(self) -> None:
        self.wait(lambda: self.d.execute_script("return document.readyState") == "complete", "the page to load")

    def wait(self, cond: Callable[[], Any], what: str, timeout: float | None = None) -> Any:
        """Poll ``cond`` until it is truthy; fail naming ``what`` after ``timeout`` seconds."""
        from selenium.common.exceptions import (
            NoSuchElementException,
            StaleElementReferenceException,
            WebDriverException,
        )

        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            try:
                if result := cond():
                    return result
            except (StaleElementReferenceException, NoSuchElementException):
                pass  # mid-navigation: the old page's elements are gone, the new one's not there yet
            except WebDriverException as exc:  # the same, in Chromium's words for a document being swapped
                if not any(m in str(exc) for m in MID_NAVIGATION):
                    raise
            if time.monotonic() > deadline:
                self.shot("timeout")
                raise BrowserError(f"timed out after {timeout or self.timeout}s waiting for {what} on {self.url}")
            time.sleep(0.05)

    def wait_for_text(self, text: str, timeout: float | None = None) -> None:
        self.wait(lambda: text in self.text(), f"text {text!r}", timeout)

    def wait_for_path(self, prefix: str, timeout: float | None = None) -> None:
        self.wait(lambda: self.path.startswith(prefix), f"a page under {prefix!r}", timeout)

    def _navigating(self, action: Callable[[], None]) -> None:
        """Run ``action`` (a click or submit) and wait for the page it leads to: the old
        document's root goes stale once the new one has replaced it."""
        from selenium.common.exceptions import (
            StaleElementReferenceException,
            WebDriverException,
        )

        old = self.d.find_element("tag name", "html")
        action()

        def replaced() -> bool:
            try:
                old.is_enabled()
                return False
            except StaleElementReferenceException:
                return True
            except WebDriverException as exc:  # mid-swap Chromium may say this instead of "stale"
                if any(m in str(exc) for m in MID_NAVIGATION):
                    return True
                raise
        self.wait(replaced, "the next page")
        self._loaded()
        self.shot()

    # -- finding things the way a person does ------------------------------------------------

    def field(self, label: str, nth: int = 0) -> Any:
        """The form control whose accessible name (its ``<label>``, ``aria-label`` or
        ``aria-labelledby``) is ``label``; ``nth`` counts from 0 in page order, for forms with
        repeated rows (a rule's conditions and actions)."""
        want = norm(label)
        names, found = [], []
        for el in self.d.find_elements("css selector", FIELD_CSS):
            if not el.is_displayed() and el.get_attribute("type") not in ("checkbox", "radio"):
                continue
            name = el.accessible_name
            if norm(name) == want:
                found.append(el)
                if len(found) > nth:
                    return el
            names.append(name)
        raise BrowserError(f"no form field labelled {label!r} (number {nth + 1}) on {self.path}; fields: {names}")

    def button(self, name: str) -> Any:
        """The visible button or link whose accessible name is ``name``."""
        want = norm(name)
        names = []
        for el in self.d.find_elements("css selector", CLICKABLE_CSS):
            if not el.is_displayed():
                continue
            accessible = el.accessible_name
            if norm(accessible) == want:
                return el
            names.append(accessible)
        raise BrowserError(f"no button or link named {name!r} on {self.path}; there are: {names}")

    def fill(self, label: str, value: str | bool, nth: int = 0) -> Browser:
        """Set the field labelled ``label`` (the ``nth`` so labelled): text typed in (replacing
        what was there), a select's option chosen by its visible text, a checkbox or radio set
        to ``value`` (a bool)."""
        el = self.field(label, nth)
        tag, kind = el.tag_name.lower(), (el.get_attribute("type") or "").lower()
        if tag == "select":
            from selenium.webdriver.support.select import Select

            Select(el).select_by_visible_text(str(value))
        elif kind in ("checkbox", "radio"):
            if bool(value) != el.is_selected():
                self.d.execute_script("arguments[0].click()", el)  # also when styled out of view
        else:
            el.clear()
            # Long values through the DOM (send_keys types one key at a time); then an input
            # event, so scripts watching the field see the change.
            if isinstance(value, str) and len(value) > 2000:
                self.d.execute_script("arguments[0].value = arguments[1];"
                                      "arguments[0].dispatchEvent(new Event('input', {bubbles: true}))",
                                      el, value)
            else:
                el.send_keys(str(value))
        return self

    def fill_form(self, values: dict[str, str | bool]) -> Browser:
        for label, value in values.items():
            self.fill(label, value)
        return self

    def click(self, name: str, navigates: bool = True) -> Browser:
        """Click the button or link named ``name``; by default wait for the page it leads to and
        screenshot it (``navigates=False`` for in-page controls)."""
        el = self.button(name)
        self.d.execute_script("arguments[0].scrollIntoView({block: 'center'})", el)
        if navigates:
            self._navigating(el.click)
        else:
            el.click()
        return self

    def select_value(self, label: str) -> str:
        """The current value of the field labelled ``label``."""
        return str(self.field(label).get_attribute("value"))

    # -- evidence -----------------------------------------------------------------------------

    def shot(self, note: str = "") -> Path:
        """Save the whole page (beyond the viewport) as PNG, and its HTML beside it."""
        self._count += 1
        u = urlsplit(self.url)
        stem = f"{self._count:03d}-{slug(self.test, 40)}-{slug(u.path)}" + (f"-{slug(note)}" if note else "")
        png = self.shots / f"{stem}.png"
        from selenium.common.exceptions import WebDriverException

        try:
            metrics = self.d.execute_cdp_cmd("Page.getLayoutMetrics", {})
            content = metrics.get("cssContentSize") or metrics["contentSize"]
            width = max(int(content["width"]), 1)
            height = min(max(int(content["height"]), 1), 16384)  # Chromium's texture limit
            data = self.d.execute_cdp_cmd("Page.captureScreenshot", {
                "format": "png", "captureBeyondViewport": True,
                "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1}})
            png.write_bytes(base64.b64decode(data["data"]))
        except WebDriverException:  # an error page without layout metrics: the viewport will do
            self.d.save_screenshot(str(png))
        png.with_suffix(".html").write_text(self.d.page_source, encoding="utf-8")
        self.visited.append(self.url)
        return png

    def console_errors(self) -> list[str]:
        """Messages the page logged at SEVERE level (script errors, CSP violations) since the
        last call."""
        return [e["message"] for e in self.d.get_log("browser") if e.get("level") == "SEVERE"]

    def cookies(self) -> dict[str, dict[str, Any]]:
        """The current site's cookies by name, with their flags (``httpOnly``, ``secure``,
        ``sameSite``) as the browser stored them."""
        return {c["name"]: c for c in self.d.get_cookies()}


def browser_fixture(name: str, size: str = "desktop") -> Any:
    """A pytest fixture named ``name``: one Chromium of window ``size`` for the module, cleared
    of cookies before each test, its screenshots under ``<artefacts>/<module>/<size>/``.
    Assign it in the test module (``browser = browser_fixture("browser")``)."""

    browsers: dict[str, Browser] = {}  # module node id -> its browser

    @pytest.fixture(name=name)
    def per_test(request: pytest.FixtureRequest) -> Browser:
        module = request.node.getparent(pytest.Module)
        assert module is not None
        b = browsers.get(module.nodeid)
        if b is None:
            b = browsers[module.nodeid] = Browser(artifacts_root() / Path(str(module.path)).stem / size, SIZES[size])

            def close(b: Browser = b, key: str = module.nodeid) -> None:
                browsers.pop(key, None)
                b.close()
            module.addfinalizer(close)  # one Chromium per module, quit when the module is done
        b.reset()
        b.test = request.node.name
        return b

    return per_test

__all__ = [
    "SIZES",
    "Browser",
    "BrowserError",
    "artifacts_root",
    "browser_fixture",
    "find_chromium",
    "skip_without_browser",
    "spki_sha256",
]
