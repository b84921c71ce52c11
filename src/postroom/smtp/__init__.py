"""SMTP: inbound MX, submission (RFC 6409 / RFC 8314), relay policy and local delivery.

``proto`` is the sans-I/O session (one command table), ``server`` the asyncio glue,
``policy`` the pure relay rules, ``delivery`` what happens to an accepted message.
"""
