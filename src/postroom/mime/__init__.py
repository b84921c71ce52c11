"""Parse a message once at delivery; answer IMAP FETCH/SEARCH from the stored result.

Pure (no I/O, no asyncio), and :func:`parse` never raises on malformed mail.
See docs/mime.md for the stored model and the offset rules.
"""

from .bodystructure import bodystructure
from .decode import body_text, decoded_headers, header_date
from .envelope import envelope
from .imapfmt import imap_nstring, imap_quote
from .model import Address, Envelope, ParsedMessage, Part
from .parse import parse
from .sections import header_section, section
from .transfer import UnknownCte, binary_section, decode_transfer

__all__ = [
    "Address",
    "Envelope",
    "ParsedMessage",
    "Part",
    "UnknownCte",
    "binary_section",
    "decode_transfer",
    "body_text",
    "bodystructure",
    "decoded_headers",
    "envelope",
    "header_date",
    "imap_nstring",
    "imap_quote",
    "parse",
    "header_section",
    "section",
]
