"""BODY and BODYSTRUCTURE (RFC 9051 §7.5.2 ``body``; RFC 3501 §7.4.2).

Written to match Dovecot byte for byte (``imap-bodystructure.c``): type and
parameter spellings as the sender wrote them, ``("charset" "us-ascii")``
appended to text parts without a charset (RFC 2045 §5.2 default), ``"7bit"``
when Content-Transfer-Encoding is absent, and a multipart without any body
part reported with one empty text/plain part because the grammar needs one.
"""

from __future__ import annotations

from .envelope import envelope_of
from .imapfmt import imap_nstring_nolf, imap_quote
from .model import Params, ParsedMessage, Part

__all__ = ["bodystructure", "part_bodystructure"]

_EMPTY_BODY = b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0)'
_EMPTY_BODYSTRUCTURE = b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0 NIL NIL NIL NIL)'


def _params(params: Params, default_charset: bool) -> bytes:
    """``body-fld-param``: NIL or a list of name/value pairs."""
    items = [imap_quote(k) + b" " + imap_quote(v) for k, v in params]
    if default_charset and not any(k.lower() == "charset" for k, _ in params):
        items.append(b'"charset" "us-ascii"')
    return b"(" + b" ".join(items) + b")" if items else b"NIL"


def _ext_common(p: Part) -> bytes:
    """``body-fld-dsp SP body-fld-lang SP body-fld-loc`` (RFC 9051 §9)."""
    if p.disposition is None:
        dsp = b"NIL"
    else:
        dsp = b"(" + imap_quote(p.disposition) + b" " + _params(p.disposition_params_wire, False) + b")"
    if p.language is None:
        lang = b"NIL"
    else:
        lang = b"(" + b" ".join(imap_quote(t) for t in p.language) + b")"
    return b" ".join((dsp, lang, imap_nstring_nolf(p.location)))


def part_bodystructure(p: Part, extended: bool = True) -> bytes:
    """The ``body`` production for one part (parenthesized)."""
    if p.is_multipart:
        if p.children:
            kids = b"".join(part_bodystructure(c, extended) for c in p.children)
        else:
            kids = _EMPTY_BODYSTRUCTURE if extended else _EMPTY_BODY
        out = kids + b" " + imap_quote(p.subtype_wire)
        if extended:
            out += b" " + _params(p.params_wire, False) + b" " + _ext_common(p)
        return b"(" + out + b")"

    is_text = p.type == "text"
    if p.is_message and p.subtype == "rfc822":
        type_fields = [b'"message"', b'"rfc822"']  # Dovecot writes these fixed, not as spelled
    else:
        type_fields = [imap_quote(p.type_wire), imap_quote(p.subtype_wire)]
    fields = [
        *type_fields,
        _params(p.params_wire, is_text),
        imap_nstring_nolf(p.content_id),
        imap_nstring_nolf(p.description),
        imap_quote(p.encoding) if p.encoding is not None else b'"7bit"',
        b"%d" % p.size,
    ]
    if is_text:
        fields.append(b"%d" % p.lines)  # RFC 9051 body-type-text: body-fld-lines
    elif p.is_message:
        inner = p.children[0]
        # RFC 9051 body-type-msg: envelope SP body SP body-fld-lines
        fields += [envelope_of(inner.envelope) if inner.envelope else envelope_of_empty(),
                   part_bodystructure(inner, extended), b"%d" % p.lines]
    if extended:
        fields += [imap_nstring_nolf(p.md5), _ext_common(p)]
    return b"(" + b" ".join(fields) + b")"


def envelope_of_empty() -> bytes:
    return b"(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)"


def _is_plain_7bit(p: Part) -> bool:
    """Dovecot's ``imap_bodystructure_is_plain_7bit``: a lone text/plain us-ascii 7bit body.

    Dovecot does not store BODYSTRUCTURE for such messages and regenerates it
    in canonical lowercase, so ``TEXT/PLAIN; CHARSET=US-ASCII`` comes back as
    ``"text" "plain" ("charset" "us-ascii")``; we follow to stay byte-identical.
    """
    return (
        p.type == "text"
        and p.subtype == "plain"
        and not p.children
        and all(k.lower() == "charset" and v.lower() == "us-ascii" for k, v in p.params_wire)
        and len(p.params_wire) <= 1
        and p.content_id is None
        and p.description is None
        and (p.encoding is None or p.encoding.lower() == "7bit")
        and p.md5 is None
        and p.disposition is None
        and p.language is None
        and p.location is None
    )


def bodystructure(p: ParsedMessage, extended: bool = True) -> bytes:
    """FETCH BODYSTRUCTURE (``extended=True``) or BODY (``extended=False``) value."""
    root = p.root
    if _is_plain_7bit(root):
        out = b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" %d %d' % (root.size, root.lines)
        return out + (b" NIL NIL NIL NIL)" if extended else b")")
    return part_bodystructure(root, extended)
