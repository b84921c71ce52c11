"""The Sendmail milter protocol, version 6, as an MTA speaks it: packets in, typed events out.

No sockets here (see ``client.py``). The protocol has no RFC; the reference is
libmilter's ``mfdef.h`` and what Postfix's ``milter8.c`` does with it (docs/abuse.md
"Milters"). A packet is a 4-byte big-endian length, one command byte and a payload;
strings are NUL-terminated. The MTA sends commands (``SMFIC_*``), the milter answers
with responses (``SMFIR_*``): modifications (only at end of message) and one verdict.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass, field

VERSION = 6
MAX_BODY_CHUNK = 65535  # libmilter's MILTER_CHUNK_SIZE: a BODY packet carries at most this
# The largest reply we take: a REPLBODY piece or a header is far smaller; a milter sending
# more is broken (libmilter's own limit for a packet it reads is 1 MB by default).
MAX_PACKET = 1 << 20


class MilterProtocolError(Exception):
    """The milter broke the protocol (bad packet, unexpected reply): its default action applies."""


class Cmd(bytes, enum.Enum):
    """Commands the MTA sends (SMFIC_*)."""

    ABORT = b"A"
    BODY = b"B"
    CONNECT = b"C"
    MACRO = b"D"
    BODYEOB = b"E"
    HELO = b"H"
    QUIT_NC = b"K"
    HEADER = b"L"
    MAIL = b"M"
    EOH = b"N"
    OPTNEG = b"O"
    QUIT = b"Q"
    RCPT = b"R"
    DATA = b"T"
    UNKNOWN = b"U"


class Rsp(bytes, enum.Enum):
    """Responses a milter sends (SMFIR_*)."""

    ADDRCPT = b"+"
    DELRCPT = b"-"
    ADDRCPT_PAR = b"2"
    SHUTDOWN = b"4"
    ACCEPT = b"a"
    REPLBODY = b"b"
    CONTINUE = b"c"
    DISCARD = b"d"
    CHGFROM = b"e"
    CONN_FAIL = b"f"
    ADDHEADER = b"h"
    INSHEADER = b"i"
    SETSYMLIST = b"l"
    CHGHEADER = b"m"
    PROGRESS = b"p"
    QUARANTINE = b"q"
    REJECT = b"r"
    SKIP = b"s"
    TEMPFAIL = b"t"
    REPLYCODE = b"y"
    OPTNEG = b"O"  # the answer to SMFIC_OPTNEG


class Action(enum.IntFlag):
    """What a milter may change (SMFIF_*): offered by the MTA, asked for by the milter."""

    ADDHDRS = 0x01
    CHGBODY = 0x02
    ADDRCPT = 0x04
    DELRCPT = 0x08
    CHGHDRS = 0x10
    QUARANTINE = 0x20
    CHGFROM = 0x40
    ADDRCPT_PAR = 0x80
    SETSYMLIST = 0x100


ALL_ACTIONS = Action(0x1FF)


class Proto(enum.IntFlag):
    """Protocol steps (SMFIP_*): the milter asks to skip a stage (NO*) or to send no reply (NR_*)."""

    NOCONNECT = 0x01
    NOHELO = 0x02
    NOMAIL = 0x04
    NORCPT = 0x08
    NOBODY = 0x10
    NOHDRS = 0x20
    NOEOH = 0x40
    NR_HDR = 0x80
    NOUNKNOWN = 0x100
    NODATA = 0x200
    SKIP = 0x400  # the MTA understands SMFIR_SKIP
    RCPT_REJ = 0x800  # the milter wants rejected recipients too (we send none: see check.py)
    NR_CONN = 0x1000
    NR_HELO = 0x2000
    NR_MAIL = 0x4000
    NR_RCPT = 0x8000
    NR_DATA = 0x10000
    NR_UNKN = 0x20000
    NR_EOH = 0x40000
    NR_BODY = 0x80000
    HDR_LEADSPC = 0x100000


# What we offer: every step can be skipped or unanswered, SKIP and leading spaces are
# understood. Not RCPT_REJ (recipients another check refused are never shown) and not
# the MDS_* larger-chunk flags (bodies go in libmilter's classic 64 KB pieces).
OFFERED_PROTO = Proto(0x1FFFFF ^ Proto.RCPT_REJ)


class Stage(enum.IntEnum):
    """Macro stages of SMFIR_SETSYMLIST (SMFIM_*)."""

    CONNECT = 0
    HELO = 1
    MAIL = 2
    RCPT = 3
    DATA = 4
    EOM = 5
    EOH = 6


STAGE_CMD = {Stage.CONNECT: Cmd.CONNECT, Stage.HELO: Cmd.HELO, Stage.MAIL: Cmd.MAIL, Stage.RCPT: Cmd.RCPT,
             Stage.DATA: Cmd.DATA, Stage.EOM: Cmd.BODYEOB, Stage.EOH: Cmd.EOH}

# Which stages want a reply, and the flag that says the milter sends none.
NO_REPLY = {Cmd.CONNECT: Proto.NR_CONN, Cmd.HELO: Proto.NR_HELO, Cmd.MAIL: Proto.NR_MAIL,
            Cmd.RCPT: Proto.NR_RCPT, Cmd.DATA: Proto.NR_DATA, Cmd.HEADER: Proto.NR_HDR,
            Cmd.EOH: Proto.NR_EOH, Cmd.BODY: Proto.NR_BODY, Cmd.UNKNOWN: Proto.NR_UNKN}
SKIPPED = {Cmd.CONNECT: Proto.NOCONNECT, Cmd.HELO: Proto.NOHELO, Cmd.MAIL: Proto.NOMAIL,
           Cmd.RCPT: Proto.NORCPT, Cmd.DATA: Proto.NODATA, Cmd.HEADER: Proto.NOHDRS,
           Cmd.EOH: Proto.NOEOH, Cmd.BODY: Proto.NOBODY, Cmd.UNKNOWN: Proto.NOUNKNOWN}


# -- encoding (MTA → milter) ------------------------------------------------------------------

def packet(cmd: Cmd | Rsp, payload: bytes = b"") -> bytes:
    return struct.pack("!I", len(payload) + 1) + cmd.value + payload


def _z(*parts: str) -> bytes:
    return b"".join(p.encode("utf-8", "surrogateescape") + b"\0" for p in parts)


def optneg(actions: int = ALL_ACTIONS, protocol: int = OFFERED_PROTO, version: int = VERSION) -> bytes:
    return packet(Cmd.OPTNEG, struct.pack("!III", version, actions, protocol))


def macros(cmd: Cmd, values: dict[str, str]) -> bytes:
    """SMFIC_MACRO for the command about to be sent: the first payload byte names it."""
    return packet(Cmd.MACRO, cmd.value + _z(*(s for kv in values.items() for s in kv)))


def connect(hostname: str, ip: str, port: int) -> bytes:
    """SMFIC_CONNECT: ``'4'``/``'6'`` with port and address, ``'U'`` (unknown) without."""
    if not ip:
        return packet(Cmd.CONNECT, _z(hostname) + b"U")
    family = b"6" if ":" in ip else b"4"
    return packet(Cmd.CONNECT, _z(hostname) + family + struct.pack("!H", port) + _z(ip))


def helo(name: str) -> bytes:
    return packet(Cmd.HELO, _z(name))


def mail(sender: str, *args: str) -> bytes:
    """SMFIC_MAIL: ``<address>`` then each ESMTP parameter, all NUL-terminated."""
    return packet(Cmd.MAIL, _z(f"<{sender}>", *args))


def rcpt(address: str, *args: str) -> bytes:
    return packet(Cmd.RCPT, _z(f"<{address}>", *args))


def header(name: str, value: str) -> bytes:
    return packet(Cmd.HEADER, _z(name, value))


def body_chunks(body: bytes) -> list[bytes]:
    """SMFIC_BODY packets of at most :data:`MAX_BODY_CHUNK` bytes (none for an empty body)."""
    return [packet(Cmd.BODY, body[i:i + MAX_BODY_CHUNK]) for i in range(0, len(body), MAX_BODY_CHUNK)]


def simple(cmd: Cmd) -> bytes:
    """DATA, EOH, BODYEOB, ABORT, QUIT, QUIT_NC: no payload."""
    return packet(cmd)


# -- decoding (milter → MTA) ------------------------------------------------------------------

class Decoder:
    """Packets out of a byte stream; an impossible length is an error at once, never a wait."""

    __slots__ = ("_buf", "max_packet")

    def __init__(self, max_packet: int = MAX_PACKET) -> None:
        self._buf = bytearray()
        self.max_packet = max_packet

    def feed(self, data: bytes) -> None:
        self._buf += data

    def next(self) -> tuple[bytes, bytes] | None:
        """``(command byte, payload)``, or None when more bytes are needed."""
        if len(self._buf) < 4:
            return None
        (length,) = struct.unpack_from("!I", self._buf)
        if length == 0:
            raise MilterProtocolError("empty packet")
        if length > self.max_packet:
            raise MilterProtocolError(f"packet of {length} bytes is over the {self.max_packet} limit")
        if len(self._buf) < 4 + length:
            return None
        cmd = bytes(self._buf[4:5])
        payload = bytes(self._buf[5:4 + length])
        del self._buf[:4 + length]
        return cmd, payload

    @property
    def pending(self) -> int:
        return len(self._buf)


@dataclass(frozen=True, slots=True)
class Negotiated:
    """The milter's answer to OPTNEG: what it may change, which steps it skips, its macros."""

    version: int
    actions: Action
    protocol: Proto
    macros: dict[Stage, tuple[str, ...]] = field(default_factory=dict)

    def skips(self, cmd: Cmd) -> bool:
        flag = SKIPPED.get(cmd)
        return flag is not None and bool(self.protocol & flag)

    def replies(self, cmd: Cmd) -> bool:
        flag = NO_REPLY.get(cmd)
        return flag is None or not self.protocol & flag


def parse_optneg(payload: bytes, offered_actions: int = ALL_ACTIONS,
                 offered_proto: int = OFFERED_PROTO) -> Negotiated:
    """The OPTNEG reply; a version below 2 or a step we did not offer is refused."""
    if len(payload) < 12:
        raise MilterProtocolError("short option negotiation reply")
    version, actions, proto = struct.unpack_from("!III", payload)
    if version < 2:
        raise MilterProtocolError(f"milter protocol version {version} is too old")
    if actions & ~int(offered_actions):
        raise MilterProtocolError(f"milter asks for actions {actions:#x}, offered {offered_actions:#x}")
    if proto & ~int(offered_proto) & 0x1FFFFF:  # the MDS_* size bits above are advisory
        raise MilterProtocolError(f"milter asks for protocol steps {proto:#x}, offered {offered_proto:#x}")
    wanted: dict[Stage, tuple[str, ...]] = {}
    rest = payload[12:]
    while rest:  # SMFIR_SETSYMLIST data (libmilter smfi_setsymlist): stage, "macro macro\0"
        if len(rest) < 5 or b"\0" not in rest[4:]:
            raise MilterProtocolError("bad macro list in option negotiation")
        (stage,) = struct.unpack_from("!I", rest)
        names, _, rest = rest[4:].partition(b"\0")
        try:
            wanted[Stage(stage)] = tuple(names.decode("ascii", "replace").split())
        except ValueError:
            raise MilterProtocolError(f"unknown macro stage {stage}") from None
    return Negotiated(min(version, VERSION), Action(actions), Proto(proto & 0x1FFFFF), wanted)


# Responses after decoding: a verdict ends a command; modifications come before the
# end-of-message verdict.

class Verdict(enum.Enum):
    ACCEPT = "accept"  # this milter is done with the message (or the connection, at CONNECT)
    CONTINUE = "continue"
    REJECT = "reject"
    TEMPFAIL = "tempfail"
    DISCARD = "discard"
    SKIP = "skip"  # no more body chunks, please
    SHUTDOWN = "shutdown"  # SMFIR_SHUTDOWN / CONN_FAIL: the milter is going away, treat as tempfail
    REPLY = "reply"  # SMFIR_REPLYCODE: reject or tempfail with the milter's own text


@dataclass(frozen=True, slots=True)
class Decision:
    verdict: Verdict
    code: int = 0  # REPLY only
    status: str | None = None
    text: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Progress:
    """SMFIR_PROGRESS: still working, restart the timeout."""


@dataclass(frozen=True, slots=True)
class AddHeader:
    name: str
    value: str


@dataclass(frozen=True, slots=True)
class InsHeader:
    index: int  # 0: at the top
    name: str
    value: str


@dataclass(frozen=True, slots=True)
class ChgHeader:
    index: int  # the n-th (1-based) field of that name
    name: str
    value: str  # empty: delete it


@dataclass(frozen=True, slots=True)
class AddRcpt:
    address: str  # without angle brackets
    args: str = ""


@dataclass(frozen=True, slots=True)
class DelRcpt:
    address: str


@dataclass(frozen=True, slots=True)
class ChgFrom:
    address: str
    args: str = ""


@dataclass(frozen=True, slots=True)
class ReplBody:
    chunk: bytes  # pieces are concatenated: the new body


@dataclass(frozen=True, slots=True)
class Quarantine:
    reason: str


Modification = AddHeader | InsHeader | ChgHeader | AddRcpt | DelRcpt | ChgFrom | ReplBody | Quarantine
Response = Decision | Progress | Modification

# Which action flag each modification needs (a milter doing what it did not negotiate is broken).
NEEDS = {AddHeader: Action.ADDHDRS, InsHeader: Action.ADDHDRS, ChgHeader: Action.CHGHDRS,
         AddRcpt: Action.ADDRCPT, DelRcpt: Action.DELRCPT, ChgFrom: Action.CHGFROM,
         ReplBody: Action.CHGBODY, Quarantine: Action.QUARANTINE}

_SIMPLE = {Rsp.ACCEPT: Verdict.ACCEPT, Rsp.CONTINUE: Verdict.CONTINUE, Rsp.REJECT: Verdict.REJECT,
           Rsp.TEMPFAIL: Verdict.TEMPFAIL, Rsp.DISCARD: Verdict.DISCARD, Rsp.SKIP: Verdict.SKIP,
           Rsp.SHUTDOWN: Verdict.SHUTDOWN, Rsp.CONN_FAIL: Verdict.SHUTDOWN}


def _strings(payload: bytes, n: int, what: str, optional: int = 0) -> list[str]:
    """``n`` NUL-terminated strings (the last ``optional`` may be missing)."""
    parts = payload.split(b"\0")
    if parts[-1] != b"":
        raise MilterProtocolError(f"{what}: string not NUL-terminated")
    parts = parts[:-1]
    if not n - optional <= len(parts) <= n:
        raise MilterProtocolError(f"{what}: expected {n} strings, got {len(parts)}")
    parts += [b""] * (n - len(parts))
    return [p.decode("utf-8", "surrogateescape") for p in parts]


def _angle(address: str) -> str:
    a = address.strip()
    return a[1:-1] if a.startswith("<") and a.endswith(">") else a


def parse_reply_code(text: str) -> Decision:
    """SMFIR_REPLYCODE's ``"550 5.7.1 text"`` (lines may be ``"550-..."`` joined by CRLF)."""
    lines = [ln for ln in text.replace("\r\n", "\n").split("\n") if ln]
    if not lines:
        raise MilterProtocolError("empty reply code")
    code_s = lines[0][:3]
    if not (code_s.isdigit() and code_s[0] in "45"):
        raise MilterProtocolError(f"reply code {code_s!r} is not 4xx or 5xx")
    status = None
    out = []
    for ln in lines:
        if ln[:3] != code_s or ln[3:4] not in ("", " ", "-"):
            raise MilterProtocolError("reply code lines disagree")
        rest = ln[4:]
        head, _, tail = rest.partition(" ")
        parts = head.split(".")
        if len(parts) == 3 and all(p.isdigit() for p in parts) and parts[0] == code_s[0]:
            status = status or head  # RFC 3463 enhanced code, given once to smtp.replies.r
            rest = tail
        if not rest.isprintable():
            raise MilterProtocolError("reply text is not printable")
        out.append(rest)
    return Decision(Verdict.REPLY, int(code_s), status, tuple(out))


def parse_response(cmd: bytes, payload: bytes) -> Response:
    """One response packet as a typed event; anything else is a :class:`MilterProtocolError`."""
    try:
        rsp = Rsp(cmd)
    except ValueError:
        raise MilterProtocolError(f"unknown response {cmd!r}") from None
    if rsp in _SIMPLE:
        return Decision(_SIMPLE[rsp])
    if rsp is Rsp.PROGRESS:
        return Progress()
    if rsp is Rsp.REPLYCODE:
        return parse_reply_code(_strings(payload, 1, "reply code")[0])
    if rsp is Rsp.ADDHEADER:
        name, value = _strings(payload, 2, "add header")
        return AddHeader(_field_name(name), value)
    if rsp in (Rsp.INSHEADER, Rsp.CHGHEADER):
        if len(payload) < 4:
            raise MilterProtocolError("header change without an index")
        (index,) = struct.unpack_from("!I", payload)
        name, value = _strings(payload[4:], 2, "header change")
        if rsp is Rsp.INSHEADER:
            return InsHeader(index, _field_name(name), value)
        return ChgHeader(index, _field_name(name), value)
    if rsp is Rsp.ADDRCPT:
        return AddRcpt(_address(_strings(payload, 1, "add recipient")[0]))
    if rsp is Rsp.ADDRCPT_PAR:
        addr, args = _strings(payload, 2, "add recipient", optional=1)
        return AddRcpt(_address(addr), args)
    if rsp is Rsp.DELRCPT:
        return DelRcpt(_address(_strings(payload, 1, "delete recipient")[0]))
    if rsp is Rsp.CHGFROM:
        addr, args = _strings(payload, 2, "change sender", optional=1)
        return ChgFrom(_angle(addr), args)  # "<>" becomes "": the null sender is allowed
    if rsp is Rsp.REPLBODY:
        return ReplBody(payload)
    if rsp is Rsp.QUARANTINE:
        return Quarantine(_strings(payload, 1, "quarantine")[0])
    raise MilterProtocolError(f"response {cmd!r} out of place")  # OPTNEG/SETSYMLIST after negotiation


def _field_name(name: str) -> str:
    # RFC 5322 §2.2: printable ASCII except ":" and space.
    if not name or any(not 33 <= ord(c) <= 126 or c == ":" for c in name):
        raise MilterProtocolError(f"bad header field name {name[:80]!r}")
    return name


def _address(value: str) -> str:
    a = _angle(value)
    if not a or any(c in a for c in " \r\n\t<>"):
        raise MilterProtocolError(f"bad recipient address {value[:80]!r}")
    return a
