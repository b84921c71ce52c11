"""IMAP URLs naming one message or one of its sections (RFC 5092), for CATENATE (RFC 4469).

Only the forms CATENATE needs are accepted: a message of a mailbox, with UIDVALIDITY
(so a URL made before the mailbox was recreated cannot name another message), an
optional SECTION and PARTIAL::

    /Drafts;UIDVALIDITY=385759045/;UID=20/;SECTION=1.2.MIME/;PARTIAL=0.1024
    imap://joe@example.com/INBOX;UIDVALIDITY=1/;UID=3

Anything else (a search URL ``?…``, URLAUTH, a server-only URL, bad percent-encoding,
a name that is not UTF-8) is an :class:`UrlError`, answered ``NO [BADURL …]``. Whose
mailbox it is, and whether it exists, is the handler's business (handlers/append.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote_to_bytes


class UrlError(ValueError):
    """Not an IMAP URL of one message that we can resolve."""


@dataclass(frozen=True, slots=True)
class MessageUrl:
    user: str | None  # None: a relative URL, the session's own account
    host: str | None
    mailbox: str
    uidvalidity: int
    uid: int
    section: str | None  # decoded, as in BODY[section]: "1.2", "HEADER.FIELDS (SUBJECT)" …
    partial: tuple[int, int | None] | None  # RFC 5092 §5: offset and optional length


# RFC 5092 §11: "imap://" [iuserinfo "@"] host [":" port] then an absolute path.
_ABSOLUTE = re.compile(r"imap://(?:(?P<user>[^@/;]*)(?:;AUTH=[^@/;]+)?@)?(?P<host>[^/@:]+)(?::\d{1,5})?(?P<path>/.*)",
                       re.IGNORECASE | re.DOTALL)
# icommand's message form: enc-mailbox [uidvalidity] iuid [isection] [ipartial]. A mailbox holds
# no ";" (percent-encoded), so the lazy match stops at the first parameter.
_PATH = re.compile(r"/(?P<mailbox>[^;?#]+?)(?:;UIDVALIDITY=(?P<uv>[1-9][0-9]{0,9}))?/;UID=(?P<uid>[1-9][0-9]{0,9})"
                   r"(?:/;SECTION=(?P<section>[^/;?#]+))?"
                   r"(?:/;PARTIAL=(?P<p0>[0-9]{1,10})(?:\.(?P<p1>[1-9][0-9]{0,9}))?)?",
                   re.IGNORECASE)
_URL_CHARS = re.compile(r"[\x21-\x7e]+")
MAX_NUMBER = 0xFFFFFFFF


def _decode(text: str, what: str) -> str:
    try:
        return unquote_to_bytes(text).decode("utf-8")
    except UnicodeDecodeError:
        raise UrlError(f"{what} is not UTF-8") from None


def parse(raw: bytes) -> MessageUrl:
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        raise UrlError("Not an ASCII URL") from None
    if not _URL_CHARS.fullmatch(text) or re.search(r"%(?![0-9A-Fa-f]{2})", text):
        raise UrlError("Malformed URL")
    user = host = None
    path = text
    m = _ABSOLUTE.fullmatch(text)
    if m is not None:
        if m.group("user") is None:
            raise UrlError("No user in URL")  # anonymous: never ours to give
        user = _decode(m.group("user"), "User")
        host = m.group("host").lower()
        path = m.group("path")
    elif not text.startswith("/") or text.startswith("//"):
        raise UrlError("Not an IMAP message URL")
    p = _PATH.fullmatch(path)
    if p is None:
        raise UrlError("Not an IMAP message URL")
    if p.group("uv") is None:
        raise UrlError("URL without UIDVALIDITY")
    uv, uid = int(p.group("uv")), int(p.group("uid"))
    if uv > MAX_NUMBER or uid > MAX_NUMBER:
        raise UrlError("Number out of range")
    mailbox = _decode(p.group("mailbox"), "Mailbox name")
    if mailbox.upper() == "INBOX":
        mailbox = "INBOX"
    elif mailbox.upper().startswith("INBOX/"):
        mailbox = "INBOX" + mailbox[5:]
    section = _decode(p.group("section"), "Section").upper() if p.group("section") else None
    partial = None
    if p.group("p0") is not None:
        partial = (int(p.group("p0")), int(p.group("p1")) if p.group("p1") else None)
    return MessageUrl(user, host, mailbox, uv, uid, section, partial)


def for_response(raw: bytes) -> bytes:
    """The URL as it may appear in ``[BADURL url]`` (RFC 4469 §6: no "]", no CR or LF):
    anything else percent-encoded, and cut to 512 octets."""
    out = bytearray()
    for b in raw[:512]:
        out += bytes((b,)) if 0x21 <= b <= 0x7E and b != 0x5D else b"%%%02X" % b
    return bytes(out) or b"%00"
