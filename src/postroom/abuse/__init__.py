"""Abuse defences on the SMTP path: rate limits, connection-time checks, content scanners
and milters (docs/abuse.md).

Each defence is a :class:`~postroom.abuse.guard.Check`: one object per SMTP connection,
asked at connect, HELO, MAIL, RCPT and the end of DATA, any of which may refuse. A
defence that is not configured builds no object, so it costs nothing.
:class:`~postroom.abuse.guard.Guard` holds a connection's checks and runs them in order.
"""
