"""Outlook's JSON Autodiscover ("v2") over real HTTP and HTTPS: where the POX endpoint is for
``Protocol=AutodiscoverV1``, following that Url to the POX answer, Exchange's error JSON for the
protocols Postroom does not serve, and the same 404 as an unknown path for unserved domains."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest
from http_harness import DOMAIN, HOSTNAME, Harness, write_http_config
from test_http_autodiscover import OUTLOOK_HEADERS, outlook_request, protocols

from postroom.config import load
from postroom.http import autodiscover

PATH = "/autodiscover/autodiscover.json"
# What Outlook for iOS/Android and Microsoft 365 apps send before anything else.
OUTLOOK_JSON_HEADERS = {"User-Agent": OUTLOOK_HEADERS["User-Agent"], "Accept": "application/json"}


def ask(srv: Harness, target: str, tls: bool = True,
        host: str = f"autodiscover.{DOMAIN}") -> tuple[int, dict[str, str], bytes]:
    return srv.get(target, host, tls=tls, headers=OUTLOOK_JSON_HEADERS)


def pox_url(srv: Harness) -> str:
    return f"https://{HOSTNAME}:{srv.ports['https']}/autodiscover/autodiscover.xml"


@pytest.mark.parametrize("target", [
    f"{PATH}?Email=joe@{DOMAIN}&Protocol=AutodiscoverV1&RedirectCount=1",
    f"{PATH}?email=joe%40{DOMAIN}&protocol=autodiscoverv1",
    f"{PATH}/v1.0/joe@{DOMAIN}?Protocol=AutodiscoverV1",
    f"{PATH}/v1.0/joe%40{DOMAIN}?Protocol=AutodiscoverV1",
    f"/Autodiscover/Autodiscover.json/v1.0/joe@{DOMAIN}?Protocol=AutodiscoverV1",
], ids=["query", "lower-case", "path", "path-encoded", "capitalised"])
def test_autodiscover_v1_names_the_pox_endpoint(srv: Harness, target: str) -> None:
    status, headers, body = ask(srv, target)
    assert status == 200, body
    assert headers["content-type"].startswith("application/json")
    assert json.loads(body) == {"Protocol": "AutodiscoverV1", "Url": pox_url(srv)}


def test_following_the_url_gets_the_settings(srv: Harness) -> None:
    """What Outlook does next: POST its POX request to the Url it was given."""
    _, _, body = ask(srv, f"{PATH}/v1.0/joe@{DOMAIN}?Protocol=AutodiscoverV1", tls=False)
    url = urlsplit(json.loads(body)["Url"])
    assert url.scheme == "https" and url.hostname == HOSTNAME and url.port == srv.ports["https"]
    status, _, doc = srv.get(url.path, url.hostname, tls=True, method="POST",
                             body=outlook_request(f"joe@{DOMAIN}"), headers=OUTLOOK_HEADERS)
    assert status == 200
    assert (protocols(doc)[0]["Type"], protocols(doc)[0]["Port"]) == ("IMAP", str(srv.ports["imaps"]))


@pytest.mark.parametrize("protocol", ["ActiveSync", "Ews", "Rest", "AutodiscoverV2", "x'\"<b>\\\u00e9" + "y" * 200])
def test_other_protocols_get_invalid_protocol(srv: Harness, protocol: str) -> None:
    status, headers, body = ask(srv, f"{PATH}/v1.0/joe@{DOMAIN}?Protocol={quote(protocol)}")
    assert status == 400 and headers["content-type"].startswith("application/json")
    answer = json.loads(body)
    assert answer["ErrorCode"] == "InvalidProtocol"
    assert "AutodiscoverV1" in answer["ErrorMessage"]
    assert not set(answer["ErrorMessage"]) & set("\"<>\\\u00e9") and len(answer["ErrorMessage"]) < 200


def test_missing_protocol(srv: Harness) -> None:
    status, _, body = ask(srv, f"{PATH}?Email=joe@{DOMAIN}")
    assert status == 400 and json.loads(body)["ErrorCode"] == "MandatoryParameterMissing"


def test_domain_from_host_without_address(srv: Harness) -> None:
    status, _, body = ask(srv, f"{PATH}?Protocol=AutodiscoverV1")
    assert status == 200 and json.loads(body)["Url"] == pox_url(srv)


@pytest.mark.parametrize("target", [
    f"{PATH}?Email=joe@elsewhere.test&Protocol=AutodiscoverV1",
    f"{PATH}/v1.0/joe@elsewhere.test?Protocol=AutodiscoverV1",
    f"{PATH}/v1.0/joe@elsewhere.test?Protocol=ActiveSync",  # the domain is checked first
    f"{PATH}/v1.0/joe@elsewhere.test",
], ids=["query", "path", "other-protocol", "no-protocol"])
def test_unserved_domain_is_the_unknown_path_404(srv: Harness, target: str) -> None:
    nothing = srv.get("/nothing", DOMAIN)
    status, headers, body = ask(srv, target)
    assert (status, body) == (404, nothing[2])
    assert headers["content-type"] == nothing[1]["content-type"]
    status, _, body = ask(srv, f"{PATH}?Protocol=AutodiscoverV1", host="autodiscover.elsewhere.test")
    assert (status, body) == (404, nothing[2])


def test_not_an_address_is_400(srv: Harness) -> None:
    status, _, body = ask(srv, f"{PATH}/v1.0/nonsense?Protocol=AutodiscoverV1")
    assert status == 400 and b"not an e-mail address" in body


def test_post_is_405(srv: Harness) -> None:
    status, _, _ = srv.get(f"{PATH}?Email=joe@{DOMAIN}&Protocol=AutodiscoverV1", f"autodiscover.{DOMAIN}",
                           tls=True, method="POST", body=b"{}")
    assert status == 405


@pytest.mark.parametrize(("listeners", "bound", "url"), [
    ({"imaps": "implicit", "https": "implicit"}, {"https": ("127.0.0.1", 8443)},
     f"https://{HOSTNAME}:8443/autodiscover/autodiscover.xml"),
    ({"imaps": "implicit", "http": "none", "https": "implicit"}, {"https": ("127.0.0.1", 443)},
     f"https://{HOSTNAME}/autodiscover/autodiscover.xml"),
    ({"imaps": "implicit", "http": "none"}, {"http": ("127.0.0.1", 8080)}, None),  # POX only over HTTPS
    ({"imaps": "implicit", "https": "implicit"}, {}, None),  # not bound (yet)
], ids=["port", "port-443", "no-https", "not-bound"])
def test_pox_url(tmp_path: Path, listeners: dict[str, str], bound: dict[str, tuple[str, int]],
                 url: str | None) -> None:
    cfg = load(write_http_config(tmp_path, listeners=listeners))
    assert autodiscover.pox_url(cfg, bound) == url
