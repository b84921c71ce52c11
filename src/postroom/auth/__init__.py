"""Passwords, login throttling and the login steps, shared by every protocol that authenticates."""

from .passwords import hash_password, verify_password
from .authenticator import Authenticator

__all__ = ["Authenticator", "hash_password", "verify_password"]
