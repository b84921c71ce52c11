"""Thunderbird autoconfig over real HTTP and HTTPS: the document is well-formed, follows
the clientConfig 1.1 structure, and names exactly the TLS listeners of the config."""

from __future__ import annotations

from xml.etree import ElementTree as ET

import pytest
from http_harness import DOMAIN, HOSTNAME, Harness

PATHS = ("/mail/config-v1.1.xml", "/.well-known/autoconfig/mail/config-v1.1.xml")
SOCKET_TYPES = {"SSL", "STARTTLS"}  # "plain" must never appear
AUTH_VALUES = {"password-cleartext", "password-encrypted", "OAuth2", "NTLM", "GSSAPI", "client-IP-address",
               "TLS-client-cert", "none"}


def validate(doc: bytes) -> ET.Element:
    """The clientConfig 1.1 structure, element by element (what Thunderbird's reader requires)."""
    assert doc.startswith(b"<?xml")
    root = ET.fromstring(doc)
    assert root.tag == "clientConfig" and root.get("version") == "1.1"
    (provider,) = root
    assert provider.tag == "emailProvider" and provider.get("id")
    kids = [el.tag for el in provider]
    assert kids[:3] == ["domain", "displayName", "displayShortName"]
    assert set(kids[3:]) <= {"incomingServer", "outgoingServer"}
    for server in provider.findall("incomingServer") + provider.findall("outgoingServer"):
        assert server.get("type") in ({"imap", "pop3"} if server.tag == "incomingServer" else {"smtp"})
        fields = {el.tag: el.text for el in server}
        assert set(fields) == {"hostname", "port", "socketType", "authentication", "username"}
        assert 0 < int(fields["port"] or "") < 65536
        assert fields["socketType"] in SOCKET_TYPES
        assert fields["authentication"] in AUTH_VALUES
    return root


def servers(root: ET.Element) -> list[tuple[str, str, str, int, str, str]]:
    out = []
    for server in root.iter():
        if server.tag in ("incomingServer", "outgoingServer"):
            out.append((server.tag, server.get("type") or "", server.findtext("hostname") or "",
                        int(server.findtext("port") or 0), server.findtext("socketType") or "",
                        server.findtext("username") or ""))
    return out


def expected(srv: Harness, username: str) -> list[tuple[str, str, str, int, str, str]]:
    p = srv.ports
    return [
        ("incomingServer", "imap", HOSTNAME, p["imaps"], "SSL", username),
        ("incomingServer", "imap", HOSTNAME, p["imap"], "STARTTLS", username),
        ("incomingServer", "pop3", HOSTNAME, p["pop3s"], "SSL", username),
        ("outgoingServer", "smtp", HOSTNAME, p["submissions"], "SSL", username),
        ("outgoingServer", "smtp", HOSTNAME, p["submission"], "STARTTLS", username),
    ]


@pytest.mark.parametrize("tls", [False, True], ids=["http", "https"])
@pytest.mark.parametrize("path", PATHS)
def test_document_names_the_tls_listeners(srv: Harness, tls: bool, path: str) -> None:
    status, headers, body = srv.get(f"{path}?emailaddress=joe%40{DOMAIN}", f"autoconfig.{DOMAIN}", tls=tls)
    assert status == 200
    assert headers["content-type"].startswith("application/xml")
    root = validate(body)
    assert root.find("emailProvider/domain").text == DOMAIN  # type: ignore[union-attr]
    assert servers(root) == expected(srv, f"joe@{DOMAIN}")
    # Never the plaintext POP3 port, never the port-25 relay.
    ports = {s[3] for s in servers(root)}
    assert srv.ports["pop3"] not in ports and srv.ports["smtp"] not in ports


def test_domain_from_host_without_address(srv: Harness) -> None:
    """Thunderbird's well-known URL on the domain itself; the client fills in the user name."""
    status, _, body = srv.get(PATHS[1], DOMAIN.upper(), tls=True)
    assert status == 200
    assert servers(validate(body)) == expected(srv, "%EMAILADDRESS%")


def test_address_case_and_domain_normalized(srv: Harness) -> None:
    status, _, body = srv.get(f"{PATHS[0]}?emailaddress=Joe.Bloggs@{DOMAIN.upper()}", f"autoconfig.{DOMAIN}")
    assert status == 200
    assert {s[5] for s in servers(validate(body))} == {f"Joe.Bloggs@{DOMAIN}"}


def test_unserved_domain_is_a_plain_404(srv: Harness) -> None:
    """No information leak: the same answer as for a path that does not exist."""
    nothing = srv.get("/no/such/path", f"autoconfig.{DOMAIN}")
    for path, host in ((f"{PATHS[0]}?emailaddress=joe@other.test", f"autoconfig.{DOMAIN}"),
                       (PATHS[0], "autoconfig.other.test"),
                       (PATHS[1], "other.test"),
                       (PATHS[1], "127.0.0.1")):
        status, _, body = srv.get(path, host)
        assert (status, body) == (404, nothing[2]), (path, host)
    assert nothing[0] == 404


@pytest.mark.parametrize("address", ["no-at-sign", "a@b@", "joe@-bad-.test", "sp ace@example.test", "@example.test"])
def test_malformed_address_is_400(srv: Harness, address: str) -> None:
    from urllib.parse import quote

    status, headers, body = srv.get(f"{PATHS[0]}?emailaddress={quote(address)}", f"autoconfig.{DOMAIN}")
    assert status == 400
    assert headers["content-type"].startswith("text/plain") and b"Traceback" not in body


def test_head_and_wrong_method(srv: Harness) -> None:
    status, headers, body = srv.get(PATHS[0], f"autoconfig.{DOMAIN}", method="HEAD")
    assert status == 200 and body == b"" and int(headers["content-length"]) > 0
    status, headers, _ = srv.get(PATHS[0], f"autoconfig.{DOMAIN}", method="DELETE")
    assert status == 405 and "GET" in headers["allow"]
