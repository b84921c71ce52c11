"""Typed SMTP replies with enhanced status codes (RFC 5321 §4.2, RFC 2034, RFC 3463).

A :class:`Reply` is a basic code, an enhanced status ("5.7.1") and one or more text
lines. ``encode()`` produces the wire form: every line but the last uses "code-",
the last "code " (RFC 5321 §4.2.1), and the enhanced code prefixes the text of each
line (RFC 2034 §4). The greeting and EHLO/HELO replies carry no enhanced code
(RFC 2034 §3): build them with ``status=None``.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Reply:
    code: int
    status: str | None
    lines: tuple[str, ...]
    close: bool = False  # the server closes the connection after sending it
    # The wire form, made on the first encode(): the fixed replies that every message gets
    # (250 Sender OK, 354, ...) are module constants, encoded once per process.
    _wire: bytes | None = field(default=None, init=False, repr=False, compare=False)

    @classmethod
    def make(cls, code: int, status: str | None, *lines: str, close: bool = False) -> "Reply":
        return cls(code, status, tuple(lines) or ("",), close)

    @property
    def positive(self) -> bool:
        return self.code < 400

    @property
    def is_error(self) -> bool:
        return self.code >= 500

    def encode(self) -> bytes:
        wire = self._wire
        if wire is None:
            out = []
            last = len(self.lines) - 1
            prefix = f"{self.status} " if self.status else ""
            for i, text in enumerate(self.lines):
                out.append(_line(self.code, " " if i == last else "-", prefix, text))
            wire = "".join(out).encode("utf-8")
            object.__setattr__(self, "_wire", wire)  # frozen: set once, always the same value
        return wire

    def with_first_line(self, text: str) -> "Reply":
        """This reply with another first line, the other lines' wire form reused: every
        connection's EHLO reply has its own first line (the client's name and address) and
        the same extension lines, encoded once per process that way."""
        rest = self.encode().split(b"\r\n", 1)[1]
        reply = Reply(self.code, self.status, (text, *self.lines[1:]), self.close)
        head = _line(self.code, "-" if len(self.lines) > 1 else " ", f"{self.status} " if self.status else "", text)
        object.__setattr__(reply, "_wire", head.encode("utf-8") + rest)
        return reply

    def __str__(self) -> str:
        return self.encode().decode("utf-8", "replace").rstrip()


def _line(code: int, sep: str, prefix: str, text: str) -> str:
    """One line of a reply's wire form: "code-" or "code " and the enhanced code (RFC 2034 §4)."""
    return f"{code}{sep}{prefix}{text}".rstrip(" ") + "\r\n"


def r(code: int, status: str | None, *lines: str, close: bool = False) -> Reply:
    return Reply.make(code, status, *lines, close=close)


# Fixed replies used in several places. Texts are short and never include client input
# or exception text.
OK = r(250, "2.0.0", "OK")
SYNTAX = r(500, "5.5.2", "Syntax error, command unrecognized")
LINE_TOO_LONG = r(500, "5.5.2", "Line too long")
BAD_ARGS = r(501, "5.5.4", "Syntax error in parameters or arguments")
BAD_SEQUENCE = r(503, "5.5.1", "Bad sequence of commands")
NOT_IMPLEMENTED = r(502, "5.5.1", "Command not implemented")
PARAM_NOT_IMPLEMENTED = r(504, "5.5.4", "Command parameter not implemented")
UNKNOWN_PARAM = r(555, "5.5.4", "MAIL FROM/RCPT TO parameters not recognized or not implemented")
TLS_REQUIRED = r(530, "5.7.0", "Must issue a STARTTLS command first")
AUTH_REQUIRED = r(530, "5.7.0", "Authentication required")
ENCRYPTION_REQUIRED = r(538, "5.7.11", "Encryption required for requested authentication mechanism")
RELAY_DENIED = r(554, "5.7.1", "Relay access denied")
NO_SUCH_USER = r(550, "5.1.1", "No such user here")
TOO_MANY_RCPTS = r(452, "4.5.3", "Too many recipients")
TOO_BIG = r(552, "5.3.4", "Message size exceeds fixed maximum message size")
# RFC 3463 X.2.2 "mailbox full"; Postfix and Dovecot's LMTP say 552 for an account over quota.
MAILBOX_FULL = r(552, "5.2.2", "Mailbox full")
NO_ROOM = r(452, "4.3.1", "Insufficient system storage, try again later")  # Postfix's words
LOCAL_ERROR = r(451, "4.3.0", "Local error in processing, try again later")
# The store (a PostgreSQL server restarting, a failover) cannot be reached for a moment.
STORE_UNAVAILABLE = r(451, "4.3.0", "Mail store temporarily unavailable, try again later")
TOO_MANY_ERRORS = r(421, "4.7.0", "Too many errors, closing connection", close=True)
TIMEOUT = r(421, "4.4.2", "Idle timeout, closing connection", close=True)
SHUTDOWN = r(421, "4.3.2", "Service shutting down, closing connection", close=True)
