"""DKIM (RFC 6376): sign the mail that leaves, verify the mail that arrives.

Glue around dkimpy: dkimpy parses the message and the tag lists, canonicalizes, selects
the signed header fields and checks signatures; this module decides what is signed, what
each outcome is called (RFC 8601 §2.7.1), and answers dkimpy's key lookups through our
resolver (:class:`~.dnsbridge.SyncDns`).

Decisions, signing (:func:`sign`):

* ``relaxed/relaxed`` (§3.4.2, §3.4.4), ``a=rsa-sha256`` or ``ed25519-sha256`` (RFC 8463
  §3) after the key, one field per key, RSA and Ed25519 side by side (RFC 8463). No
  ``i=`` (it defaults to ``@d=``, §3.5), no ``l=`` (a body length lets anyone append
  content, §8.2), no ``x=``; ``t=`` is now (or ``now``).
* Which fields ``h=`` lists, for each name in ``headers`` (the order of first mention):
  a name listed twice or more is *oversigned* (§8.15): every instance in the message,
  plus one more that matches nothing, so adding an instance breaks the signature
  (``From`` in the default set). A name listed once: every instance present; when
  absent, it is listed anyway (a "null" entry, §5.4, so adding one breaks the
  signature) only if it is in :data:`GUARD_WHEN_ABSENT`: the fields a reader sees or
  that change how the body is shown (Reply-To, Subject, Content-Type...), which no
  honest relay adds. List-*, Resent-* and Sender fields are left out when absent:
  mailing lists and resenders add them, and signing their absence would break the
  signature of mail a list passes on untouched.
* Speed (signing is on every outgoing message's path): the private keys are loaded once
  per key and kept (:func:`_private_key`), the body is canonicalized and hashed once for
  all keys (both algorithms use SHA-256 with the same ``c=``), and the signature itself
  is made by ``cryptography`` (OpenSSL), not by dkimpy's pure-Python RSA, which took
  about 6 ms per RSA-2048 signature. dkimpy still canonicalizes and hashes the header
  fields (``dkim.hash_headers``), so what we sign is what its verifier checks.
* Header names that are not RFC 5322 field names, or hold ``;`` (it would end the tag),
  are skipped: a configuration mistake must not stop mail.

Decisions, verifying (:func:`verify`):

* One result per ``DKIM-Signature`` field, in header order, the first ``max_signatures``
  of them (the rest are logged and ignored: each costs a lookup and a body hash); ``()``
  for an unsigned message. Each signature is checked in its own worker thread
  (:func:`~.dnsbridge.run_blocking`), all at once: a slow lookup or a hostile field only
  spoils its own result. They share one deadline, ``timeout`` from now.
* Outcomes (RFC 6376 §6.1, RFC 8601 §2.7.1):

  ========================================================  ==========  ==================
  what                                                      result      where
  ========================================================  ==========  ==================
  verifies                                                  pass
  header hash does not verify (a signed field changed,      fail        §6.1.3
  one was added over an oversigned name)
  body hash does not verify                                 fail        §6.1.3
  key record revoked (empty ``p=``)                         fail        §3.6.1, §6.1.2
  RSA key shorter than ``min_key_bits``                     fail        RFC 8301 §3.2
  ``a=rsa-sha1``                                            fail        RFC 8301 §3.1
  no key record (NXDOMAIN, or no TXT record)                permerror   §6.1.2
  key record unreadable, not for e-mail, wrong key type     permerror   §6.1.2
  or hash for ``a=``
  field malformed: unreadable tag list, a required tag      permerror   §6.1.1
  missing, bad base64, unknown algorithm, ``h=`` without
  From, ``i=`` outside ``d=``, ``t=`` in the future,
  ``x=`` passed, over :data:`MAX_SIGNATURE_FIELD` octets
  DNS timeout, SERVFAIL, the deadline passed                temperror   §6.1.2
  ========================================================  ==========  ==================

  "No key" is ``permerror``: §6.1.2's PERMFAIL "no key for signature", and RFC 8601's
  "a later attempt is unlikely to produce a final result" (OpenDKIM 2.11 says ``fail``
  there). A revoked key is ``fail``, as in OpenDKIM: the signer has declared such
  signatures invalid, a verdict about this signature rather than an error. Nothing
  raises: whatever dkimpy throws on a hostile field is ``permerror``, and logged when it
  is not one of dkimpy's own errors.
* The key record is looked up and judged here first (dkimpy would report a missing,
  revoked or unreadable key as a plain ``False``), then handed to dkimpy's
  ``DKIM.verify(idx=i)`` so that it does not look it up again.
* ``b=`` and ``bh=`` are checked for base64 here before dkimpy's check, whose regular
  expression takes time quadratic in the length of a value of white space.
* ``header_b`` is the shortest prefix of ``b=`` (at least 8 characters) that no other
  signature of the message shares (RFC 6008 §4).
* ``reason`` is short, printable ASCII (:func:`.spf.clean`); it never quotes the
  signature's own text beyond the first words of dkimpy's message.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import re
import time
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

import dkim
import nacl.exceptions
import nacl.signing
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from dkim.canonicalization import CanonicalizationPolicy
from dkim.util import InvalidTagValueList

from ..resolver import DnsTemporary, Resolver
from . import canon
from .canon import header_end, strip_b_value
from .dnsbridge import SyncDns, pick_dkim, run_blocking
from .keys import DkimKey
from .model import DkimResult
from .settings import DEFAULT_SIGN_HEADERS
from .spf import clean

log = logging.getLogger("postroom.mailauth")
# dkimpy's own log lines (debug detail, and errors we classify ourselves): off by default.
_dkimpy_log = logging.getLogger("postroom.mailauth.dkimpy")
_dkimpy_log.propagate = False
_dkimpy_log.addHandler(logging.NullHandler())

canon.install()  # dkimpy's relaxed canonicalization, same output, 3-50x faster (see canon.py)
_RELAXED = CanonicalizationPolicy.from_c_value(b"relaxed/relaxed")

# Fields signed even when absent (see the module docstring): RFC 5322 §3.6's originator,
# destination, identification and informational fields, and RFC 2045's MIME fields. Not
# Sender: mailing list software (Mailman) adds one to mail it otherwise leaves intact.
GUARD_WHEN_ABSENT = frozenset({
    "from", "reply-to", "to", "cc", "subject", "date", "message-id", "in-reply-to", "references",
    "mime-version", "content-type", "content-transfer-encoding",
})
# RFC 5322 §3.6.8 ftext, without ";" (it would end the h= tag, RFC 6376 §3.2).
_FIELD_NAME = re.compile(r"^[!-9<-~]+$")
WIDTH = 76  # fold the DKIM-Signature field before this column (RFC 5322 §2.1.1: 78 SHOULD)

INLINE_BODY = 32768  # octets of body verified on the event loop (see verify)
MAX_SIGNATURE_FIELD = 16384  # octets; real ones are under 2 KiB (an RSA-8192 b= is 1,368)
HEADER_B_MIN = 8  # RFC 6008 §4
_B64 = re.compile(rb"^[A-Za-z0-9+/]*={0,2}$")
# What \s matches in a bytes pattern: bytes.translate(None, _WS) drops it as re.sub(rb"\s+",
# b"", ...) did, without the regex engine (b= and bh= values are stripped on every message).
_WS = b" \t\n\r\x0b\x0c"
_B_TAG_LOOSE = re.compile(rb"(?:^|;)\s*b\s*=([^;]*)")  # compiled once: asked of every signature
_H_SEP = re.compile(rb"\s*:\s*")  # between the names of h=


# -- signing ------------------------------------------------------------------------------

PrivateKey = rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
PublicKey = rsa.RSAPublicKey | nacl.signing.VerifyKey


@lru_cache(maxsize=256)
def _private_key(path: Path, algorithm: str, created: float) -> PrivateKey:
    """The key, parsed once. ``created`` is in the cache key because a selector can be
    deleted and made again: a new key under the same path."""
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if algorithm == "rsa" and isinstance(key, rsa.RSAPrivateKey):
        return key
    if algorithm == "ed25519" and isinstance(key, ed25519.Ed25519PrivateKey):
        return key
    raise ValueError(f"{path}: not an {algorithm} private key")


def signed_fields(present: Sequence[bytes], headers: Sequence[str]) -> list[bytes]:
    """The ``h=`` list (lower case) for a message whose header field names are ``present``
    (in order) when ``headers`` asks for these names; see the module docstring."""
    have: dict[bytes, int] = {}
    for name in present:
        n = name.lower()
        have[n] = have.get(n, 0) + 1
    listed: dict[str, int] = {}
    for h in headers:
        h = h.strip().lower()
        if _FIELD_NAME.match(h):
            listed[h] = listed.get(h, 0) + 1
    out: list[bytes] = []
    for h, times in listed.items():
        name = h.encode("ascii")
        count = have.get(name, 0)
        if times >= 2:  # oversigned (RFC 6376 §8.15)
            count += 1
        elif count == 0 and h in GUARD_WHEN_ABSENT:  # a null entry (§5.4)
            count = 1
        out += [name] * count
    return out


def _fold_tags(tags: list[tuple[bytes, bytes]], column: int) -> tuple[bytes, int]:
    """``tag=value;`` items joined by a space, or by CRLF TAB where a line would pass
    :data:`WIDTH`. ``h=`` may also break after any of its colons (RFC 6376 §3.5 allows
    FWS there). Returns the text and the column the last line ends at."""
    out = bytearray()
    for tag, val in tags:
        pieces = [p + b":" for p in val.split(b":")[:-1]] + [val.split(b":")[-1]] if tag == b"h" else [val]
        pieces[0] = tag + b"=" + pieces[0]
        pieces[-1] += b";"
        for i, piece in enumerate(pieces):
            sep = b" " if i == 0 else b""
            if column + len(sep) + len(piece) > WIDTH and column > 1:
                out += b"\r\n\t"
                column = 1
                sep = b""
            out += sep + piece
            column += len(sep) + len(piece)
    return bytes(out), column


def _fold_b64(value: bytes, column: int) -> bytes:
    """The signature after ``b=``: the rest of the line, then lines of up to WIDTH."""
    first = max(WIDTH - column, 0)
    out = [value[:first]]
    for i in range(first, len(value), WIDTH - 1):
        out.append(b"\r\n\t" + value[i:i + WIDTH - 1])
    return b"".join(out)


def _sign_one(key: DkimKey, canon_headers: list[Any], include: list[bytes], bodyhash: bytes, t: int) -> bytes:
    tags = [(b"v", b"1"), (b"a", key.signature_algorithm), (b"c", b"relaxed/relaxed"),
            (b"d", key.domain.encode("ascii")), (b"s", key.selector.encode("ascii")),
            (b"t", str(t).encode("ascii")), (b"bh", bodyhash), (b"h", b":".join(include))]
    name = b"DKIM-Signature"
    text, column = _fold_tags(tags, len(name) + 1)
    # b= last and empty: the field as hashed is the field as sent, minus b='s value (§3.7).
    if column + 3 > WIDTH:
        text += b"\r\n\tb="
        column = 3
    else:
        text += b" b="
        column += 3
    h = hashlib.sha256()
    dkim.hash_headers(h, _RELAXED, canon_headers, include, (name, text), dict(tags))
    digest = h.digest()
    priv = _private_key(key.path, key.algorithm, key.created)
    if isinstance(priv, rsa.RSAPrivateKey):  # RFC 8017 RSASSA-PKCS1-v1_5 over SHA-256
        sig = priv.sign(digest, padding.PKCS1v15(), Prehashed(hashes.SHA256()))
    else:  # RFC 8463 §3: Ed25519 over the SHA-256 digest
        sig = priv.sign(digest)
    return name + b":" + text + _fold_b64(base64.b64encode(sig), column) + b"\r\n"


def sign(message: bytes, keys: Sequence[DkimKey], headers: Sequence[str] = DEFAULT_SIGN_HEADERS,
         now: int | None = None) -> bytes:
    """The DKIM-Signature header fields (CRLF-terminated, ready to prepend) for
    ``message`` (CRLF line ends, header + body), one per key, in the order of ``keys``.

    ``b""`` when ``keys`` is empty. Raises :class:`dkim.MessageFormatError` when the
    header block cannot be read, :class:`ValueError` when ``headers`` lacks ``from`` or
    a key file does not hold a key of its algorithm, :class:`OSError` when a key file
    cannot be read.
    """
    if not keys:
        return b""
    try:
        fields, body = canon.rfc822_parse(message)
    except IndexError:  # a continuation line before any field
        raise dkim.MessageFormatError("message starts with a continuation line") from None
    canon_headers = _RELAXED.canonicalize_headers(fields)
    bodyhash = base64.b64encode(hashlib.sha256(_RELAXED.canonicalize_body(body)).digest())
    include = signed_fields([f[0] for f in fields], headers)
    if b"from" not in include:
        raise ValueError("From must be signed (RFC 6376 §5.4)")
    t = int(time.time()) if now is None else int(now)
    return b"".join(_sign_one(k, canon_headers, include, bodyhash, t) for k in keys)


# -- verifying ----------------------------------------------------------------------------

def _text(value: bytes | None) -> str:
    if value and len(value) <= 255:  # the usual: a key a hostile field makes is bounded
        return _short_text(value)
    return clean(value.decode("utf-8", "replace"), 255) if value else ""


@lru_cache(maxsize=4096)  # pure: a sender's d=, s= and a= are the same on each message
def _short_text(value: bytes) -> str:
    return clean(value.decode("utf-8", "replace"), 255)


def _b_values(raw: list[bytes]) -> list[bytes]:
    """Each field's b= value without white space, b"" when unreadable. A loose scan: a
    malformed field still gets a header.b when it has a b= tag."""
    out = []
    for value in raw:
        m = _B_TAG_LOOSE.search(value)
        b = m.group(1).translate(None, _WS) if m else b""
        out.append(b if _B64.match(b) else b"")
    return out


def header_b_prefixes(values: list[bytes]) -> list[str]:
    """RFC 6008 §4: the shortest prefix (at least 8) that tells each signature apart."""
    out = []
    for i, v in enumerate(values):
        n = HEADER_B_MIN
        others = [w for j, w in enumerate(values) if j != i and w != v]
        while n < len(v) and any(w.startswith(v[:n]) for w in others):
            n += 1
        out.append(v[:n].decode("ascii"))
    return out


class _Outcome(Exception):
    """Ends a check early with its result; raised and caught inside :func:`_check_one`."""

    def __init__(self, result: str, reason: str) -> None:
        super().__init__(reason)
        self.result = result
        self.reason = reason


def _dkimpy_reason(exc: Exception) -> str:
    """dkimpy's message up to its first parenthesis or colon (what follows quotes the field)."""
    text = str(exc).split(" (", 1)[0].split(": ", 1)[0]
    text = re.sub(r"\bb'([^']*)'", r"\1", text)  # dkimpy formats its bytes tags with %s
    return clean(text, 80) or exc.__class__.__name__


def _check_tags(tags: dict[bytes, bytes]) -> None:
    """The field's own checks (RFC 6376 §6.1.1), dkimpy's and ours; raises :class:`_Outcome`."""
    for tag in (b"b", b"bh"):  # before dkimpy's regex, see the module docstring
        if tag in tags and not _B64.match(tags[tag].translate(None, _WS)):
            raise _Outcome("permerror", f"{tag.decode()}= is not valid base64")
    try:
        dkim.validate_signature_fields(tags)
    except dkim.ValidationError as exc:
        raise _Outcome("permerror", _dkimpy_reason(exc)) from None
    except (IndexError, KeyError, ValueError):  # dkimpy's i=/d= check indexes past short values
        raise _Outcome("permerror", "i= is not within d=") from None
    if tags[b"a"].lower() == b"rsa-sha1":
        raise _Outcome("fail", "rsa-sha1 is not accepted (RFC 8301)")
    signed = [h.strip().lower() for h in tags[b"h"].split(b":")]
    if b"from" not in signed:
        raise _Outcome("permerror", "From is not signed")


@lru_cache(maxsize=1024)
def _judge_key(name: bytes, record: bytes) -> tuple[str, str] | tuple[bytes, int, PublicKey]:
    """A key record, judged once per distinct record (RFC 6376 §3.6.1, §6.1.2): either
    ``(result, reason)`` or ``(k=, bits, public key)``. Cached: a sender's key record is
    the same on every message, and parsing it (ASN.1) costs more than verifying."""
    try:
        rec = canon.tag_list(record)
    except InvalidTagValueList:
        return "permerror", "key record unreadable"
    if b"p" in rec and not rec[b"p"].translate(None, _WS):
        return "fail", "key revoked"
    if b"h" in rec and b"sha256" not in [h.strip() for h in rec[b"h"].split(b":")]:
        return "permerror", "key record does not allow sha256"
    try:
        _pk, bits, ktag, tlsrpt = dkim.evaluate_pk(name, record)
    except dkim.DKIMException as exc:
        return "permerror", "key record unusable: " + _dkimpy_reason(exc)
    except Exception:  # binascii.Error and other parse errors on a hostile record
        return "permerror", "key record unusable"
    if ktag is None or tlsrpt:  # s= names another service (RFC 6376 §3.6.1; RFC 8460 for tlsrpt)
        return "permerror", "key is not for e-mail"
    data = base64.b64decode(rec[b"p"].translate(None, _WS))
    try:
        if ktag == b"ed25519":  # libsodium's verify: twice as fast as OpenSSL's here
            return ktag, bits, nacl.signing.VerifyKey(data)
        pub = serialization.load_der_public_key(data)
    except Exception:
        return "permerror", "key record unusable"
    if not isinstance(pub, rsa.RSAPublicKey):
        return "permerror", "key record unusable"
    return ktag, pub.key_size, pub


def _fetch_key(dns: SyncDns, tags: dict[bytes, bytes], min_key_bits: int) -> PublicKey:
    """The public key for the signature, judged (RFC 6376 §6.1.2); raises :class:`_Outcome`."""
    name = tags[b"s"] + b"._domainkey." + tags[b"d"]
    try:
        record = dns.dkim_txt(name)
    except DnsTemporary as exc:
        raise _Outcome("temperror", clean(f"key lookup failed: {exc}", 120)) from None
    if record is None:
        raise _Outcome("permerror", "no key for signature")
    judged = _judge_key(name, record)
    if len(judged) == 2:
        raise _Outcome(*judged)  # type: ignore[misc]
    ktag, bits, pub = judged
    if tags[b"a"].lower().split(b"-", 1)[0] != ktag:
        raise _Outcome("permerror", f"{ktag.decode()} key for a={_text(tags[b'a'])}")
    if ktag == b"rsa" and bits < min_key_bits:
        raise _Outcome("fail", f"RSA key of {bits} bits is too short")
    return pub


def _body_hash(body: bytes, tags: dict[bytes, bytes], canon: CanonicalizationPolicy,
               memo: dict[tuple[bytes, bytes | None], Any]) -> bytes:
    """SHA-256 of the canonicalized body (``l=`` octets of it when given), computed once per
    message for each canonicalization: the RSA and Ed25519 signatures of one signer share it."""
    key = (canon.body_algorithm.name, tags.get(b"l"))
    got = memo.get(key)
    if got is None:
        canonical = canon.body_algorithm.canonicalize_body(body)
        if b"l" in tags:
            canonical = canonical[:int(tags[b"l"])]  # validate_signature_fields checked it is a number
        got = memo[key] = hashlib.sha256(canonical).digest()
    return got


def _hash_headers(h: Any, canon: CanonicalizationPolicy, fields: list[Any], names: list[bytes],
                  done: dict[int, Any], include: list[bytes], field: tuple[bytes, bytes]) -> None:
    """``dkim.hash_headers(h, canon, canon.canonicalize_headers(fields), include, field, ...)``,
    byte for byte (tests/unit/mailauth/test_dkim_hash.py), with less work:

    * the fields' lower-case names (``names``) computed once per message rather than once
      per signature and listed name;
    * only the fields that ``h=`` selects canonicalized, each once per message and
      canonicalization (``done``, by index): the other DKIM-Signature fields, Received
      and the like, most of a header block and all of its folded lines, never are.

    Selecting by the raw names is selecting by the canonical ones: both canonicalizations
    keep a name as it is but for case (relaxed also strips trailing blanks, and a name
    from :func:`canon.rfc822_parse` has none). RFC 6376 §5.4.2: each name in ``h=``
    takes the last instance not yet taken, from the bottom up; a name with none left
    adds nothing."""
    selected: list[Any] = []
    # Each name's fields, top to bottom: ``h=`` lists many names a message lacks (the
    # default oversigned set has 28), and a scan of every field for each cost more than
    # the rest of the header hash.
    where: dict[bytes, list[int]] = {}
    for i, n in enumerate(names):
        where.setdefault(n, []).append(i)
    taken: dict[bytes, int] = {}
    for name in include:
        found = where.get(name)
        if found is None:
            continue
        k = taken.get(name, 0) + 1
        if k > len(found):  # every instance taken already
            continue
        taken[name] = k
        i = found[-k]
        got = done.get(i)
        if got is None:
            got = done[i] = canon.canonicalize_headers([fields[i]])[0]
        selected.append(got)
    sig = canon.canonicalize_headers([(field[0], strip_b_value(field[1]))])
    for x, y in selected + [(x, y.rstrip()) for x, y in sig]:
        h.update(x)
        h.update(b":")
        h.update(y)


@lru_cache(maxsize=64)
def _policy(c: bytes) -> CanonicalizationPolicy | None:
    """dkimpy's policy for a ``c=`` value, ``None`` when unknown: made once per value (a
    policy holds nothing but the two algorithms, and nothing changes it)."""
    try:
        return CanonicalizationPolicy.from_c_value(c)
    except dkim.InvalidCanonicalizationPolicyError:
        return None


def _verify_signature(fields: list[Any], body: bytes, field: tuple[bytes, bytes], tags: dict[bytes, bytes],
                      pub: PublicKey, memo: dict[tuple[bytes, bytes | None], Any]) -> bool:
    """RFC 6376 §6.1.3: the body hash, then the header hash against ``b=``; raises
    :class:`_Outcome` for a body hash that does not match.

    dkimpy canonicalizes the header fields, and :func:`_hash_headers` selects and hashes
    them exactly as ``dkim.hash_headers`` (its own verifier's) does; the public-key
    operation is OpenSSL's (cryptography), not dkimpy's pure-Python RSA, which costs ten
    times more.
    """
    canon = _policy(tags.get(b"c", b"simple/simple"))
    if canon is None:
        raise _Outcome("permerror", "unknown canonicalization")
    if _body_hash(body, tags, canon, memo) != base64.b64decode(tags[b"bh"].translate(None, _WS)):
        raise _Outcome("fail", "body hash did not verify")
    include = [x.lower() for x in _H_SEP.split(tags[b"h"])]
    if b"from" in include:  # as dkimpy: a second From added in transit breaks the signature
        include.append(b"from")
    h = hashlib.sha256()
    names = memo.get((b"names", None))
    if names is None:  # as the body: once a message for all the signatures
        names = memo[(b"names", None)] = [f[0].lower() for f in fields]
    hkey = (b"headers:" + canon.header_algorithm.name, None)
    done = memo.get(hkey)
    if done is None:  # the fields canonicalized so far, by index: once per canonicalization
        done = memo[hkey] = {}
    _hash_headers(h, canon, fields, names, done, include, field)
    signature = base64.b64decode(tags[b"b"].translate(None, _WS))
    try:
        if isinstance(pub, rsa.RSAPublicKey):  # RFC 8017 RSASSA-PKCS1-v1_5 over SHA-256
            pub.verify(signature, h.digest(), padding.PKCS1v15(), Prehashed(hashes.SHA256()))
        else:  # RFC 8463 §3: Ed25519 over the SHA-256 digest
            pub.verify(h.digest(), signature)
    except (InvalidSignature, nacl.exceptions.BadSignatureError, ValueError):
        return False
    return True


def _check_one(fields: list[Any], body: bytes, idx: int, field: tuple[bytes, bytes], header_b: str, dns: SyncDns,
               min_key_bits: int, memo: dict[tuple[bytes, bytes | None], Any] | None = None,
               parsed: dict[bytes, bytes] | None = None) -> DkimResult:
    """The result for the ``idx``-th DKIM-Signature field; in a worker thread, never raises.
    ``parsed``: the field's tags when the caller already parsed them."""
    raw = field[1]
    if len(raw) > MAX_SIGNATURE_FIELD:
        return DkimResult("permerror", header_b=header_b, reason="signature field too long")
    try:
        tags = canon.tag_list(raw) if parsed is None else parsed
    except InvalidTagValueList:
        return DkimResult("permerror", header_b=header_b, reason="signature field unreadable")
    d, s, a, i = (_text(tags.get(t)) for t in (b"d", b"s", b"a", b"i"))

    def result(r: str, reason: str = "") -> DkimResult:
        return DkimResult(r, domain=d.lower(), selector=s, algorithm=a.lower(), header_b=header_b, identity=i,
                          reason=reason)

    try:
        _check_tags(tags)
        pub = _fetch_key(dns, tags, min_key_bits)
        ok = _verify_signature(fields, body, field, tags, pub, {} if memo is None else memo)
        return result("pass") if ok else result("fail", "signature did not verify")
    except _Outcome as out:
        return result(out.result, out.reason)
    except Exception as exc:  # a hostile field that dkimpy did not expect: its verdict, not ours to crash on
        log.warning("DKIM signature %d (d=%s s=%s) could not be checked: %r", idx + 1, d, s, exc, exc_info=True)
        return result("permerror", "signature could not be processed")


def _signatures(message: bytes) -> tuple[list[Any], bytes, list[tuple[bytes, bytes]]] | None:
    """The parsed header fields, the body and each DKIM-Signature field (name, value);
    ``None`` when the header block cannot be read."""
    try:
        fields, body = canon.rfc822_parse(message)
    except (dkim.MessageFormatError, IndexError):
        return None
    return fields, body, [(n, v) for n, v in fields if n.lower() == b"dkim-signature"]


_SIGNED = re.compile(rb"(?im)^dkim-signature[ \t]*:")


class _Keys:
    """The key records of a message's signatures, fetched on the event loop before the
    checks run; stands in for :class:`SyncDns` in :func:`_fetch_key`."""

    def __init__(self, records: dict[bytes, bytes | None | DnsTemporary]) -> None:
        self.records = records

    def dkim_txt(self, name: bytes, timeout: float = 5) -> bytes | None:
        got = self.records.get(name.lower().rstrip(b"."))
        if isinstance(got, DnsTemporary):
            raise got
        return got


def _parse_tags(raw: bytes) -> dict[bytes, bytes] | None:
    """The field's tags, ``None`` when unreadable or too long (then :func:`_check_one`
    parses it again to say why)."""
    if len(raw) > MAX_SIGNATURE_FIELD:
        return None
    try:
        return canon.tag_list(raw)
    except InvalidTagValueList:
        return None


def _key_name(tags: dict[bytes, bytes] | None) -> bytes | None:
    if tags is None:
        return None
    s, d = tags.get(b"s"), tags.get(b"d")
    if not s or not d:
        return None
    return (s + b"._domainkey." + d).lower().rstrip(b".")


async def _fetch_keys(resolver: Resolver, names: set[bytes], timeout: float) -> _Keys:
    """Every key record at once, each bounded by ``timeout`` (the answers' own TTLs cache them)."""
    async def one(name: bytes) -> bytes | None | DnsTemporary:
        try:
            text = name.decode("ascii")
        except UnicodeDecodeError:
            return None  # no such name can exist in DNS: as "no key"
        try:
            if resolver.settings.lifetime <= timeout or resolver.has_answer(text, "TXT"):  # gives up first, or cached
                records = await resolver.txt(text)
            else:
                records = await asyncio.wait_for(resolver.txt(text), timeout)
        except asyncio.TimeoutError:
            return DnsTemporary(f"DNS lookup of {text} TXT timed out")
        except DnsTemporary as exc:
            return exc
        return pick_dkim(records or [])
    names_list = sorted(names)
    if all(resolver.has_answer(n.decode("ascii", "replace"), "TXT") for n in names_list):
        found = [await one(n) for n in names_list]  # all cached: no task to wait on
    else:
        found = await asyncio.gather(*(one(n) for n in names_list))
    return _Keys(dict(zip(names_list, found)))


def _check_all(fields: list[Any], body: bytes, sigs: list[tuple[bytes, bytes]], header_b: list[str], keys: _Keys,
               min_key_bits: int, parsed: list[dict[bytes, bytes] | None]) -> tuple[DkimResult, ...]:
    memo: dict[tuple[bytes, bytes | None], Any] = {}
    return tuple(_check_one(fields, body, idx, field, header_b[idx], keys, min_key_bits, memo,  # type: ignore[arg-type]
                            parsed[idx])
                 for idx, field in enumerate(sigs))


async def verify(resolver: Resolver, message: bytes, timeout: float, min_key_bits: int = 1024,
                 max_signatures: int = 10) -> tuple[DkimResult, ...]:
    """One result per DKIM-Signature (up to ``max_signatures``; the rest ignored and
    logged), in header order; ``()`` when unsigned. Never raises for any message.

    The key records are fetched first, all at once, on the event loop; then the CPU part
    (canonicalization, hashes, the public-key operations) runs for every signature
    together: on the loop for a body of up to :data:`INLINE_BODY` octets (about 0.2 ms a
    signature, less than a hand-off to a thread costs), in one worker thread for larger
    ones, so that a big message never holds the loop.
    """
    if not _SIGNED.search(message, 0, header_end(message)):
        return ()  # unsigned: no parse, no thread
    parsed = _signatures(message)
    if parsed is None:  # dkimpy cannot read the header block, so no signature can verify
        return (DkimResult("permerror", reason="message header unreadable"),)
    fields, body, sigs = parsed
    if not sigs:
        return ()
    if len(sigs) > max_signatures:
        log.info("DKIM: %d signatures, the last %d not checked (limit %d)", len(sigs), len(sigs) - max_signatures,
                 max_signatures)
        sigs = sigs[:max_signatures]
    raw = [v for _n, v in sigs]
    header_b = header_b_prefixes(_b_values(raw))
    tags = [_parse_tags(v) for v in raw]  # once per field, for the key names and the checks
    names = {n for n in map(_key_name, tags) if n is not None}
    keys = await _fetch_keys(resolver, names, timeout)
    if len(body) <= INLINE_BODY:  # less work than the hand-off to a thread would be
        return _check_all(fields, body, sigs, header_b, keys, min_key_bits, tags)
    return await run_blocking(_check_all, fields, body, sigs, header_b, keys, min_key_bits, tags)
