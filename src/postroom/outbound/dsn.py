"""Delivery status notifications (RFC 3464 multipart/report), built as bytes.

Pure: the caller decides who gets a notice (:func:`wants_notice`, never the null
sender) and sends the bytes this module returns.
"""

from __future__ import annotations

import email.utils
import secrets
from dataclasses import dataclass
from typing import Sequence

# Past this size a "full" return carries the headers only (RFC 3461 §4.3 lets the MTA
# decide when RET is absent; with RET=FULL we still cap it so a bounce cannot be huge).
MAX_RETURN_FULL = 10 * 1024 * 1024

ACTIONS = ("failed", "delayed", "delivered", "relayed", "expanded")  # RFC 3464 §2.3.3
_NOTIFY_FOR = {"failed": "FAILURE", "delayed": "DELAY", "delivered": "SUCCESS", "relayed": "SUCCESS",
               "expanded": "SUCCESS"}


def wants_notice(sender: str, notify: Sequence[str], action: str) -> bool:
    """RFC 3461 §4.1 (NOTIFY) and RFC 5321 §4.5.5 (never to the null reverse-path).

    Without NOTIFY the default is "FAILURE,DELAY" (§4.1: the MTA may send delay notices).
    """
    if not sender:
        return False
    kinds = {n.upper() for n in notify}
    if "NEVER" in kinds:
        return False
    if not kinds:
        return action in ("failed", "delayed")
    return _NOTIFY_FOR[action] in kinds


@dataclass(frozen=True, slots=True)
class RecipientReport:
    address: str
    action: str  # one of ACTIONS
    status: str  # RFC 3463, e.g. "5.1.1"
    orcpt: str | None = None  # "rfc822;user@example.org"
    diagnostic: str = ""  # the remote reply ("550 5.1.1 no such user") or our reason
    remote_mta: str = ""  # "mx.example.org [192.0.2.1]"
    last_attempt: float | None = None
    will_retry_until: float | None = None


def _date(ts: float) -> str:
    return email.utils.formatdate(ts, localtime=False, usegmt=True)


def _clean(text: str) -> str:
    """A header field value on one line (replies can carry CR/LF or controls)."""
    return " ".join("".join(ch if ch.isprintable() else " " for ch in text).split())


def _headers_of(raw: bytes) -> bytes:
    end = raw.find(b"\r\n\r\n")
    if end < 0:
        end = raw.find(b"\n\n")
    return raw if end < 0 else raw[: end + 2]


def _crlf(data: bytes) -> bytes:
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


SUBJECTS = {
    "failed": "Undelivered Mail Returned to Sender",
    "delayed": "Delayed Mail (still being retried)",
    "delivered": "Successful Mail Delivery Report",
    "relayed": "Successful Mail Delivery Report",
}

_INTRO = {
    "failed": "Your message could not be delivered to one or more recipients.\n"
              "It has been given up on; the details are below.",
    "delayed": "Your message has not been delivered yet to one or more recipients.\n"
               "Delivery is still being retried; you do not need to send it again.",
    "delivered": "Your message was delivered to the recipients below.",
    "relayed": "Your message was passed on to the recipients' mail systems, which do not\n"
               "report delivery; no further notice will come from them.",
}


def build_dsn(*, reporting_mta: str, sender: str, queue_id: str, arrival: float, now: float,
              reports: Sequence[RecipientReport], original: bytes, ret: str | None = None,
              envid: str | None = None, boundary: str | None = None) -> bytes:
    """One notice for the ``reports`` of one message (all with the same action)."""
    if not reports:
        raise ValueError("no recipients to report")
    action = reports[0].action
    boundary = boundary or f"{queue_id}.{secrets.token_hex(8)}/{reporting_mta}"
    # RFC 3461 §4.3: RET=HDRS asks for headers only; without RET we return the full
    # message for failures (so the sender can resend it) and headers for the rest.
    full = (ret or "").upper() == "FULL" or (not ret and action == "failed")
    if len(original) > MAX_RETURN_FULL:
        full = False
    human = [_INTRO.get(action, _INTRO["failed"]), "", f"Queue id: {queue_id}", ""]
    for r in reports:
        line = f"<{r.address}>: {r.action}"
        if r.diagnostic:
            line += f": {_clean(r.diagnostic)}"
        if r.remote_mta:
            line += f" (at {_clean(r.remote_mta)})"
        human.append(line)
    human.append("")

    # RFC 3464 §2.2: per-message fields.
    status = [f"Reporting-MTA: dns; {reporting_mta}", f"X-Postroom-Queue-ID: {queue_id}"]
    if envid:
        status.append(f"Original-Envelope-Id: {_clean(envid)}")  # RFC 3464 §2.2.1
    status.append(f"Arrival-Date: {_date(arrival)}")
    blocks = ["\r\n".join(status)]
    for r in reports:  # RFC 3464 §2.3: per-recipient fields
        f = []
        if r.orcpt:
            kind, _, addr = r.orcpt.partition(";")
            f.append(f"Original-Recipient: {kind.strip() or 'rfc822'}; {_clean(addr)}")
        f.append(f"Final-Recipient: rfc822; {r.address}")
        f.append(f"Action: {r.action}")
        f.append(f"Status: {r.status}")
        if r.remote_mta:
            # RFC 3464 §2.3.5: the name of the MTA that gave the diagnostic, type "dns".
            f.append(f"Remote-MTA: dns; {_clean(r.remote_mta.split(' [')[0])}")
        if r.diagnostic:
            dtype = "smtp" if r.diagnostic[:3].isdigit() else "x-postroom"
            f.append(f"Diagnostic-Code: {dtype}; {_clean(r.diagnostic)}")
        if r.last_attempt:
            f.append(f"Last-Attempt-Date: {_date(r.last_attempt)}")
        if r.will_retry_until and action == "delayed":
            f.append(f"Will-Retry-Until: {_date(r.will_retry_until)}")
        blocks.append("\r\n".join(f))

    headers = [
        f"From: Mail Delivery System <MAILER-DAEMON@{reporting_mta}>",
        f"To: <{sender}>",
        f"Subject: {SUBJECTS.get(action, SUBJECTS['failed'])}",
        f"Date: {_date(now)}",
        f"Message-ID: <{queue_id}.{secrets.token_hex(6)}@{reporting_mta}>",
        "Auto-Submitted: auto-replied",  # RFC 3834 §5: no auto-replies to this one
        "MIME-Version: 1.0",
        f'Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary="{boundary}"',
    ]
    returned = original if full else _headers_of(original)
    parts = [
        "\r\n".join(headers).encode() + b"\r\n\r\nThis is a MIME-encapsulated delivery status notification.\r\n",
        f"--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Description: Notification\r\n\r\n"
        .encode() + _crlf("\n".join(human).encode("utf-8")),
        f"--{boundary}\r\nContent-Type: message/delivery-status\r\nContent-Description: Delivery report\r\n\r\n"
        .encode() + "\r\n\r\n".join(blocks).encode("utf-8") + b"\r\n",
        f"--{boundary}\r\nContent-Type: {'message/rfc822' if full else 'text/rfc822-headers'}\r\n"
        f"Content-Description: {'Undelivered message' if action == 'failed' else 'Message headers'}\r\n\r\n"
        .encode() + _crlf(returned),
    ]
    body = b"\r\n".join(parts)
    if not body.endswith(b"\r\n"):
        body += b"\r\n"
    return body + f"--{boundary}--\r\n".encode()
