"""Outlook's POX Autodiscover over real HTTPS: a request as Outlook sends it, and the
hostile ones (malformed XML, entity bombs, external entities, oversized and slow bodies)."""

from __future__ import annotations

import time
from xml.etree import ElementTree as ET

import pytest
from http_harness import DOMAIN, HOSTNAME, Harness, read_all

PATH = "/autodiscover/autodiscover.xml"
REQ_NS = "http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006"
RESP_NS = "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006"
OUTLOOK_NS = "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"
# What Outlook (Microsoft 365, desktop) sends.
OUTLOOK_HEADERS = {"Content-Type": "text/xml", "User-Agent": "Microsoft Office/16.0 (Windows NT 10.0; "
                   "Microsoft Outlook 16.0.17928; Pro)", "X-MapiHttpCapability": "1", "X-AnchorMailbox": ""}


def outlook_request(address: str, schema: str = OUTLOOK_NS) -> bytes:
    return f"""<?xml version="1.0" encoding="utf-8"?>
<Autodiscover xmlns="{REQ_NS}">
  <Request>
    <EMailAddress>{address}</EMailAddress>
    <AcceptableResponseSchema>{schema}</AcceptableResponseSchema>
  </Request>
</Autodiscover>""".encode()


def post(srv: Harness, body: bytes, host: str = f"autodiscover.{DOMAIN}", path: str = PATH,
         tls: bool = True) -> tuple[int, dict[str, str], bytes]:
    headers = dict(OUTLOOK_HEADERS, **{"X-AnchorMailbox": "joe@" + DOMAIN})
    return srv.get(path, host, tls=tls, method="POST", body=body, headers=headers)


def protocols(doc: bytes) -> list[dict[str, str]]:
    root = ET.fromstring(doc)
    assert root.tag == f"{{{RESP_NS}}}Autodiscover"
    resp = root.find(f"{{{OUTLOOK_NS}}}Response")
    assert resp is not None
    account = resp.find(f"{{{OUTLOOK_NS}}}Account")
    assert account is not None
    assert account.findtext(f"{{{OUTLOOK_NS}}}AccountType") == "email"
    assert account.findtext(f"{{{OUTLOOK_NS}}}Action") == "settings"
    return [{el.tag.split("}")[1]: el.text or "" for el in p} for p in account.findall(f"{{{OUTLOOK_NS}}}Protocol")]


@pytest.mark.parametrize("path", [PATH, "/Autodiscover/Autodiscover.xml"])
def test_outlook_post(srv: Harness, path: str) -> None:
    status, headers, body = post(srv, outlook_request(f"joe@{DOMAIN}"), path=path)
    assert status == 200 and headers["content-type"].startswith("text/xml")
    got = [(p["Type"], p["Server"], int(p["Port"]), p["SSL"], p["Encryption"], p["LoginName"]) for p in protocols(body)]
    ports = srv.ports
    addr = f"joe@{DOMAIN}"
    assert got == [("IMAP", HOSTNAME, ports["imaps"], "on", "SSL", addr),
                   ("IMAP", HOSTNAME, ports["imap"], "on", "TLS", addr),
                   ("POP3", HOSTNAME, ports["pop3s"], "on", "SSL", addr),
                   ("SMTP", HOSTNAME, ports["submissions"], "on", "SSL", addr),
                   ("SMTP", HOSTNAME, ports["submission"], "on", "TLS", addr)]
    assert all(p["AuthRequired"] == "on" and p["SPA"] == "off" for p in protocols(body))


def test_on_the_domain_itself_and_over_http(srv: Harness) -> None:
    status, _, body = post(srv, outlook_request(f"joe@{DOMAIN}"), host=DOMAIN, tls=False)
    assert status == 200 and len(protocols(body)) == 5


def test_get_with_query(srv: Harness) -> None:
    status, _, body = srv.get(f"{PATH}?email=joe@{DOMAIN}", f"autodiscover.{DOMAIN}", tls=True)
    assert status == 200 and protocols(body)[0]["LoginName"] == f"joe@{DOMAIN}"
    status, _, body = srv.get(PATH, f"autodiscover.{DOMAIN}", tls=True)  # no address: no LoginName
    assert status == 200 and all("LoginName" not in p for p in protocols(body))


def test_unserved_domain_is_404(srv: Harness) -> None:
    nothing = srv.get("/nothing", DOMAIN)
    status, _, body = post(srv, outlook_request("joe@elsewhere.test"))
    assert (status, body) == (404, nothing[2])


def test_other_schema_gets_pox_error_601(srv: Harness) -> None:
    body = outlook_request(f"joe@{DOMAIN}",
                           "http://schemas.microsoft.com/exchange/autodiscover/mobilesync/responseschema/2006")
    status, _, doc = post(srv, body)
    assert status == 200
    assert ET.fromstring(doc).findtext(f".//{{{RESP_NS}}}ErrorCode") == "601"


BOMB = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
<!ENTITY lol9 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">]>
<Autodiscover><Request><EMailAddress>&lol9;</EMailAddress></Request></Autodiscover>"""
EXTERNAL = b"""<?xml version="1.0"?>
<!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]>
<Autodiscover><Request><EMailAddress>&x;</EMailAddress></Request></Autodiscover>"""


@pytest.mark.parametrize("body", [
    b"<Autodiscover><Request><EMailAddress>joe@example.test",  # truncated
    b"not xml at all",
    b"",
    b"<Other/>",
    b"<Autodiscover/>",
    b"<Autodiscover><Request/></Autodiscover>",
    BOMB,
    EXTERNAL,
], ids=["truncated", "text", "empty", "other-root", "no-request", "no-address", "billion-laughs", "external-entity"])
def test_bad_xml_is_400_with_pox_error(srv: Harness, body: bytes) -> None:
    t0 = time.monotonic()
    status, headers, doc = post(srv, body)
    assert status == 400 and headers["content-type"].startswith("text/xml")
    assert ET.fromstring(doc).findtext(f".//{{{RESP_NS}}}ErrorCode") == "600"
    assert b"root:" not in doc and b"lollol" not in doc and b"Traceback" not in doc
    assert time.monotonic() - t0 < 2


def test_oversized_body_is_413(srv: Harness) -> None:
    big = outlook_request(f"joe@{DOMAIN}") + b" " * 8192  # the module's max_body is 4k
    status, _, body = post(srv, big)
    assert status == 413 and b"4096" in body


def test_oversized_chunked_body_is_413(srv: Harness) -> None:
    s = srv.raw(tls=True)
    chunk = b"x" * 3000
    s.sendall(b"POST " + PATH.encode() + b" HTTP/1.1\r\nHost: autodiscover.example.test\r\n"
              b"Transfer-Encoding: chunked\r\nContent-Type: text/xml\r\n\r\n"
              + (b"%x\r\n" % len(chunk) + chunk + b"\r\n") * 3 + b"0\r\n\r\n")
    assert read_all(s).startswith(b"HTTP/1.1 413 ")
    s.close()


def test_slow_body_is_408(srv: Harness) -> None:
    """A body that does not arrive within request_timeout (1s here): 408, connection closed."""
    s = srv.raw()
    s.sendall(b"POST " + PATH.encode() + b" HTTP/1.1\r\nHost: autodiscover.example.test\r\n"
              b"Content-Type: text/xml\r\nContent-Length: 500\r\n\r\n<Autodiscover>")
    t0 = time.monotonic()
    reply = read_all(s, limit=10)
    assert reply.startswith(b"HTTP/1.1 408 "), reply[:200]
    assert 0.8 < time.monotonic() - t0 < 5
    s.close()
