"""rspamd's verdict, I/O-free: the ``/checkv2`` reply parsed, and what it does to a message.

:mod:`postroom.abuse.rspamd` does the HTTP; this module turns the JSON reply into a
:class:`Verdict`, writes the ``X-Spam-*`` fields the way rspamd's own milter does, removes
such fields that arrive from outside (a sender could otherwise forge ``X-Spam-Score: 0``
and steer Sieve's ``spamtest``), and puts rspamd's rewritten subject in place.

The reply (rspamd's protocol documentation, "checkv2")::

    {"score": 8.0, "required_score": 15.0, "action": "add header",
     "symbols": {"NAME": {"name": "NAME", "score": 8.0, ...}, ...},
     "messages": {"smtp_message": "..."}, "subject": "...", "is_skipped": false}
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from email.header import Header

import orjson

__all__ = [
    "ACTIONS",
    "BadReply",
    "Verdict",
    "is_spam_field",
    "parse_reply",
    "replace_subject",
    "spam_headers",
    "strip_spam_headers",
]

#: Every action rspamd 3.x may answer; anything else is a reply we do not understand.
ACTIONS = frozenset({"no action", "greylist", "add header", "rewrite subject", "soft reject", "reject",
                     "discard", "quarantine"})
#: Actions after which the message counts as spam (``X-Spam: Yes``), as in rspamd's milter_headers.
SPAM_ACTIONS = frozenset({"add header", "rewrite subject", "reject", "discard", "quarantine"})

_MAX_REPLY_TEXT = 200  # octets of rspamd's smtp_message we put in an SMTP reply
_SYMBOL_NAME = re.compile(r"[A-Za-z0-9_.:+-]{1,100}")
_PRINTABLE = re.compile(r"[^\x20-\x7e]+")


class BadReply(ValueError):
    """The reply is not what rspamd sends: treated like rspamd being down."""


@dataclass(frozen=True, slots=True)
class Verdict:
    action: str
    score: float
    required: float  # rspamd's required_score: the reject threshold
    symbols: tuple[tuple[str, float], ...] = ()  # highest score first
    message: str = ""  # messages.smtp_message, printable ASCII, bounded
    subject: str | None = None  # the new subject for "rewrite subject"
    skipped: bool = False

    @property
    def is_spam(self) -> bool:
        return self.action in SPAM_ACTIONS


def _number(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise BadReply(f"{what} is not a finite number")
    return float(value)


def parse_reply(body: bytes) -> Verdict:
    """The verdict in a ``/checkv2`` reply body; raises :class:`BadReply`."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise BadReply("reply is not JSON") from None
    if not isinstance(data, dict):
        raise BadReply("reply is not a JSON object")
    if "error" in data and "action" not in data:
        raise BadReply(f"rspamd error: {_PRINTABLE.sub(' ', str(data['error']))[:_MAX_REPLY_TEXT]}")
    action = data.get("action")
    if not isinstance(action, str) or action not in ACTIONS:
        raise BadReply(f"unknown action {str(action)[:40]!r}")
    score = _number(data.get("score"), "score")
    required = _number(data.get("required_score", 0.0), "required_score")
    symbols: list[tuple[str, float]] = []
    raw_symbols = data.get("symbols", {})
    if isinstance(raw_symbols, dict):
        for name, sym in raw_symbols.items():
            if not isinstance(name, str) or not _SYMBOL_NAME.fullmatch(name):
                continue  # a name we could not put in a header field safely
            value = sym.get("score", 0.0) if isinstance(sym, dict) else 0.0
            try:
                symbols.append((name, _number(value, "symbol score")))
            except BadReply:
                continue
    symbols.sort(key=lambda s: (-s[1], s[0]))
    message = ""
    messages = data.get("messages")
    if isinstance(messages, dict) and isinstance(messages.get("smtp_message"), str):
        message = _PRINTABLE.sub(" ", messages["smtp_message"]).strip()[:_MAX_REPLY_TEXT]
    subject = data.get("subject")
    if not isinstance(subject, str) or action != "rewrite subject":
        subject = None
    return Verdict(action=action, score=score, required=required, symbols=tuple(symbols), message=message,
                   subject=subject, skipped=data.get("is_skipped") is True)


def spam_headers(v: Verdict, max_symbols: int = 512) -> list[tuple[str, str]]:
    """The fields rspamd's milter_headers module adds (X-Spam-Status as SpamAssassin words it,
    which Sieve's spamtest and most clients read), with the symbol list cut at a whole symbol
    so the field stays within ``max_symbols`` characters."""
    out = [("X-Spam-Score", f"{v.score:.2f}"),
           ("X-Spam-Status", f"{'Yes' if v.is_spam else 'No'}, score={v.score:.2f} required={v.required:.2f}"),
           ("X-Spam-Action", v.action)]
    parts: list[str] = []
    used = 0
    for name, score in v.symbols:
        item = f"{name}({score:.2f})"
        if used + len(item) + 2 > max_symbols - 5:
            parts.append("...")
            break
        parts.append(item)
        used += len(item) + 2
    if parts:
        out.append(("X-Spam-Symbols", ", ".join(parts)))
    if v.is_spam:
        out.append(("X-Spam", "Yes"))
    return out


def is_spam_field(name: bytes) -> bool:
    """A field only a scanner on our side may set: X-Spam, X-Spam-*, X-Spamd-*."""
    n = name.strip().lower()
    return n == b"x-spam" or n.startswith((b"x-spam-", b"x-spamd-"))


def _header_end(message: bytes) -> int:
    """Offset just past the header section's last field (before the empty line)."""
    if message.startswith(b"\r\n"):
        return 0
    i = message.find(b"\r\n\r\n")
    return len(message) if i < 0 else i + 2


def _fields(message: bytes) -> list[tuple[int, int, bytes]]:
    """(start, end, name) of each header field, continuation lines included."""
    end = _header_end(message)
    out: list[tuple[int, int, bytes]] = []
    pos = 0
    while pos < end:
        nl = message.find(b"\r\n", pos, end)
        line_end = end if nl < 0 else nl + 2
        if message[pos:pos + 1] in (b" ", b"\t") and out:
            s, _, name = out[-1]
            out[-1] = (s, line_end, name)
        else:
            colon = message.find(b":", pos, line_end)
            out.append((pos, line_end, message[pos:colon] if colon >= 0 else b""))
        pos = line_end
    return out


def strip_spam_headers(message: bytes) -> tuple[bytes, int]:
    """The message without the spam fields of :func:`is_spam_field`, and how many went."""
    fields = _fields(message)
    drop = [(s, e) for s, e, name in fields if is_spam_field(name)]
    if not drop:
        return message, 0
    parts = []
    pos = 0
    for s, e in drop:
        parts.append(message[pos:s])
        pos = e
    parts.append(message[pos:])
    return b"".join(parts), len(drop)


def _encode_subject(subject: str) -> bytes:
    text = _PRINTABLE.sub(" ", subject) if subject.isascii() else subject.replace("\r", " ").replace("\n", " ")
    if text.isascii():
        return b"Subject: " + text[:900].encode("ascii") + b"\r\n"
    # RFC 2047 encoded-words, folded by the email package (RFC 5322 §2.2.3 line lengths).
    encoded = Header(text[:300], "utf-8", header_name="Subject").encode(linesep="\r\n")
    return b"Subject: " + encoded.encode("ascii") + b"\r\n"


def replace_subject(message: bytes, subject: str) -> bytes:
    """The message with ``subject`` where its first Subject field was (others removed: a
    second Subject would contradict it), or added on top when it had none."""
    subjects = [(s, e) for s, e, name in _fields(message) if name.strip().lower() == b"subject"]
    if not subjects:
        return _encode_subject(subject) + message
    parts = [message[:subjects[0][0]], _encode_subject(subject)]
    pos = subjects[0][1]
    for s, e in subjects[1:]:
        parts.append(message[pos:s])
        pos = e
    parts.append(message[pos:])
    return b"".join(parts)
