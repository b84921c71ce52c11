"""TLS contexts and the self-signed certificate ``postroom init`` creates.

TLS 1.2 is the floor (RFC 8996 deprecates older versions; RFC 8314 recommends 1.2+),
with the ``ssl`` module's modern default cipher list minus anything without forward
secrecy.
"""

from __future__ import annotations

import datetime as _dt
import ipaddress
import os
import ssl
import tempfile
from pathlib import Path

from .. import metrics

_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20:!aNULL:!MD5:!DSS:!SHA1"


def server_context(cert: Path | str, key: Path | str) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(_CIPHERS)
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE | ssl.OP_NO_RENEGOTIATION
    ctx.load_cert_chain(str(cert), str(key))
    # asyncio and uvloop make every server-side TLS object with wrap_bio, implicit TLS and
    # STARTTLS alike, and log a failed handshake nowhere: the object counts it itself.
    ctx.sslobject_class = _CountingSSLObject
    return ctx


class _CountingSSLObject(ssl.SSLObject):
    """Counts handshakes that fail (``postroom_tls_handshake_failures_total``); a
    handshake that is only waiting for more bytes raises SSLWantRead and is not one."""

    def do_handshake(self) -> None:
        try:
            super().do_handshake()
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            raise
        except ssl.SSLError as exc:
            reason = exc.reason if isinstance(exc.reason, str) and exc.reason.isupper() else "other"
            metrics.TLS_HANDSHAKE_FAILURES.labels(reason[:64]).inc()
            raise


def reload_certificate(ctx: ssl.SSLContext, cert: Path | str, key: Path | str) -> None:
    """Put a new certificate and key into a live server context, or change nothing.

    ``load_cert_chain`` replaces the certificate before it checks the key: a key that
    does not match (a renewal half written, a typo in the config) would leave the live
    context with the new certificate and the old key, and every handshake after that
    fails. So the pair is first loaded into a scratch context, from a private copy of
    the files, and the live context loads the very same bytes only once they passed.
    """
    with tempfile.TemporaryDirectory(prefix="postroom-tls-") as tmp:  # mode 0700
        copies = []
        for name, src in (("cert.pem", cert), ("key.pem", key)):
            dst = Path(tmp) / name
            fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(Path(src).read_bytes())
            copies.append(str(dst))
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(*copies)  # raises: nothing changed
        ctx.load_cert_chain(*copies)


def client_context(verify: bool = True) -> ssl.SSLContext:
    """For outbound SMTP; opportunistic STARTTLS passes ``verify=False`` (RFC 7435)."""
    ctx = ssl.create_default_context()
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def write_self_signed(cert_path: Path, key_path: Path, hostname: str, days: int = 825) -> None:
    """An ECDSA P-256 certificate for ``hostname``, localhost and 127.0.0.1; the key mode 0600."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    now = _dt.datetime.now(_dt.timezone.utc)
    sans: list[x509.GeneralName] = [x509.DNSName(hostname), x509.DNSName("localhost"),
                                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                    x509.IPAddress(ipaddress.ip_address("::1"))]
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _dt.timedelta(minutes=5))
        .not_valid_after(now + _dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path.parent.mkdir(parents=True, exist_ok=True)
    key_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def describe(obj: ssl.SSLObject | ssl.SSLSocket | None) -> str | None:
    """``TLSv1.3 cipher TLS_AES_256_GCM_SHA384 (256 bits)`` for logs and Received headers."""
    if obj is None:
        return None
    cipher = obj.cipher()
    if not cipher:
        return obj.version()
    return f"{cipher[1]} with cipher {cipher[0]} ({cipher[2]}/{cipher[2]} bits)"
