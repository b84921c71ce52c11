"""The messages Sieve actions send: vacation replies, notifications, rejection notices.

Pure: each function takes the facts and returns the message bytes (CRLF line ends);
``postroom.sieve.delivery`` decides whether to send them and hands them to the queue.
Every message here is marked ``Auto-Submitted`` (RFC 3834 §5) so other responders do
not answer it, and goes out with the null reverse-path.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage, Message
from email.policy import SMTP, SMTPUTF8
from email.utils import format_datetime, getaddresses
from urllib.parse import parse_qsl, unquote

from ..mailauth.results import authserv_id as _authserv_id
from .api import Notify, Vacation

SUBJECT_MAX = 200  # characters of the original subject quoted in "Auto: …" and "Rejected: …"


def message_id(hostname: str) -> str:
    return f"<{secrets.token_hex(12)}@{hostname}>"


def _crlf(data: bytes) -> bytes:
    return data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")


def _header(headers: Message, name: str) -> str:
    value = headers.get(name)
    if value is None:
        return ""
    return " ".join(str(value).split())


def _render(msg: EmailMessage) -> bytes:
    # Non-ASCII text goes out as RFC 2047 encoded words, which every next hop accepts; only
    # what cannot be encoded that way (a UTF-8 address) needs RFC 6532 UTF-8 header fields.
    for name in ("From", "To", "Cc"):
        field = msg.get(name)
        if field is not None and any(not a.addr_spec.isascii() for a in getattr(field, "addresses", ())):
            return _crlf(msg.as_bytes(policy=SMTPUTF8))
    return _crlf(msg.as_bytes(policy=SMTP))


def _one_line(text: str, limit: int = SUBJECT_MAX) -> str:
    return " ".join(text.split())[:limit]


def own_from(given: str | None, recipient: str, own: Collection[str] = ()) -> str:
    """The From of a reply or notification: ``:from`` when it names one of the user's own
    addresses (``recipient``, ``own``), else ``recipient``. RFC 5230 §4.4 / RFC 5435 §3.3:
    a script must not make the server send mail in someone else's name (a bank's, a
    colleague's) with our DKIM signature on it."""
    if not given:
        return recipient
    text = _one_line(given, 998)
    found = getaddresses([text])
    mine = {a.lower() for a in (recipient, *own) if a}
    if len(found) == 1 and found[0][1].lower() in mine:
        return text
    return recipient


_RESULT = re.compile(r"(?<![\w.-])(spf|dkim|dmarc)\s*=\s*([a-z]+)", re.IGNORECASE)


def likely_forged(headers: Message, authserv_id: str, quarantined: bool = False) -> str:
    """Why an automatic answer to this message would likely be backscatter (a reply to a
    forged sender), or "" when answering is fine. RFC 5230 §4.6 / RFC 3834 §2: do not
    answer likely spam. Read from our own Authentication-Results field (forged ones
    claiming our authserv-id are removed at reception): DMARC fail, or SPF fail without a
    DKIM or DMARC pass (a forwarded message fails SPF but keeps its signature)."""
    if quarantined:
        return "quarantined by mail authentication"
    ours = authserv_id.lower().encode("utf-8", "replace")
    for value in headers.get_all("Authentication-Results") or []:
        text = str(value)
        if _authserv_id(text.encode("utf-8", "replace")) != ours:
            continue
        results = {(m.group(1).lower(), m.group(2).lower()) for m in _RESULT.finditer(text)}
        if ("dmarc", "fail") in results:
            return "dmarc=fail"
        if ("spf", "fail") in results and not {("dkim", "pass"), ("dmarc", "pass")} & results:
            return "spf=fail"
        return ""
    return ""


def _references(headers: Message) -> tuple[str, str]:
    """In-Reply-To and References for an answer (RFC 5230 §5.8, RFC 5322 §3.6.4)."""
    mid = _header(headers, "Message-ID")
    refs = _header(headers, "References") or _header(headers, "In-Reply-To")
    refs = " ".join(x for x in (refs, mid) if x)
    return mid, refs


def vacation_reply(v: Vacation, *, headers: Message, recipient: str, hostname: str, now: datetime,
                   own: Collection[str] = ()) -> bytes:
    """The reply of RFC 5230 §5 to the message whose header fields are ``headers``.

    From: ``:from`` if it is one of the user's addresses (:func:`own_from`), else the
    address the mail reached (§5.2); To: the sender (§5.1);
    Subject: ``:subject`` or "Auto: " and the original subject (§5.6); In-Reply-To and
    References (§5.8); ``Auto-Submitted: auto-replied`` (§5.1, RFC 3834 §5).
    """
    subject = v.subject or f"Auto: {_one_line(_header(headers, 'Subject'))}"
    mid, refs = _references(headers)
    head = [
        ("From", own_from(v.from_, recipient, own)),
        ("To", v.sender),
        ("Subject", _one_line(subject, 998)),
        ("Date", format_datetime(now)),
        ("Message-ID", message_id(hostname)),
        ("Auto-Submitted", "auto-replied (vacation)"),
    ]
    if mid:
        head.append(("In-Reply-To", mid))
    if refs:
        head.append(("References", refs))
    if v.mime:
        # RFC 5230 §4.4: the reason is a whole MIME entity, headers and body.
        msg = EmailMessage()
        for name, value in head:
            msg[name] = value
        msg["MIME-Version"] = "1.0"
        top = _render(msg)
        end = top.find(b"\r\n\r\n")  # find, not ``in`` (a dropped TypeError per test)
        top = top[: end + 2] if end >= 0 else top
        entity = _crlf(v.reason.encode("utf-8"))
        if entity.find(b"\r\n\r\n") < 0 and not entity.startswith(b"\r\n"):
            entity = b"\r\n" + entity  # no header fields in the entity: all body
        return top + entity
    plain = plain_text_message(head, v.reason)
    if plain is not None:
        return plain
    msg = EmailMessage()
    for name, value in head:
        msg[name] = value
    msg.set_content(v.reason, charset="utf-8", cte="quoted-printable" if not v.reason.isascii() else "7bit")
    return _render(msg)


#: What the fast path writes as it is: a plain address, a plain message id (list), short
#: printable ASCII text without encoded-word markers or runs of blanks.
_PLAIN_ADDRESS = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?")
_PLAIN_IDS = re.compile(r"<[A-Za-z0-9._+$-]+@[A-Za-z0-9._-]+>(?: <[A-Za-z0-9._+$-]+@[A-Za-z0-9._-]+>)*")
_PLAIN_TEXT = re.compile(r"[\x21-\x7e]+(?: [\x21-\x7e]+)*")
_PLAIN_KIND = {"From": _PLAIN_ADDRESS, "To": _PLAIN_ADDRESS, "Message-ID": _PLAIN_IDS,
               "In-Reply-To": _PLAIN_IDS, "References": _PLAIN_IDS}
_TEXT_PLAIN_7BIT = (b'Content-Type: text/plain; charset="utf-8"\r\nContent-Transfer-Encoding: 7bit\r\n'
                    b"MIME-Version: 1.0\r\n\r\n")


def plain_text_message(head: list[tuple[str, str]], text: str) -> bytes | None:
    """The octets ``EmailMessage`` with ``set_content(text, charset="utf-8", cte="7bit")``
    and ``_render`` give for these header fields, written directly; None unless every
    field is one the email package writes unchanged (one line of at most 78 characters, a
    plain address or message id, printable ASCII text) and the text is ASCII.

    Why: building a reply with the email package costs about a millisecond (its header
    registry parses and refolds every field), a vacation reply goes to every new sender,
    and such plain replies are nearly all of them. ``tests/unit/sieve/test_sieve_reply_fast.py``
    checks the octets against the email package's over generated fields."""
    if not text.isascii():
        return None
    lines = []
    for name, value in head:
        line = f"{name}: {value}"
        if len(line) > 78 or "=?" in value:
            return None
        kind = _PLAIN_KIND.get(name, _PLAIN_TEXT)
        if not kind.fullmatch(value):
            return None
        lines.append(line)
    lines.append("")
    # set_content's 7bit body: the text's lines, each ended by a line break.
    body = b"\r\n".join(text.encode("ascii").splitlines()) + b"\r\n"
    return "\r\n".join(lines).encode("ascii") + _TEXT_PLAIN_7BIT + body


@dataclass(frozen=True, slots=True)
class Mailto:
    """A parsed ``mailto:`` URI (RFC 6068) as RFC 5436 §2.7 uses it."""

    to: tuple[str, ...]
    cc: tuple[str, ...] = ()
    bcc: tuple[str, ...] = ()
    subject: str | None = None
    body: str | None = None

    @property
    def recipients(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(a for a in (*self.to, *self.cc, *self.bcc) if a))


def parse_mailto(uri: str) -> Mailto | None:
    """None when ``uri`` is not a usable mailto URI (the notification is then skipped)."""
    if uri[:7].lower() != "mailto:":
        return None
    rest = uri[7:]
    path, _, query = rest.partition("?")

    def addrs(text: str) -> list[str]:
        # Each address becomes an envelope recipient: no control characters (a NUL or a
        # line break in RCPT TO would break or smuggle SMTP commands).
        return [a for _, a in getaddresses([unquote(text)])
                if "@" in a and not any(c < " " or c == "\x7f" for c in a)]

    to, cc, bcc = addrs(path), [], []
    subject = body = None
    for name, value in parse_qsl(query, keep_blank_values=True):
        key = name.lower()
        if key == "to":
            to += addrs(value)
        elif key == "cc":
            cc += addrs(value)
        elif key == "bcc":
            bcc += addrs(value)
        elif key == "subject":
            subject = value
        elif key == "body":
            body = value
        # RFC 5436 §2.7: other header fields in the URI are not used.
    if not (to or cc or bcc):
        return None
    return Mailto(tuple(to), tuple(cc), tuple(bcc), subject, body)


_PRIORITY = {"1": ("1 (Highest)", "high"), "2": ("3 (Normal)", "normal"), "3": ("5 (Lowest)", "low")}


def notification(n: Notify, target: Mailto, *, headers: Message, recipient: str, hostname: str,
                 now: datetime, own: Collection[str] = ()) -> bytes:
    """The notification message of RFC 5436 §2.7 about the message with ``headers``."""
    original_subject = _one_line(_header(headers, "Subject"))
    subject = target.subject or n.message or f"[Sieve] New mail: {original_subject}"
    body = target.body
    if body is None:
        body = (n.message + "\r\n\r\n" if n.message else "") + (
            f"From: {_header(headers, 'From')}\r\nSubject: {original_subject}\r\n")
    x_priority, importance = _PRIORITY.get(n.importance, _PRIORITY["2"])
    msg = EmailMessage()
    msg["From"] = own_from(n.from_, recipient, own)
    if target.to:
        msg["To"] = ", ".join(target.to)
    if target.cc:
        msg["Cc"] = ", ".join(target.cc)
    msg["Subject"] = _one_line(subject, 998)
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = message_id(hostname)
    msg["Auto-Submitted"] = "auto-notified"  # RFC 5436 §2.7.1
    msg["X-Priority"] = x_priority
    msg["Importance"] = importance
    msg.set_content(body, charset="utf-8", cte="quoted-printable" if not body.isascii() else "7bit")
    return _render(msg)


def rejection_mdn(reason: str, *, headers: Message, original: bytes, recipient: str, sender: str,
                  hostname: str, now: datetime) -> bytes:
    """The notice of RFC 5429 §2.2.1: an MDN (RFC 8098) with the disposition "deleted",
    the reason in the human part and the original message attached."""
    boundary = f"{secrets.token_hex(12)}/{hostname}"
    mid = _header(headers, "Message-ID")
    subject = _one_line(_header(headers, "Subject"))
    top = EmailMessage()
    top["From"] = str(Address("Mail Delivery System", addr_spec=f"MAILER-DAEMON@{hostname}"))
    top["To"] = sender
    top["Subject"] = f"Rejected: {subject}" if subject else "Rejected"
    top["Date"] = format_datetime(now)
    top["Message-ID"] = message_id(hostname)
    top["Auto-Submitted"] = "auto-replied (rejected)"
    if mid:
        top["In-Reply-To"] = mid
    top["MIME-Version"] = "1.0"
    top["Content-Type"] = f'multipart/report; report-type=disposition-notification; boundary="{boundary}"'
    head = _render(top)
    head = head[: head.find(b"\r\n\r\n") + 4]
    human = (f"Your message to <{recipient}> was automatically rejected:\r\n\r\n"
             + "\r\n".join(reason.splitlines()) + "\r\n").encode("utf-8")
    report = [f"Reporting-UA: {hostname}; Postroom", f"Final-Recipient: rfc822; {recipient}"]
    if mid:
        report.append(f"Original-Message-ID: {mid}")
    report.append("Disposition: automatic-action/MDN-sent-automatically; deleted")
    b = boundary.encode()
    parts = [
        b"--" + b + b"\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" + human,
        b"--" + b + b"\r\nContent-Type: message/disposition-notification\r\n\r\n"
        + "\r\n".join(report).encode("utf-8") + b"\r\n",
        b"--" + b + b"\r\nContent-Type: message/rfc822\r\n\r\n" + _crlf(original),
    ]
    body = b"\r\n".join(parts)
    if not body.endswith(b"\r\n"):
        body += b"\r\n"
    return head + body + b"--" + b + b"--\r\n"
