"""SASL mechanisms PLAIN (RFC 4616) and LOGIN as small I/O-free state machines.

Shared by SMTP AUTH (RFC 4954), POP3 AUTH (RFC 5034) and IMAP AUTHENTICATE
(RFC 9051 §6.2.2). The protocol code does the framing (base64 lines, "*" to cancel,
its own continuation prefix); a mechanism sees only decoded octets.

Usage::

    from postroom.wire import sasl

    mech = sasl.mechanism("PLAIN")           # None for an unknown name
    result = mech.step(initial_or_None)      # initial response, or None when absent
    while isinstance(result, sasl.Challenge):
        send(continuation + base64(result.data))
        line = read_line()
        if sasl.is_cancel(line):             # "*": client gave up (answer 501 / BAD / -ERR)
            break
        data = sasl.decode_b64(line)         # None → malformed base64
        result = mech.step(data)
    if isinstance(result, sasl.Done):
        authenticate(result.username, result.password)   # result.authzid: "" when absent
    elif isinstance(result, sasl.Failed):
        refuse(result.reason)                # the reason is for logs, not for the client

``step`` never raises on client input. After ``Done`` or ``Failed`` the mechanism
is finished and must not be stepped again.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Challenge:
    """Send these octets (base64-encoded by the caller) and wait for a response."""

    data: bytes


@dataclass(frozen=True, slots=True)
class Done:
    authzid: str  # "" when the client did not ask to act as someone else
    username: str
    password: str


@dataclass(frozen=True, slots=True)
class Failed:
    reason: str


@dataclass(frozen=True, slots=True)
class Identified:
    """A mechanism that proves the identity itself (GSSAPI, wire/gssapi.py) ends here: no
    password to check; the caller maps ``principal`` to an account (auth/kerberos.py)."""

    principal: str  # "user@REALM" as the Kerberos KDC named it
    authzid: str  # "" when the client did not ask to act as someone else


Result = Challenge | Done | Failed


class Mechanism(Protocol):
    """What the protocols step: PLAIN, LOGIN, and GSSAPI (wire/gssapi.py), which ends in
    :class:`Identified` instead of :class:`Done`."""

    name: str

    def step(self, data: bytes | None) -> Challenge | Done | Failed | Identified: ...

MAX_RESPONSE = 2048  # longer credentials are an attack, not a login


def decode_b64(line: bytes | str, limit: int = MAX_RESPONSE) -> bytes | None:
    """Strict base64 of one response line (trailing CRLF allowed); None if malformed
    or longer than ``limit`` decoded octets (a mechanism's ``max_response``).

    A single "=" is the empty initial response (RFC 4954 §4).
    """
    if isinstance(line, str):
        line = line.encode("ascii", "replace")
    line = line.strip(b"\r\n").strip()
    if line == b"=":
        return b""
    if len(line) > limit * 4 // 3 + 4:
        return None
    try:
        return base64.b64decode(line, validate=True)
    except (binascii.Error, ValueError):
        return None


def encode_b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def is_cancel(line: bytes | str) -> bool:
    """The client's "*" line cancels the exchange (RFC 4954 §4, RFC 9051 §6.2.2)."""
    if isinstance(line, bytes):
        line = line.decode("ascii", "replace")
    return line.strip() == "*"


def _text(data: bytes) -> str | None:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


class Plain:
    """RFC 4616: one message ``[authzid] NUL authcid NUL passwd``."""

    name = "PLAIN"

    def __init__(self) -> None:
        self._finished = False
        self._asked = False

    def step(self, data: bytes | None) -> Result:
        if self._finished:
            raise RuntimeError("mechanism already finished")
        if data is None:
            if self._asked:
                self._finished = True
                return Failed("no response")
            self._asked = True
            return Challenge(b"")  # RFC 4616 §2: empty challenge, client sends its message
        self._finished = True
        if len(data) > MAX_RESPONSE:
            return Failed("response too long")
        parts = data.split(b"\0")
        if len(parts) != 3:
            return Failed("malformed PLAIN message")
        texts = [_text(p) for p in parts]
        if any(t is None for t in texts):
            return Failed("PLAIN message is not UTF-8")
        authzid, user, password = texts  # type: ignore[misc]
        if not user or not password:  # RFC 4616 §2: authcid and passwd are 1*SAFE
            return Failed("empty user name or password")
        return Done(authzid or "", user or "", password or "")


class Login:
    """The LOGIN mechanism (draft-murchison-sasl-login): user name, then password."""

    name = "LOGIN"

    def __init__(self) -> None:
        self._user: str | None = None
        self._state = 0  # 0: nothing yet, 1: asked for user, 2: asked for password, 3: finished

    def step(self, data: bytes | None) -> Result:
        if self._state == 3:
            raise RuntimeError("mechanism already finished")
        if self._state == 0 and data is None:
            self._state = 1
            return Challenge(b"Username:")
        if data is None:
            self._state = 3
            return Failed("no response")
        if len(data) > MAX_RESPONSE:
            self._state = 3
            return Failed("response too long")
        text = _text(data)
        if text is None:
            self._state = 3
            return Failed("LOGIN response is not UTF-8")
        if self._state in (0, 1):  # 0: user name sent as the initial response
            if not text:
                self._state = 3
                return Failed("empty user name")
            self._user = text
            self._state = 2
            return Challenge(b"Password:")
        self._state = 3
        if not text:
            return Failed("empty password")
        return Done("", self._user or "", text)


MECHANISMS: dict[str, type[Plain] | type[Login]] = {"PLAIN": Plain, "LOGIN": Login}


def mechanism(name: str) -> Plain | Login | None:
    """A fresh state machine for ``name`` (case-insensitive), or None if unsupported."""
    cls = MECHANISMS.get(name.upper())
    return cls() if cls else None
