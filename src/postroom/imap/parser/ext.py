"""Arguments of the extension commands and of the extended forms of CREATE and LIST.

ID (RFC 2971), CREATE … (USE (…)) (RFC 6154 §3, with the create-params of RFC 4466),
LIST with selection options, several patterns and return options (RFC 5258, RFC 6154 §4,
RFC 5819 LIST-STATUS). Like :mod:`.args`, each parser consumes the whole command and
raises ParseError (→ ``BAD``) on anything it does not know: RFC 5258 §3 and RFC 4466 §2.1
want unknown options refused rather than ignored.
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import names
from ..errors import No, ParseError
from . import args
from .base import Reader

# -- ID (RFC 2971 §3.3) ---------------------------------------------------------------
# "Field strings MUST NOT be longer than 30 octets. Value strings MUST NOT be longer
# than 1024 octets. Implementations MUST NOT send more than 30 field-value pairs."
ID_MAX_PAIRS = 30
ID_MAX_FIELD = 30
ID_MAX_VALUE = 1024


@dataclass(frozen=True, slots=True)
class IdArgs:
    """The client's fields in the order sent (``None`` for ``ID NIL``); values may be NIL."""

    fields: tuple[tuple[str, str | None], ...] | None


def _text(b: bytes) -> str:
    return b.decode("utf-8", "replace")


def id_args(r: Reader) -> IdArgs:
    """id = "ID" SPACE id_params_list; id_params_list = "(" #(string SPACE nstring) ")" / nil."""
    r.sp()
    if r.take_word(b"NIL"):
        r.end()
        return IdArgs(None)
    r.expect(b"(")
    pairs: list[tuple[str, str | None]] = []
    if not r.take(b")"):  # "#" allows an empty list
        while True:
            if len(pairs) == ID_MAX_PAIRS:
                raise ParseError("Too many ID fields")
            field = r.string()
            r.sp()
            value = r.nstring()
            if len(field) > ID_MAX_FIELD or not field:
                raise ParseError("ID field name too long")
            if value is not None and len(value) > ID_MAX_VALUE:
                raise ParseError("ID value too long")
            pairs.append((_text(field), None if value is None else _text(value)))
            if r.take(b")"):
                break
            r.sp()
    r.end()
    return IdArgs(tuple(pairs))


# -- CREATE (RFC 4466 §2.2, RFC 6154 §3) ------------------------------------------------
# use-attr = "\All" / "\Archive" / "\Drafts" / "\Flagged" / "\Junk" / "\Sent" / "\Trash"
#            / use-attr-ext; the case of the known ones is normalised here.
USE_ATTRS = {a.upper(): a for a in ("\\All", "\\Archive", "\\Drafts", "\\Flagged", "\\Junk", "\\Sent", "\\Trash")}


@dataclass(frozen=True, slots=True)
class CreateArgs:
    name: str
    use: tuple[str, ...] | None  # None: no USE parameter; () is an explicit empty list


def _use_attr(r: Reader) -> str:
    r.expect(b"\\", "a special-use attribute")
    word = "\\" + r.atom().decode("ascii")
    return USE_ATTRS.get(word.upper(), word)


def create(r: Reader) -> CreateArgs:
    """create = "CREATE" SP mailbox [create-params];
    create-params = SP "(" create-param *(SP create-param) ")"."""
    r.sp()
    name = args.mailbox_name(r.astring())
    use: tuple[str, ...] | None = None
    if r.take(b" "):
        r.expect(b"(")
        while True:
            param = r.keyword()
            if param != "USE":
                raise ParseError("Unknown CREATE parameter")
            if use is not None:
                raise ParseError("USE given twice")
            r.sp()
            use = tuple(r.paren_list(lambda: _use_attr(r)))
            if r.take(b")"):
                break
            r.sp()
    r.end()
    return CreateArgs(name, use)


# -- LIST (RFC 5258 §6, RFC 5819 §4, RFC 6154 §6) ---------------------------------------
SELECT_BASE = frozenset({"SUBSCRIBED", "SPECIAL-USE"})  # list-select-base-opt
SELECT_OPTS = SELECT_BASE | {"REMOTE", "RECURSIVEMATCH"}
RETURN_OPTS = frozenset({"SUBSCRIBED", "CHILDREN", "SPECIAL-USE"})  # and STATUS (…)


@dataclass(frozen=True, slots=True)
class ListExtArgs:
    reference: str
    patterns: tuple[str, ...]
    select: frozenset[str]
    returns: frozenset[str]
    status: tuple[str, ...] | None  # RETURN (STATUS (items)), RFC 5819
    extended: bool  # any RFC 5258 syntax used; False: a plain RFC 3501 LIST


def _decode(raw: bytes) -> str:
    try:
        return names.decode(raw)  # RFC 6855 §3: UTF-8 once UTF8=ACCEPT is enabled
    except names.BadName as exc:
        raise No(str(exc), b"CANNOT") from None


def list_ext(r: Reader) -> ListExtArgs:
    """list = "LIST" [SP list-select-opts] SP mailbox SP mbox-or-pat [SP list-return-opts]."""
    r.sp()
    extended = False
    select: frozenset[str] = frozenset()
    if r.peek() == 0x28:  # "(" cannot start an astring: these are selection options
        extended = True
        select = frozenset(r.paren_list(r.keyword))
        if not select <= SELECT_OPTS:
            raise ParseError("Unknown LIST selection option")
        # §3: RECURSIVEMATCH alone is an error: it modifies a base option.
        if "RECURSIVEMATCH" in select and not select & SELECT_BASE:
            raise ParseError("RECURSIVEMATCH needs SUBSCRIBED or SPECIAL-USE")
        r.sp()
    ref = r.astring()
    r.sp()
    if r.peek() == 0x28:
        extended = True
        raw_patterns = r.paren_list(r.list_mailbox)
        if not raw_patterns:
            raise ParseError("Empty pattern list")
    else:
        raw_patterns = [r.list_mailbox()]
    returns: set[str] = set()
    status: tuple[str, ...] | None = None
    if r.take(b" "):
        extended = True
        if not r.take_word(b"RETURN"):
            raise ParseError("Expected RETURN")
        r.sp()
        r.expect(b"(")
        if not r.take(b")"):
            while True:
                opt = r.keyword()
                if opt == "STATUS":
                    if status is not None:
                        raise ParseError("STATUS given twice")
                    r.sp()
                    status = tuple(args.status_atts(r))  # the items STATUS knows
                elif opt in RETURN_OPTS:
                    returns.add(opt)
                else:
                    raise ParseError("Unknown LIST return option")
                if r.take(b")"):
                    break
                r.sp()
    r.end()
    # RFC 5258 §3: SUBSCRIBED and SPECIAL-USE selection imply the same return option.
    returns |= select & SELECT_BASE
    return ListExtArgs(_decode(ref), tuple(_decode(p) for p in raw_patterns), select,
                       frozenset(returns), status, extended)
