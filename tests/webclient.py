"""A stdlib HTTP client for the web UI's tests: keeps cookies and the page's CSRF token.

``http.client`` only (no browser, no third-party client), so a test sees exactly what the
server sends: redirects are not followed (a test checks the 303 and its Location), cookies
are kept by name whatever their flags (the flags are the tests' business; ``set_cookies``
holds the raw ``Set-Cookie`` lines of the last response). docs/web-dev.md shows the use.
"""

from __future__ import annotations

import http.client
import json
import re
import ssl
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

_META = re.compile(r'<meta name="csrf-token" content="([^"]*)">')


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes
    set_cookies: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def location(self) -> str | None:
        return self.headers.get("location")


class WebClient:
    def __init__(self, port: int, tls: ssl.SSLContext | None = None, host: str = "127.0.0.1",
                 server_name: str = "mail.example.test") -> None:
        self.port = port
        self.tls = tls
        self.host = host
        self.server_name = server_name
        self.cookies: dict[str, str] = {}
        self.csrf = ""

    @classmethod
    def https(cls, srv: Any) -> WebClient:
        ctx = ssl.create_default_context(cafile=str(srv.cert))
        ctx.check_hostname = False  # tests connect to 127.0.0.1; the certificate names the host name
        return cls(srv.ports["https"], ctx)

    @classmethod
    def http(cls, srv: Any) -> WebClient:
        return cls(srv.ports["http"])

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> Response:
        if self.tls is not None:
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(self.host, self.port, timeout=30,
                                                                           context=self.tls)
        else:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        h = {"Host": self.server_name, **(headers or {})}
        if self.cookies:
            h["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        try:
            conn.request(method, path, body=body, headers=h)
            r = conn.getresponse()
            data = r.read()
            raw = r.getheaders()
        finally:
            conn.close()
        set_cookies = [v for k, v in raw if k.lower() == "set-cookie"]
        for line in set_cookies:
            name, _, rest = line.partition("=")
            value = rest.split(";", 1)[0]
            if value in ("", '""') or "max-age=0" in line.lower():
                self.cookies.pop(name.strip(), None)
            else:
                self.cookies[name.strip()] = value
        resp = Response(r.status, {k.lower(): v for k, v in raw}, data, set_cookies)
        found = _META.search(resp.text) if "text/html" in resp.headers.get("content-type", "") else None
        if found:
            self.csrf = found.group(1)
        return resp

    def get(self, path: str) -> Response:
        return self.request("GET", path)

    def post(self, path: str, fields: dict[str, str], csrf: bool = True) -> Response:
        data = dict(fields)
        if csrf and "csrf" not in data:
            data["csrf"] = self.csrf
        return self.request("POST", path, urlencode(data).encode(),
                            {"Content-Type": "application/x-www-form-urlencoded"})

    def api(self, method: str, path: str, body: Any = None, token: str | None = None,
            csrf: bool = True) -> Response:
        headers: dict[str, str] = {}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        elif csrf and self.csrf:
            headers["X-CSRF-Token"] = self.csrf
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        return self.request(method, path, data, headers)

    def login(self, user: str, password: str, totp: str | None = None) -> Response:
        """Log in (and answer the TOTP step with ``totp``); asserts it worked."""
        self.get("/login")
        r = self.post("/login", {"username": user, "password": password})
        assert r.status == 303, (r.status, r.text[:300])
        if r.location and r.location.startswith("/totp"):
            assert totp is not None, "this account asks for a TOTP code"
            self.get(r.location)
            r = self.post("/totp", {"code": totp})
            assert r.status == 303, (r.status, r.text[:300])
        assert r.location and not r.location.startswith(("/login", "/totp")), r.location
        self.get(r.location)  # the landing page: its CSRF token
        return r

    def logout(self) -> Response:
        return self.post("/logout", {})
