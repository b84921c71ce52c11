"""ARC (RFC 8617): verify the chain on arriving mail, seal the mail Postroom passes on.

Glue around dkimpy's ``ARC``: dkimpy does the cryptography and canonicalization; this
module decides what is checked, answers dkimpy's key lookups through our resolver
(:class:`~.dnsbridge.SyncDns`), and fixes the places where dkimpy's behaviour would be
wrong or surprising for a mail server.

Decisions, verifying (:func:`verify_arc`):

* The chain's *structure* is checked here, before any lookup (RFC 8617 §5.2 steps 1-3):
  at most 50 sets (§4.2.1; instances above 50 fail), exactly one AAR, AMS and AS per
  instance, instances 1..N with no gap, ``cv=none`` on i=1 and ``cv=pass`` above, and a
  newest seal saying ``cv=fail`` ends the check as "fail" (§5.2 step 2; dkimpy answers
  ``None`` there). A field whose ``i=`` cannot be read makes the chain fail (§5.2 step
  3A): dkimpy would silently ignore it. Malformed input never raises: it is "fail"
  with a reason.
* Then dkimpy checks the signatures: the newest AMS (§5.2 step 4) and every AS (step 6).
  Older AMSes are not checked (they only feed the optional "oldest-pass", step 5, which
  we do not report); dkimpy would check each, at a key lookup and a hash of the whole
  body per set.
* A DNS failure that may go away (SERVFAIL, timeout, the per-message deadline) is
  "fail" too: RFC 8617 §4.4 and RFC 8601 know no ``temperror`` for ARC. Its reason
  starts with :data:`TEMPORARY` so that :func:`is_temporary` tells it apart: a
  forwarder should then *not* seal (sealing ``cv=fail`` would end a chain that is
  probably fine for the next hop, which can check it itself), and a DMARC override
  should not rely on it. A missing key record is a plain "fail".
* ``instances`` is the highest ``i=`` seen (0 when there is no ARC field).

Decisions, sealing (:func:`seal`):

* ``chain`` is authoritative for ``cv=``. dkimpy takes cv from the ``arc=`` result in
  our Authentication-Results field, so the copy of the message handed to dkimpy carries
  our A-R field(s) merged into one whose ``arc=`` is ``chain`` (the message itself is
  not changed: A-R is covered by no ARC signature).
* RFC 8617 §5.1.3, "once broken, the chain cannot be continued": if the newest seal on
  the message already says ``cv=fail``, nothing is added (``b""``). A chain found
  broken *here* is sealed with ``cv=fail``, its AS covering only the new set (§5.1.2;
  dkimpy does this). Nothing is added either when the message already has 50 sets
  (§4.2.1), or when ``chain`` is "fail" but no ARC field has a readable instance (i=1
  must carry ``cv=none``, §5.2 step 3C, so there is no set to mark).
* Contradictions are the caller's bug and raise :class:`ArcSealError`: ``chain`` "none"
  on a message with ARC fields, "pass" on one without a well-formed chain, no A-R field
  of ``authserv_id``, no ``From:`` to sign.
* RSA only: dkimpy 1.1 signs ARC with rsa-sha256 only, and its verifier (like most
  deployed ones) accepts nothing else for ARC. An Ed25519 key raises.
* The fields come back in dkimpy's order (AS, AMS, AAR) with the message's own line
  ending (that of its first line), ready to prepend.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass, field
from typing import Any, Sequence

import dkim
import dkim.util

from ..resolver import DnsTemporary, Resolver
from .canon import header_end, tag_list
from .dnsbridge import SyncDns, run_blocking
from .keys import DkimKey
from .model import ARC_RESULTS, ArcResult
from .spf import clean

log = logging.getLogger("postroom.mailauth")

MAX_SETS = 50  # RFC 8617 §4.2.1
TEMPORARY = "temporary DNS failure"
_AAR, _AMS, _AS = b"arc-authentication-results", b"arc-message-signature", b"arc-seal"
_ARC_FIELDS = (_AAR, _AMS, _AS)
_NAMES = {_AAR: "ARC-Authentication-Results", _AMS: "ARC-Message-Signature", _AS: "ARC-Seal"}
_AAR_INSTANCE = re.compile(rb"i[ \t]*=[ \t]*([0-9]{1,9})[ \t]*;")  # RFC 8617 §4.1.1
_DIGITS = re.compile(rb"[0-9]{1,9}")
_LOOSE_INSTANCE = re.compile(rb"(?:^|;)[ \t]*i[ \t]*=[ \t]*([0-9]{1,9})[ \t]*(?:;|$)")
_GRACE = 0.5  # seconds past the DNS deadline for the checks' own work


class ArcSealError(ValueError):
    """The message cannot be sealed as asked; the text says why (for the log)."""


def is_temporary(result: ArcResult) -> bool:
    """Whether a "fail" came from DNS trouble that may pass, not from the chain itself."""
    return result.result == "fail" and result.reason.startswith(TEMPORARY)


# -- the header section, byte for byte ---------------------------------------------------

def _split(message: bytes) -> tuple[list[bytes], bytes]:
    """The raw header fields (each with its continuation lines and line ends), and the
    rest of the message from the blank line on (b"" when there is none)."""
    fields: list[list[bytes]] = []
    pos = 0
    while pos < len(message):
        end = message.find(b"\n", pos)
        end = len(message) if end < 0 else end + 1
        line = message[pos:end]
        if line in (b"\n", b"\r\n"):
            break
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1].append(line)
        else:
            fields.append([line])
        pos = end
    return [b"".join(f) for f in fields], message[pos:]


def _name_value(raw: bytes) -> tuple[bytes, bytes]:
    name, _, value = raw.partition(b":")
    return name.lower(), value


def _unfold(value: bytes) -> bytes:
    return re.sub(rb"\r?\n(?=[ \t])", b"", value).strip()


def _line_ending(message: bytes) -> bytes:
    end = message.find(b"\n")
    return b"\r\n" if end > 0 and message[end - 1:end] == b"\r" else b"\n"


# -- the chain's structure (RFC 8617 §5.2 steps 1-3) ----------------------------------------

@dataclass(slots=True)
class _Chain:
    highest: int = 0  # the highest readable i=
    top_cv: bytes = b""  # cv= of the ARC-Seal with i=highest, when readable
    problem: str = ""  # why the structure is invalid ("" when it is not)
    sets: dict[int, dict[bytes, list[dict[bytes, bytes]]]] = field(default_factory=dict)


def _instance(name: bytes, value: bytes) -> tuple[int | None, dict[bytes, bytes], str]:
    """One field's i= and tags (none for an AAR), or a problem."""
    label = _NAMES[name]
    if name == _AAR:
        m = _AAR_INSTANCE.match(value)
        return (int(m.group(1)), {}, "") if m else (None, {}, f"{label} without i= first")
    try:
        tags = tag_list(value)
    except dkim.util.InvalidTagValueList:
        # Still counted at its i= when one can be read: the set it belongs to is broken,
        # and a sealer marking the chain failed must number its own set above it.
        m = _LOOSE_INSTANCE.search(value)
        return (int(m.group(1)) if m else None), {}, f"{label} with a malformed tag list"
    i = tags.get(b"i", b"")
    if not _DIGITS.fullmatch(i):
        return None, tags, f"{label} without a valid i="
    return int(i), tags, ""


def _chain(arc_fields: list[tuple[bytes, bytes]]) -> _Chain:
    c = _Chain()
    problems: list[str] = []
    for name, value in arc_fields:
        i, tags, problem = _instance(name, value)
        if problem:
            problems.append(problem)
        if i is None:
            continue
        c.highest = max(c.highest, i)
        c.sets.setdefault(i, {}).setdefault(name, []).append(tags)
    seals = c.sets.get(c.highest, {}).get(_AS, [])
    if len(seals) == 1:
        c.top_cv = seals[0].get(b"cv", b"").lower()
    if len(arc_fields) > 3 * MAX_SETS or c.highest > MAX_SETS:  # §4.2.1, §5.2 step 1
        c.problem = f"more than {MAX_SETS} ARC sets"
    elif c.top_cv == dkim.CV_Fail:  # §5.2 step 2
        c.problem = f"the chain was marked failed at i={c.highest}"
    elif problems:
        c.problem = problems[0]
    elif 0 in c.sets:
        c.problem = "an ARC set with i=0"
    else:
        c.problem = _set_problem(c)
    return c


def _set_problem(c: _Chain) -> str:
    """RFC 8617 §5.2 step 3: complete sets 1..N, cv=none on the first, cv=pass above."""
    for i in range(1, c.highest + 1):
        fields = c.sets.get(i)
        if fields is None:
            return f"ARC set i={i} is missing"
        for name in _ARC_FIELDS:
            n = len(fields.get(name, []))
            if n != 1:
                return f"ARC set i={i} has {n} {_NAMES[name]} fields"
        cv = fields[_AS][0].get(b"cv", b"").lower()
        want = dkim.CV_None if i == 1 else dkim.CV_Pass
        if cv != want:
            return f"ARC-Seal i={i} says cv={cv.decode('ascii', 'replace')}, not {want.decode()}"
    return ""


def _arc_fields(fields: list[bytes]) -> list[tuple[bytes, bytes]]:
    out = []
    for raw in fields:
        name, value = _name_value(raw)
        if name in _ARC_FIELDS:
            out.append((name, _unfold(value)))
    return out


# -- verifying ----------------------------------------------------------------------------

class _Verifier(dkim.ARC):  # type: ignore[misc]
    """dkimpy's ARC, checking only the newest ARC-Message-Signature (see the module doc)."""

    def __init__(self, message: bytes, newest: int) -> None:
        super().__init__(message)
        self.newest = newest

    def verify_sig(self, sig: dict[bytes, bytes], include_headers: Any, sig_header: tuple[bytes, bytes],
                   dnsfunc: Any) -> bool:
        i = sig.get(b"i", b"")
        if sig_header[0].lower() == _AMS and not (_DIGITS.fullmatch(i) and int(i) == self.newest):
            return False  # never looked at: dkimpy's verify() reads the newest AMS's result only
        return bool(super().verify_sig(sig, include_headers, sig_header, dnsfunc))


def _verify(message: bytes, dns: SyncDns) -> ArcResult:
    arc_fields = _arc_fields(_split(message)[0])
    if not arc_fields:
        return ArcResult("none")
    chain = _chain(arc_fields)
    if chain.problem:
        return ArcResult("fail", chain.highest, clean(chain.problem))
    try:
        cv, _, reason = _Verifier(message, chain.highest).verify(dnsfunc=dns.dkim_txt)
    except DnsTemporary as exc:
        return ArcResult("fail", chain.highest, clean(f"{TEMPORARY}: {exc}"))
    except dkim.DKIMException as exc:  # the header section dkimpy cannot parse
        return ArcResult("fail", chain.highest, clean(f"malformed message: {exc}"))
    except Exception as exc:  # dkimpy on input it does not expect (IndexError, ...): never raise
        log.debug("dkimpy failed on an ARC chain", exc_info=True)
        return ArcResult("fail", chain.highest, clean(f"malformed ARC header fields ({exc.__class__.__name__})"))
    if cv == dkim.CV_Pass:
        return ArcResult("pass", chain.highest)
    return ArcResult("fail", chain.highest, clean(str(reason)))


_RC = (b"rc-", b"RC-", b"Rc-", b"rC-")
_ARC_FIELD = re.compile(rb"(?im)^arc-(?:seal|message-signature|authentication-results)[ \t]*:")


def has_chain(message: bytes) -> bool:
    """Whether the header block has an ARC field at all (most mail has none)."""
    end = header_end(message)
    # Each ARC field name holds "rc-" in one of four cases: four scans at memory speed
    # rule most mail out before the case-blind, line-anchored pattern steps through it.
    if all(message.find(rc, 0, end) < 0 for rc in _RC):
        return False
    return _ARC_FIELD.search(message, 0, end) is not None


async def verify_arc(resolver: Resolver, message: bytes, timeout: float) -> ArcResult:
    """The chain validation status of ``message`` (RFC 8617 §5.2) as it arrived.

    Every key lookup goes through ``resolver`` and all of them share one deadline,
    ``timeout`` seconds from now; the answer comes within about that time whatever the
    nameservers do.
    """
    if not has_chain(message):  # most mail: no chain, no thread, no lookup
        return ArcResult("none")
    dns = SyncDns(resolver, timeout)
    try:
        return await asyncio.wait_for(run_blocking(_verify, message, dns), timeout + _GRACE)
    except asyncio.TimeoutError:
        return ArcResult("fail", 0, f"{TEMPORARY}: the ARC check took longer than {timeout:g}s")


# -- sealing ------------------------------------------------------------------------------

def _authserv_id(value: bytes) -> bytes:
    """The authserv-id of an Authentication-Results value (RFC 8601 §2.2), lower-case."""
    head = _unfold(value).split(b";", 1)[0].split()
    return head[0].lower() if head else b""


def _results(values: list[bytes]) -> list[str]:
    """The resinfo of our A-R fields, each as authres writes it (comments dropped)."""
    try:
        import authres  # dkimpy's ARC signing needs it too (dkimpy[ARC])
    except ImportError:
        raise ArcSealError("ARC sealing needs the authres package") from None

    out: list[str] = []
    for value in values:
        try:
            text = _unfold(value).decode("utf-8")
            parsed = authres.AuthenticationResultsHeader.parse("Authentication-Results: " + text)
        except (UnicodeDecodeError, authres.core.AuthResError) as exc:
            raise ArcSealError(f"our Authentication-Results field cannot be parsed: {exc}") from None
        out += [str(r) for r in parsed.results if str(r.method).lower() != "arc"]
    return out


def _dkimpy_input(fields: list[bytes], rest: bytes, authserv_id: str, chain: str, linesep: bytes) -> bytes:
    """The message with our A-R fields merged into one at the top saying ``arc=<chain>``."""
    ours, others = [], []
    for raw in fields:
        name, value = _name_value(raw)
        if name == b"authentication-results" and _authserv_id(value) == authserv_id.lower().encode():
            ours.append(value)
        else:
            others.append(raw)
    if not ours:
        raise ArcSealError(f"the message has no Authentication-Results field of {authserv_id}")
    payload = "; ".join([authserv_id, *_results(ours), f"arc={chain}"])
    return b"Authentication-Results: " + payload.encode("utf-8") + linesep + b"".join(others) + rest


def seal(message: bytes, key: DkimKey, authserv_id: str, chain: str, headers: Sequence[str] | None = None) -> bytes:
    """The ARC set (ARC-Seal, ARC-Message-Signature, ARC-Authentication-Results, RFC 8617
    §4.1) to prepend to ``message`` when Postroom passes it on, or b"" when none may be
    added (see the module doc). ``message`` carries our Authentication-Results field;
    ``chain`` is :func:`verify_arc`'s result for the message as it arrived ("none",
    "pass" or "fail"); ``headers`` the fields the AMS signs (dkimpy's default list, from
    RFC 6376 §5.4.1, when None). Raises :class:`ArcSealError` when it cannot seal.
    """
    if chain not in ARC_RESULTS:
        raise ArcSealError(f"chain must be one of {', '.join(ARC_RESULTS)}, not {chain!r}")
    if key.algorithm != "rsa":
        raise ArcSealError(f"ARC needs an RSA key (rsa-sha256); {key.record_name} is {key.algorithm}")
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", authserv_id):
        raise ArcSealError(f"{authserv_id!r} is not an authserv-id Postroom writes")
    fields, rest = _split(message)
    arc_fields = _arc_fields(fields)
    found = _chain(arc_fields)
    if chain == "none" and arc_fields:
        raise ArcSealError("chain 'none' for a message that carries ARC header fields")
    if found.top_cv == dkim.CV_Fail:
        return b""  # RFC 8617 §5.1.3: an earlier hop recorded the break
    if chain == "pass" and (not arc_fields or found.problem):
        raise ArcSealError(f"chain 'pass' for a message whose chain is not valid ({found.problem or 'no ARC sets'})")
    if (chain == "fail" and found.highest == 0) or found.highest >= MAX_SETS:
        return b""  # no set to mark failed; no room for a 51st (§4.2.1)
    linesep = _line_ending(message)
    try:
        wanted = [h.lower().encode("ascii") for h in headers] if headers is not None else None
        out = dkim.arc_sign(_dkimpy_input(fields, rest, authserv_id, chain, linesep), key.selector.encode(),
                            key.domain.encode(), key.dkimpy_private(), authserv_id.encode(),
                            include_headers=wanted, linesep=linesep)
    except (dkim.DKIMException, UnicodeEncodeError) as exc:
        raise ArcSealError(f"dkimpy refused to seal: {exc}") from None
    instance = found.highest + 1
    if len(out) != 3 or not out[0].startswith(b"ARC-Seal: i=%d; cv=%s;" % (instance, chain.encode())):
        raise ArcSealError(f"dkimpy did not produce ARC set i={instance} with cv={chain}")
    return b"".join(out)
