"""Thunderbird's autoconfiguration document (``config-v1.1.xml``).

Thunderbird (and K-9/Thunderbird for Android, Evolution, KMail) asks
``https://autoconfig.DOMAIN/mail/config-v1.1.xml?emailaddress=ADDR`` and
``https://DOMAIN/.well-known/autoconfig/mail/config-v1.1.xml``. The format is
Mozilla's "clientConfig" 1.1 (the ISPDB format). ``socketType`` is ``SSL`` for
implicit TLS and ``STARTTLS``; ``plain`` is never written (see :mod:`.clientconfig`).
The user name is the full address, which is what Postroom's accounts log in with;
``%EMAILADDRESS%`` lets the client fill it in when the request named no address.
"""

from __future__ import annotations

from xml.etree import ElementTree as ET

from .clientconfig import Offer

_SOCKET_TYPE = {"implicit": "SSL", "starttls": "STARTTLS"}


def render(domain: str, offers: list[Offer], address: str | None = None) -> bytes:
    """The XML document for ``domain``; ``address`` (already checked) fills in the user name."""
    root = ET.Element("clientConfig", version="1.1")
    provider = ET.SubElement(root, "emailProvider", id=domain)
    ET.SubElement(provider, "domain").text = domain
    ET.SubElement(provider, "displayName").text = domain
    ET.SubElement(provider, "displayShortName").text = domain.split(".")[0]
    username = address or "%EMAILADDRESS%"
    for o in offers:
        el = ET.SubElement(provider, "incomingServer" if o.incoming else "outgoingServer", type=o.kind)
        ET.SubElement(el, "hostname").text = o.host
        ET.SubElement(el, "port").text = str(o.port)
        ET.SubElement(el, "socketType").text = _SOCKET_TYPE[o.tls]
        # Over TLS the password may travel as SASL PLAIN/LOGIN, the mechanisms Postroom offers.
        ET.SubElement(el, "authentication").text = "password-cleartext"
        ET.SubElement(el, "username").text = username
    ET.indent(root)
    return ET.tostring(root, encoding="UTF-8", xml_declaration=True) + b"\n"
