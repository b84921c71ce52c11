"""A real Postroom runtime for the browser tests: the web interface's listeners and the mail
listeners an end-to-end test needs, in a thread (``ThreadedRuntime``).

Listeners: ``https`` (implicit TLS, the web interface's home), ``http`` (plain, on loopback,
where the web interface also answers), ``smtp`` (port-25 role, for deliveries), ``imap``
(STARTTLS, for reading the result as a mail client would). All on ``127.0.0.1:0``.
``extra`` is TOML added to the config (a test's ``[web]``, ``[outbound]``, ``[sieve]`` sections).
"""

from __future__ import annotations

import imaplib
import re
import ssl
import sys
from pathlib import Path
from urllib.parse import quote

from browser import Browser, BrowserError
from webharness import WebHarness

sys.path.append(str(Path(__file__).resolve().parents[3] / "bench"))  # shared with the benches
from postroom_peer import DOMAIN, write_config

HOSTNAME = "mail.example.test"
LISTENERS = {"smtp": "none", "imap": "starttls", "http": "none", "https": "implicit"}


def write_web_config(d: Path, extra: str = "") -> Path:
    listeners = "".join(f'[listeners.{name}]\naddress = "127.0.0.1:0"\ntls = "{tls}"\n'
                        for name, tls in LISTENERS.items())
    # Deliveries here are test data: no SPF/DKIM lookups; many failed logins are on purpose.
    sections = ("[limits]\nauth_failures_per_ip = 1000\n[mailauth]\ncheck_listeners = []\n"
                + (extra + "\n" if extra else "") + listeners)
    return write_config(d, sections, hostname=HOSTNAME)


class WebServer(WebHarness):
    """web-core's harness (webharness.py: accounts, API tokens) with this module's listeners
    and the clients an end-to-end test needs."""

    def url(self, path: str = "/", tls: bool = True) -> str:
        """``path`` on the https listener (or the plain http one, which serves loopback only)."""
        if tls:
            return f"https://127.0.0.1:{self.ports['https']}{path}"
        return f"http://127.0.0.1:{self.ports['http']}{path}"

    def tls(self) -> ssl.SSLContext:
        """A client context that trusts the server's self-signed certificate and nothing else."""
        ctx = ssl.create_default_context(cafile=str(self.cert))
        ctx.check_hostname = False  # tests connect to 127.0.0.1; the certificate names HOSTNAME
        return ctx

    def add_user(self, address: str, password: str, admin: bool = False) -> None:
        """An account (and its domain, when the store lacks it), an admin when ``admin``."""
        domain = address.rpartition("@")[2]

        async def add_domain() -> None:
            if not await self.store.has_domain(domain):
                await self.store.add_domain(domain)
        self.call(add_domain())
        super().add_user(address, password, admin)

    def web_mounted(self) -> bool:
        """Whether this build serves the web interface (``/login`` on the loopback listener)."""
        import http.client

        c = http.client.HTTPConnection("127.0.0.1", self.ports["http"], timeout=10)
        try:
            c.request("GET", "/login")
            return c.getresponse().status == 200
        finally:
            c.close()

    def imap(self, user: str, password: str) -> imaplib.IMAP4:
        """An imaplib client, STARTTLS done and logged in."""
        c = imaplib.IMAP4("127.0.0.1", self.ports["imap"], timeout=30)
        c.starttls(self.tls())
        c.login(user, password)
        return c




def log_in(b: Browser, srv: WebServer, user: str, password: str) -> None:
    """Sign in through ``/login`` in the browser. The fields are found by type (the address
    field, the password field) and the form sent with its submit button, so these tests do
    not depend on the login page's wording (its own tests, test_web_core.py, check that)."""
    b.trust(srv.cert)
    b.get(srv.url("/login"))
    form = b.d.find_element("css selector", "form:has(input[type=password])")
    name = form.find_element("css selector", "input[type=email], input[type=text], input:not([type])")
    name.clear()
    name.send_keys(user)
    form.find_element("css selector", "input[type=password]").send_keys(password)
    submit = form.find_element("css selector", "button[type=submit], button:not([type]), input[type=submit]")
    b._navigating(submit.click)
    if b.path.startswith("/login"):
        raise BrowserError(f"login as {user} failed: {b.text()[:300]!r}")


def _canonical(template: str) -> str:
    """aiohttp's canonical form of a path: parameters without their patterns."""
    return re.sub(r"\{(\w+):[^{}]*(?:\{[^{}]*\}[^{}]*)*\}", r"{\1}", template)


def fill_path(template: str, value: str) -> str:
    """``template`` with every parameter set to ``value``, or, where the parameter's pattern
    refuses it, to a number (the router would answer 404 before any handler ran)."""
    def one(m: re.Match[str]) -> str:
        pattern = m.group(2)
        if pattern is None or re.fullmatch(pattern, value):
            return quote(value, safe="@")
        return next(v for v in ("0", "1", "x") if re.fullmatch(pattern, v))
    return re.sub(r"\{(\w+)(?::([^{}]*(?:\{[^{}]*\}[^{}]*)*))?\}", one, template)


def web_routes(srv: WebServer) -> list[tuple[str, str, str]]:
    """``(method, path template, role)`` of every route the web interface installs on the
    router, the role from the registry (``public``, ``user``, ``admin``; ``unknown`` for a
    route on the router that the registry does not know: it must refuse strangers too).
    Templates keep their parameters' patterns (``/settings/rules/{index:\\d+}``) so that a
    test can fill them with a value the router accepts (:func:`fill_path`)."""
    from aiohttp import web

    from postroom.http.app import build
    from postroom.web.app import SITE

    app = build(srv.server.ctx)
    site = app[SITE]
    registered = [(p.method, p.path, p.role.value) for p in site.pages]
    registered += [(o.method, o.path, o.role.value) for o in site.operations]
    known = {(m, _canonical(p)): (p, role) for m, p, role in registered}
    out = []
    for route in app.router.routes():
        resource = route.resource
        if resource is None or isinstance(resource, web.StaticResource) or route.method == "HEAD":
            continue
        path = resource.canonical
        module = getattr(route.handler, "__module__", "") or ""
        if not module.startswith("postroom.web") or path == "/api/openapi.json":
            continue  # the mail-client documents and probes (docs/http.md), the API's own description
        out.append((route.method, *known.get((route.method, path), (path, "unknown"))))
    assert out, "the router has no web routes"
    return sorted(set(out))


class Session:
    """Plain HTTP requests (stdlib ``http.client``) with a browser's session: its cookies and the
    CSRF token of the page it shows, to try what a browser would not send (forged posts,
    other users' IDs, hostile values) with a real session."""

    def __init__(self, srv: WebServer, b: Browser | None = None, token: str | None = None) -> None:
        self.srv = srv
        self.cookie = "; ".join(f"{c['name']}={c['value']}" for c in b.d.get_cookies()) if b else ""
        self.csrf = ""
        if b is not None:
            metas = b.d.find_elements("css selector", 'meta[name="csrf-token"]')
            self.csrf = metas[0].get_attribute("content") if metas else ""
        self.token = token

    def request(self, method: str, path: str, body: bytes | None = None, content_type: str | None = None,
                csrf: bool = True, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        import http.client

        h = {"Host": HOSTNAME, **(headers or {})}
        if self.cookie:
            h["Cookie"] = self.cookie
        if self.token:
            h["Authorization"] = f"Bearer {self.token}"
        if csrf and self.csrf and method not in ("GET", "HEAD"):
            h["X-CSRF-Token"] = self.csrf
        if content_type:
            h["Content-Type"] = content_type
        c = http.client.HTTPSConnection("127.0.0.1", self.srv.ports["https"], timeout=30, context=self.srv.tls())
        try:
            c.request(method, path, body=body, headers=h)
            r = c.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        finally:
            c.close()

    def form(self, path: str, fields: dict[str, str], csrf: bool = True) -> tuple[int, dict[str, str], bytes]:
        """A urlencoded POST, with the ``csrf`` field when ``csrf``."""
        from urllib.parse import urlencode

        if csrf and self.csrf:
            fields = {**fields, "csrf": self.csrf}
        return self.request("POST", path, urlencode(fields).encode(), "application/x-www-form-urlencoded",
                            csrf=False)


__all__ = ["DOMAIN", "HOSTNAME", "Session", "WebServer", "fill_path", "log_in", "web_routes", "write_web_config"]
