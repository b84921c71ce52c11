"""The server side of SASL GSSAPI (RFC 4752, Kerberos V5) as a small state machine.

Shaped like the PLAIN and LOGIN machines of :mod:`postroom.wire.sasl`: ``step(data)`` takes
one decoded client response (None when the client sent no initial response) and returns a
:class:`~postroom.wire.sasl.Challenge`, a :class:`~postroom.wire.sasl.Failed` (its reason is
for the log, the client sees a plain authentication failure) or, at the end, an
:class:`~postroom.wire.sasl.Identified` carrying the Kerberos principal the ticket was issued to and the
authorization identity the client asked for. Nothing here reads a socket; the protocol code
frames the tokens as it frames PLAIN's, and maps the principal to an account
(:mod:`postroom.auth.kerberos`).

The exchange (RFC 4752 §3.1):

1. the client's GSS-API token (a Kerberos AP-REQ) is given to ``gss_accept_sec_context``
   with the service's keytab credentials; a mechanism needing more rounds gets the output
   token back as a challenge;
2. when the context is complete and there is an output token (the AP-REP of mutual
   authentication), it is sent and the client answers with an empty response;
3. the server sends, wrapped with integrity only, four octets: the security layers it
   offers and the largest buffer it can receive. We offer only "no security layer" (bit 1)
   and size 0 (RFC 4752 §3.1: 0 when no layer is offered): every listener that offers
   GSSAPI runs, or may run, under TLS, and a SASL layer inside TLS adds nothing but code;
4. the client answers, wrapped, with its chosen layer, its size and the authzid. A client
   choosing integrity or confidentiality is refused (the layer was not offered); its
   size octets are ignored, as Cyrus SASL does, because some Java clients send non-zero.

Acceptor failures are sorted by their Kerberos minor status into the reasons an admin looks
for (:func:`reason`): clock skew, expired ticket, replayed authenticator, ticket for another
service, no key in the keytab.

:class:`GssSpnego` is the GSS-SPNEGO mechanism: steps 1 and 2 only, with SPNEGO tokens.
"""

from __future__ import annotations

import enum

import gssapi
import gssapi.exceptions
import gssapi.raw

from .sasl import MAX_RESPONSE, Challenge, Failed, Identified

#: A Kerberos AP-REQ with an Active Directory PAC can reach 12 KiB and more (MS KB 327825);
#: PLAIN's 2 KiB limit would lock such users out.
MAX_TOKEN = 64 * 1024
assert MAX_TOKEN > MAX_RESPONSE

#: RFC 4752 §3.1 security-layer bits.
LAYER_NONE = 1
LAYER_INTEGRITY = 2
LAYER_CONFIDENTIALITY = 4

# MIT krb5 error codes (krb5_err.et; ERROR_TABLE_BASE_krb5 = -1765328384) as the
# unsigned minor status that GSS-API reports. The names are the library's.
_KRB5_BASE = -1765328384 & 0xFFFFFFFF
_KRB5_REASONS = {
    32: "ticket expired",                       # KRB5KRB_AP_ERR_TKT_EXPIRED
    33: "ticket not yet valid (clock skew)",    # KRB5KRB_AP_ERR_TKT_NYV
    34: "replayed authenticator",               # KRB5KRB_AP_ERR_REPEAT
    35: "ticket for another service",           # KRB5KRB_AP_ERR_NOT_US
    37: "clock skew too great",                 # KRB5KRB_AP_ERR_SKEW
    41: "ticket or authenticator modified",     # KRB5KRB_AP_ERR_MODIFIED (wrong key)
    44: "keytab key version does not match the ticket",  # KRB5KRB_AP_ERR_BADKEYVER
    45: "no key in the keytab for the ticket's service",  # KRB5KRB_AP_ERR_NOKEY
}
# Codes of other tables, matched by their message (stable across MIT versions).
_TEXT_REASONS = (
    ("wrong principal", "ticket for another service"),
    ("no key table entry", "no key in the keytab for the ticket's service"),
    ("key table file", "keytab not found or unreadable"),
    ("replay", "replayed authenticator"),
    ("clock skew", "clock skew too great"),
    ("expired", "ticket expired"),
)


def reason(exc: gssapi.exceptions.GSSError) -> str:
    """A short log reason for an acceptor failure, with the library's own words after it."""
    minor = int(getattr(exc, "min_code", 0) or 0) & 0xFFFFFFFF
    try:
        text = str(exc.gen_message())
    except (gssapi.exceptions.GSSError, UnicodeDecodeError):  # the lookup itself failed: keep the codes
        text = f"major {getattr(exc, 'maj_code', '?')} minor {minor}"
    why = _KRB5_REASONS.get(minor - _KRB5_BASE) if minor >= _KRB5_BASE else None
    if why is None:
        low = text.lower()
        why = next((w for needle, w in _TEXT_REASONS if needle in low), "GSS-API failure")
    return f"{why} ({' '.join(text.split())})"


class _State(enum.Enum):
    START = enum.auto()
    CONTEXT = enum.auto()  # feeding tokens to accept_sec_context
    AFTER_TOKEN = enum.auto()  # sent the last context token, waiting for the empty response
    AFTER_OFFER = enum.auto()  # sent the security-layer offer, waiting for the client's choice
    FINISHED = enum.auto()


class Gssapi:
    """One RFC 4752 server exchange with ``creds`` (acceptor credentials for the service)."""

    name = "GSSAPI"
    max_response = MAX_TOKEN

    def __init__(self, creds: gssapi.Credentials | None) -> None:
        # None: the service's credentials could not be acquired (logged by the caller);
        # the exchange then fails at the client's first token, as a wrong ticket would.
        self._creds = creds
        self._ctx: gssapi.raw.SecurityContext | None = None
        self._initiator: gssapi.raw.Name | None = None
        self._state = _State.START

    def step(self, data: bytes | None) -> Challenge | Failed | Identified:
        if self._state is _State.FINISHED:
            raise RuntimeError("mechanism already finished")
        if data is None:
            if self._state is not _State.START:
                return self._fail("no response")
            self._state = _State.CONTEXT
            return Challenge(b"")  # RFC 4752 §3.1: the client sends the first token
        if len(data) > MAX_TOKEN:
            return self._fail("response too long")
        if self._state in (_State.START, _State.CONTEXT):
            self._state = _State.CONTEXT
            return self._accept(data)
        if self._state is _State.AFTER_TOKEN:
            # RFC 4752 §3.1: the client answers the last context token with an empty
            # response; anything it sends here carries no meaning and is ignored.
            return self._established()
        return self._choice(data)

    def _fail(self, why: str) -> Failed:
        self._state = _State.FINISHED
        return Failed(why)

    def _accept(self, token: bytes) -> Challenge | Failed | Identified:
        if not token:
            return self._fail("empty GSS-API token")
        if self._creds is None:
            return self._fail("no acceptor credentials (keytab missing or without the service's key)")
        try:
            # The raw call, not gssapi.SecurityContext.step: that one swallows an error which
            # comes with a token (Kerberos KRB-ERROR) and hands back the token as if it were
            # a challenge, raising only at the next attribute access.
            res = gssapi.raw.accept_sec_context(token, self._creds, context=self._ctx)
        except gssapi.exceptions.GSSError as exc:
            return self._fail(reason(exc))
        self._ctx = res.context
        self._initiator = res.initiator_name
        out = res.token
        if res.more_steps:
            return Challenge(out or b"")
        if out:
            self._state = _State.AFTER_TOKEN
            return Challenge(out)
        return self._established()

    def _established(self) -> Challenge | Failed | Identified:
        """The context is complete and its last token is with the client."""
        return self._offer()

    def _offer(self) -> Challenge | Failed:
        assert self._ctx is not None
        offer = bytes([LAYER_NONE, 0, 0, 0])
        try:
            # RFC 4752 §3.1: conf_flag FALSE. (The stub names the high-level context class.)
            wrapped = gssapi.raw.wrap(self._ctx, offer, confidential=False).message  # type: ignore[arg-type]
        except gssapi.exceptions.GSSError as exc:
            return self._fail(reason(exc))
        self._state = _State.AFTER_OFFER
        return Challenge(wrapped)

    def _identified(self, authzid: str) -> Failed | Identified:
        self._state = _State.FINISHED
        assert self._initiator is not None
        try:
            principal = gssapi.raw.display_name(self._initiator).name.decode("utf-8")
        except (gssapi.exceptions.GSSError, UnicodeDecodeError) as exc:
            why = reason(exc) if isinstance(exc, gssapi.exceptions.GSSError) else "not UTF-8"
            return Failed("initiator name: " + why)
        return Identified(principal, authzid)

    def _choice(self, data: bytes) -> Failed | Identified:
        assert self._ctx is not None
        self._state = _State.FINISHED
        try:
            msg = gssapi.raw.unwrap(self._ctx, data).message  # type: ignore[arg-type]  # the stub names the high-level class
        except gssapi.exceptions.GSSError as exc:
            return Failed("security layer reply: " + reason(exc))
        if len(msg) < 4:
            return Failed("security layer reply shorter than 4 octets")
        if msg[0] != LAYER_NONE:
            # Integrity and confidentiality layers were not offered (the connection is under
            # TLS); a client choosing one anyway is refused rather than silently unprotected.
            return Failed(f"client chose security layer {msg[0]:#x}; only 'no security layer' is offered")
        try:
            authzid = msg[4:].decode("utf-8")
        except UnicodeDecodeError:
            return Failed("authzid is not UTF-8")
        if "\0" in authzid:
            return Failed("authzid contains NUL")
        return self._identified(authzid)


class GssSpnego(Gssapi):
    """The GSS-SPNEGO SASL mechanism (Microsoft's; Cyrus SASL has it too): the same acceptor,
    fed SPNEGO-wrapped tokens (MIT's GSS-API unwraps them and picks Kerberos), and no
    security-layer negotiation: once the context is complete the client is authenticated.
    Its last token goes out as a challenge, answered by an empty response, as GSSAPI's."""

    name = "GSS-SPNEGO"

    def _established(self) -> Challenge | Failed | Identified:
        return self._identified("")
