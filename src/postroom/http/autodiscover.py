"""Microsoft's Autodiscover, the "plain old XML" (POX) form Outlook sends.

Outlook POSTs to ``https://autodiscover.DOMAIN/autodiscover/autodiscover.xml`` (and
``https://DOMAIN/autodiscover/autodiscover.xml``)::

    <Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006">
      <Request>
        <EMailAddress>joe@example.org</EMailAddress>
        <AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema>
      </Request>
    </Autodiscover>

and gets an ``Account`` of ``AccountType`` ``email`` with one ``Protocol`` per server
(IMAP, POP3, SMTP). ``SSL on`` with ``Encryption`` ``SSL`` is implicit TLS, ``TLS``
is STARTTLS. A request for another response schema (ActiveSync's ``mobilesync``) is
answered with the POX error 601 ("provider not found"), as Exchange does for a schema it
does not serve, so the client moves on instead of retrying.

The request is parsed with defusedxml: entity declarations (billion laughs), external
entities and DTDs are refused before any expansion. Only element local names are
compared, because clients disagree on ``http://`` versus ``https://`` namespaces.

Before POX, current Outlook (Microsoft 365 apps, Outlook for iOS and Android) asks the JSON
"Autodiscover v2" endpoint where a given protocol's service lives::

    GET /autodiscover/autodiscover.json?Email=joe@example.org&Protocol=AutodiscoverV1
    GET /autodiscover/autodiscover.json/v1.0/joe@example.org?Protocol=AutodiscoverV1
    -> {"Protocol": "AutodiscoverV1", "Url": "https://mail.example.org/autodiscover/autodiscover.xml"}

Of the protocols it asks for, only ``AutodiscoverV1`` (the POX endpoint) exists here:
Postroom serves no Exchange protocol (ActiveSync, EWS, REST). The others get Exchange
Online's answer for a protocol it does not know, HTTP 400 with ``ErrorCode``
``InvalidProtocol`` (``MandatoryParameterMissing`` without a Protocol), after which
Outlook goes on to POX or to IMAP/SMTP settings instead of retrying.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from xml.etree import ElementTree as ET

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from ..config import Config
from .clientconfig import Offer

RESPONSE_NS = "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006"
OUTLOOK_NS = "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"
_PROTOCOL_TYPE = {"imap": "IMAP", "pop3": "POP3", "smtp": "SMTP"}
_ENCRYPTION = {"implicit": "SSL", "starttls": "TLS"}


class BadRequest(Exception):
    """The body is not an Autodiscover request (HTTP 400); the text is safe to show."""


@dataclass(frozen=True, slots=True)
class Request:
    email: str
    schema: str


def _local(tag: object) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def parse_request(body: bytes) -> Request:
    try:
        root = fromstring(body, forbid_dtd=True)
    except DefusedXmlException:
        raise BadRequest("XML with entity or DTD declarations is not accepted") from None
    except ET.ParseError as exc:
        raise BadRequest(f"malformed XML: {exc}") from None
    if _local(root.tag) != "Autodiscover":
        raise BadRequest("the root element is not Autodiscover")
    req = next((el for el in root if _local(el.tag) == "Request"), None)
    if req is None:
        raise BadRequest("no Request element")
    fields = {_local(el.tag): (el.text or "").strip() for el in req}
    email = fields.get("EMailAddress", "")
    if not email:
        raise BadRequest("no EMailAddress")
    return Request(email, fields.get("AcceptableResponseSchema", "") or OUTLOOK_NS)


def schema_supported(schema: str) -> bool:
    # Exchange's namespaces were published with http:// and later quoted with https://.
    return schema.split("://", 1)[-1] == OUTLOOK_NS.split("://", 1)[-1]


def _document(response: ET.Element) -> bytes:
    root = ET.Element("Autodiscover", xmlns=RESPONSE_NS)
    root.append(response)
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n"


def render(offers: list[Offer], address: str | None) -> bytes:
    """The settings response; ``address`` (already checked) is the login name when known."""
    resp = ET.Element("Response", xmlns=OUTLOOK_NS)
    account = ET.SubElement(resp, "Account")
    ET.SubElement(account, "AccountType").text = "email"
    ET.SubElement(account, "Action").text = "settings"
    for o in offers:
        p = ET.SubElement(account, "Protocol")
        ET.SubElement(p, "Type").text = _PROTOCOL_TYPE[o.kind]
        ET.SubElement(p, "Server").text = o.host
        ET.SubElement(p, "Port").text = str(o.port)
        ET.SubElement(p, "DomainRequired").text = "off"
        if address:
            ET.SubElement(p, "LoginName").text = address
        ET.SubElement(p, "SPA").text = "off"  # no NTLM: a password over TLS
        ET.SubElement(p, "SSL").text = "on"
        ET.SubElement(p, "Encryption").text = _ENCRYPTION[o.tls]
        ET.SubElement(p, "AuthRequired").text = "on"
        if o.kind == "smtp":
            ET.SubElement(p, "UsePOPAuth").text = "on"  # the same user name and password
            ET.SubElement(p, "SMTPLast").text = "off"
    return _document(resp)


def render_error(code: int, message: str) -> bytes:
    """A POX error response: 600 invalid request, 601 provider (schema) not found."""
    resp = ET.Element("Response")
    err = ET.SubElement(resp, "Error")
    ET.SubElement(err, "ErrorCode").text = str(code)
    ET.SubElement(err, "Message").text = message
    ET.SubElement(err, "DebugData")
    return _document(resp)


# -- Autodiscover v2 (JSON) --------------------------------------------------------------
V1 = "AutodiscoverV1"  # the one protocol served: "where is your POX endpoint"
POX_PATH = "/autodiscover/autodiscover.xml"


def pox_url(cfg: Config, bound: Mapping[str, tuple[str, int]]) -> str | None:
    """``https://HOSTNAME[:PORT]/autodiscover/autodiscover.xml`` on the first HTTPS listener, or
    None without one (Outlook sends its POX request only over HTTPS).

    The host is ``hostname``, the name the certificate surely has (``autodiscover.DOMAIN``
    may not be on it); a listener on port 0 is named with the port it got, as the documents do.
    """
    for lst in cfg.listeners:
        if lst.protocol != "http" or lst.tls != "implicit":
            continue
        port = lst.port or bound.get(lst.name, ("", 0))[1]
        if not port:
            continue  # added by a reload, not listening until the next restart
        return f"https://{cfg.hostname}{'' if port == 443 else f':{port}'}{POX_PATH}"
    return None


def _shown(value: str) -> str:
    """The client's value quoted back in a message: short, and only what protocol names are made of."""
    return "".join(c for c in value[:64] if c.isascii() and (c.isalnum() or c in "._-"))


def render_json(protocol: str | None, url: str) -> tuple[int, bytes]:
    """(HTTP status, JSON body) answering an Autodiscover v2 request for ``protocol``."""
    if not protocol:
        body = {"ErrorCode": "MandatoryParameterMissing",
                "ErrorMessage": "The query parameter 'Protocol' is required."}
        return 400, json.dumps(body).encode()
    if protocol.lower() != V1.lower():  # Exchange compares protocol names without case
        body = {"ErrorCode": "InvalidProtocol",
                "ErrorMessage": f"The protocol '{_shown(protocol)}' is not served here; "
                                f"supported values are '{V1}'."}
        return 400, json.dumps(body).encode()
    return 200, json.dumps({"Protocol": V1, "Url": url}).encode()
