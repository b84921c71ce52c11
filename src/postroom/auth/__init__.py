"""Passwords, login throttling and the login steps, shared by every protocol that authenticates."""

from .authenticator import Authenticator
from .passwords import hash_password, verify_password

__all__ = ["Authenticator", "hash_password", "verify_password"]
