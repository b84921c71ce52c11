"""Which mail Postroom signs, and with which keys.

Signing is decided where the sender is known (SMTP delivery, the DSN sender), not in
the outbound queue: only mail that a user of ours sent (authenticated submission,
``sendmail``, a trusted network) or that Postroom itself wrote is signed. Signing mail
that merely passes through (an alias forwarding a stranger's message) would lend our
domain's reputation to whatever a stranger wrote in ``From:``; such mail gets an ARC
seal instead (:mod:`.arc`).

The key is chosen by the ``From:`` domain (RFC 7489 §3.1: DMARC alignment is with the
``From:`` domain): its own keys, or else those of a parent domain up to the
organizational domain (relaxed alignment still passes). Both the RSA and the Ed25519
key sign when both are active (RFC 8463 §4).
"""

from __future__ import annotations

import logging
from pathlib import Path

from .keys import DkimKey, active_keys

log = logging.getLogger("postroom.mailauth")


def _from_domain(message: bytes) -> str | None:
    from .dmarc import from_domains

    try:
        domains = from_domains(message)
    except Exception:  # a From that cannot be parsed: nothing to sign for
        return None
    if not domains:
        return None
    return domains[0]


def keys_for(data_dir: Path, domain: str) -> list[DkimKey]:
    """The active keys for ``domain``, or for its nearest parent that has some (not past
    its organizational domain)."""
    from .dmarc import organizational_domain

    domain = domain.lower().rstrip(".")
    org = organizational_domain(domain)
    name = domain
    while True:
        keys = active_keys(data_dir, name)
        if keys or name == org or "." not in name:
            return keys
        name = name.split(".", 1)[1]


def signature_for(data_dir: Path, message: bytes, headers: tuple[str, ...], domain: str | None = None) -> bytes:
    """The DKIM-Signature fields to prepend to ``message`` (b"" when no key applies).

    ``domain`` overrides the ``From:`` domain (DSNs are signed for the host's domain).
    Never raises: a signing failure is logged and the message goes unsigned, because
    refusing a user's mail over our own key trouble would be worse than sending it
    unsigned.
    """
    from .dkim import sign

    d = domain or _from_domain(message)
    if not d:
        return b""
    keys = keys_for(data_dir, d)
    if not keys:
        return b""
    try:
        return sign(message, keys, headers)
    except Exception:
        log.exception("DKIM signing for %s failed; the message goes unsigned", d)
        return b""


def seal_for(data_dir: Path, message: bytes, domain: str, authserv_id: str, chain: str) -> bytes:
    """The ARC set (RFC 8617 §4.1) to prepend to a message Postroom passes on (b"" when no
    key applies). ``message`` carries our Authentication-Results field; ``chain`` is the
    arc= result of the message as it arrived. The key is the forwarding domain's, or the
    host name's domain's when that one has none. Never raises, as :func:`signature_for`.
    """
    from .arc import seal

    keys = keys_for(data_dir, domain) or keys_for(data_dir, authserv_id)
    # RSA only: dkimpy (and most verifiers) know no other ARC algorithm.
    keys = [k for k in keys if k.algorithm == "rsa"]
    if not keys:
        return b""
    try:
        return seal(message, keys[0], authserv_id, chain)
    except Exception:
        log.exception("ARC sealing for %s failed; the message goes on unsealed", keys[0].domain)
        return b""
