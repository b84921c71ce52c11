"""Password hashes: argon2id for new ones; imported Dovecot-style hashes still verify.

Stored form is Dovecot's ``{SCHEME}hash`` so that people moving in from Dovecot can
copy their passdb lines: ``{ARGON2ID}``, ``{SHA512-CRYPT}``, ``{SHA256-CRYPT}``,
``{BLF-CRYPT}`` (bcrypt). ``{PLAIN}`` is accepted on import only for migration; the
CLI always writes argon2id.
"""

from __future__ import annotations

import hmac

import argon2
import bcrypt
from passlib.hash import sha256_crypt, sha512_crypt

_hasher = argon2.PasswordHasher()  # argon2id with RFC 9106's second recommended parameters


def hash_password(password: str) -> str:
    return "{ARGON2ID}" + _hasher.hash(password)


def scheme_of(stored: str) -> str:
    if stored.startswith("{") and "}" in stored:
        return stored[1 : stored.index("}")].upper()
    if stored.startswith("$argon2"):
        return "ARGON2ID"
    if stored.startswith("$6$"):
        return "SHA512-CRYPT"
    if stored.startswith("$5$"):
        return "SHA256-CRYPT"
    if stored.startswith(("$2a$", "$2b$", "$2y$")):
        return "BLF-CRYPT"
    return "UNKNOWN"


def verify_password(stored: str, password: str) -> bool:
    """Constant-time where the scheme allows; False (never an exception) on any mismatch."""
    scheme = scheme_of(stored)
    body = stored[stored.index("}") + 1 :] if stored.startswith("{") and "}" in stored else stored
    try:
        if scheme in ("ARGON2ID", "ARGON2I", "ARGON2"):
            return _hasher.verify(body, password)
        if scheme == "SHA512-CRYPT":
            return bool(sha512_crypt.verify(password, body))
        if scheme == "SHA256-CRYPT":
            return bool(sha256_crypt.verify(password, body))
        if scheme == "BLF-CRYPT":
            body = "$2b$" + body[4:] if body.startswith("$2y$") else body
            return bcrypt.checkpw(password.encode(), body.encode())
        if scheme == "PLAIN":
            return hmac.compare_digest(body.encode(), password.encode())
    except (argon2.exceptions.VerificationError, argon2.exceptions.InvalidHashError, ValueError):
        return False
    return False


def needs_rehash(stored: str) -> bool:
    """True for imported schemes: the next successful login upgrades them to argon2id."""
    if scheme_of(stored) != "ARGON2ID":
        return True
    body = stored[stored.index("}") + 1 :] if stored.startswith("{") else stored
    try:
        return _hasher.check_needs_rehash(body)
    except argon2.exceptions.InvalidHashError:
        return True
