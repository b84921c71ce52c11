"""Stand-in SASL PLAIN and LOGIN until ``postroom.wire.sasl`` lands (then this goes).

A mechanism is a tiny state machine: feed it decoded client responses, it answers
with the next challenge or the credentials. Base64 is the caller's business.
"""

from __future__ import annotations

from dataclasses import dataclass

MECHANISMS = ("PLAIN", "LOGIN")


class SaslFailure(Exception):
    """The exchange is malformed; the message is safe to send."""


@dataclass(frozen=True, slots=True)
class Credentials:
    authzid: str
    username: str
    password: str


class Mechanism:
    """``step(None)`` first (no initial response) or ``step(initial)``."""

    def __init__(self, name: str) -> None:
        self.name = name.upper()
        self._username: str | None = None
        self._started = False

    def step(self, data: bytes | None) -> bytes | Credentials:
        """Return the next challenge (bytes) or the final credentials."""
        first = not self._started
        self._started = True
        if self.name == "PLAIN":
            if data is None:
                if not first:
                    raise SaslFailure("Missing response")
                return b""  # RFC 4616 §2: empty challenge, then the message
            parts = _text(data).split("\0")
            if len(parts) != 3 or not parts[1]:
                raise SaslFailure("Malformed PLAIN response")
            authzid, user, password = parts
            return Credentials(authzid, user, password)
        # LOGIN (draft-murchison-sasl-login): "Username:", then "Password:".
        if first and data is None:
            return b"Username:"
        if self._username is None:
            self._username = _text(data or b"")
            return b"Password:"
        return Credentials("", self._username, _text(data or b""))


def _text(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise SaslFailure("Credentials are not UTF-8") from None
