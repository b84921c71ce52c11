"""Apple configuration profile (``.mobileconfig``) for one address: IMAP (or POP3) + SMTP.

iOS, iPadOS and macOS install a profile opened from Safari or Mail: a property list
whose ``PayloadContent`` holds one ``com.apple.mail.managed`` payload. Apple's mail
payload has one incoming and one outgoing server, so the best offer of each is used
(implicit TLS first, IMAP before POP3: :mod:`.clientconfig`). ``UseSSL`` true means TLS
on that port; Apple's clients negotiate STARTTLS themselves on a STARTTLS port.

Unsigned by default: the device shows "Not Verified" but installs it. With ``[http]
sign_profiles = true`` the profile is signed with the server's certificate and key (CMS
SignedData, DER, the certificate chain included), and a device that trusts the
certificate's issuer shows it as "Verified". The payload identifiers and UUIDs are derived from the host name and the address (UUID
version 5), so fetching the profile again and installing it replaces the earlier one
instead of adding a second account.
"""

from __future__ import annotations

import plistlib
import uuid
from pathlib import Path
from typing import Any

from .clientconfig import Offer

CONTENT_TYPE = "application/x-apple-aspen-config"
_NAMESPACE = uuid.UUID("8f1d5f1e-3c55-4d0e-9a51-6b3c0a9c2f10")  # Postroom's, for uuid5
_ACCOUNT_TYPE = {"imap": "EmailTypeIMAP", "pop3": "EmailTypePOP"}


def _reverse(host: str) -> str:
    return ".".join(reversed(host.split(".")))


def render(hostname: str, address: str, offers: list[Offer]) -> bytes | None:
    """The profile, or None when there is no TLS incoming or outgoing server to offer."""
    incoming = next((o for o in offers if o.incoming), None)
    outgoing = next((o for o in offers if not o.incoming), None)
    if incoming is None or outgoing is None:
        return None
    base = f"{_reverse(hostname)}.postroom.{address.lower()}"
    mail = {
        "PayloadType": "com.apple.mail.managed",
        "PayloadVersion": 1,
        "PayloadIdentifier": f"{base}.mail",
        "PayloadUUID": str(uuid.uuid5(_NAMESPACE, f"{base}.mail")).upper(),
        "PayloadDisplayName": address,
        "PayloadDescription": f"Mail account {address}",
        "EmailAccountDescription": address,
        "EmailAccountType": _ACCOUNT_TYPE[incoming.kind],
        "EmailAddress": address,
        "IncomingMailServerAuthentication": "EmailAuthPassword",
        "IncomingMailServerHostName": incoming.host,
        "IncomingMailServerPortNumber": incoming.port,
        "IncomingMailServerUseSSL": True,
        "IncomingMailServerUsername": address,
        "OutgoingMailServerAuthentication": "EmailAuthPassword",
        "OutgoingMailServerHostName": outgoing.host,
        "OutgoingMailServerPortNumber": outgoing.port,
        "OutgoingMailServerUseSSL": True,
        "OutgoingMailServerUsername": address,
        "OutgoingPasswordSameAsIncomingPassword": True,
        "PreventMove": False,
        "PreventAppSheet": False,
        "SMIMEEnabled": False,
        "allowMailDrop": True,
    }
    profile = {
        "PayloadType": "Configuration",
        "PayloadVersion": 1,
        "PayloadIdentifier": base,
        "PayloadUUID": str(uuid.uuid5(_NAMESPACE, base)).upper(),
        "PayloadDisplayName": f"Mail: {address}",
        "PayloadDescription": f"Sets up {address} on {hostname} (IMAP/POP3 and SMTP submission over TLS).",
        "PayloadOrganization": address.rpartition("@")[2],
        "PayloadRemovalDisallowed": False,
        "PayloadContent": [mail],
    }
    return plistlib.dumps(profile, fmt=plistlib.FMT_XML, sort_keys=True)


class Signer:
    """Signs profiles with the server's certificate (loaded once per config: SIGHUP reloads it)."""

    def __init__(self, cert_path: Path, key_path: Path) -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import serialization

        certs = x509.load_pem_x509_certificates(cert_path.read_bytes())  # leaf first, then the chain
        self.cert, self.chain = certs[0], certs[1:]
        self.key: Any = serialization.load_pem_private_key(key_path.read_bytes(), password=None)

    def sign(self, profile: bytes) -> bytes:
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.serialization import pkcs7

        builder = pkcs7.PKCS7SignatureBuilder().set_data(profile).add_signer(self.cert, self.key, hashes.SHA256())
        for extra in self.chain:
            builder = builder.add_certificate(extra)
        # Binary: the plist is signed byte for byte (no S/MIME canonical line endings).
        return builder.sign(serialization.Encoding.DER, [pkcs7.PKCS7Options.Binary])
