"""Postroom: an all-in-one mail server (SMTP, submission, POP3, IMAP) on one store."""

__version__ = "0.1.0"
