"""The DKIM header hash of the verifier (dkim._hash_headers: names lowered once, only the
selected fields canonicalized, each once a message) is dkimpy's ``hash_headers`` over
the whole canonicalized header block, byte for byte, whatever the fields and ``h=``."""

from __future__ import annotations

import hashlib

import dkim
from dkim.canonicalization import CanonicalizationPolicy
from hypothesis import given, settings
from hypothesis import strategies as st

from postroom.mailauth import canon
from postroom.mailauth import dkim as ours

_NAMES = st.sampled_from([b"From", b"from", b"FROM", b"To", b"Subject", b"DKIM-Signature", b"Received", b"X-a"])
_VALUES = st.lists(st.sampled_from([b" a@b.test", b"  x\t y ", b"\r\n\tfolded", b"\r\n more", b"", b" \t",
                                    b" b=abc+/=; bh=xyz", b"\xff", b";"]), max_size=6).map(b"".join)
_INCLUDE = st.lists(st.sampled_from([b"from", b"to", b"subject", b"dkim-signature", b"received", b"cc"]),
                    max_size=10)
_SIG = st.sampled_from([b" v=1; a=rsa-sha256; d=b.test; s=s; h=from:to; bh=AAAA; b=abc\r\n\tdef=\r\n",
                        b" v=1; b=; h=from", b" b =\r\n x y; d=b.test\r\n", b" a=1;b=zz"])


def _digest_dkimpy(c: bytes, fields: list[list[bytes]], include: list[bytes], sig: bytes) -> bytes:
    policy = CanonicalizationPolicy.from_c_value(c)
    h = hashlib.sha256()
    dkim.hash_headers(h, policy, policy.canonicalize_headers(fields), include, (b"DKIM-Signature", sig), {})
    return h.digest()


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(_NAMES, _VALUES), max_size=10), st.lists(_INCLUDE, min_size=1, max_size=3), _SIG,
       st.sampled_from([b"relaxed/relaxed", b"simple/simple", b"relaxed", b"simple/relaxed"]))
def test_header_hash_as_dkimpy(fields_: list[tuple[bytes, bytes]], includes: list[list[bytes]], sig: bytes,
                               c: bytes) -> None:
    fields = [[n, v + b"\r\n"] for n, v in fields_]
    policy = ours._policy(c)
    assert policy is not None
    names = [f[0].lower() for f in fields]
    done: dict[int, object] = {}  # shared by the signatures of one message, as in _verify_signature
    for include in includes:
        h = hashlib.sha256()
        ours._hash_headers(h, policy, fields, names, done, include, (b"DKIM-Signature", sig))
        assert h.digest() == _digest_dkimpy(c, [list(f) for f in fields], include, sig)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from([b"From: a@b.test", b"Subject: x", b" folded\t ", b"\tmore", b"To:  y",
                                 b"DKIM-Signature: v=1; b=abc", b"X: \xff"]), min_size=1, max_size=10))
def test_parsed_message_hashes_as_dkimpy(lines: list[bytes]) -> None:
    """From the message octets, through our header parse, as the verifier does."""
    if lines[0][:1] in (b" ", b"\t"):
        lines[0] = b"X:" + lines[0]
    message = b"\r\n".join(lines) + b"\r\n\r\nbody\r\n"
    fields, _body = canon.rfc822_parse(message)
    include = [b"from", b"subject", b"to", b"from", b"x"]
    policy = ours._policy(b"relaxed/relaxed")
    assert policy is not None
    h = hashlib.sha256()
    ours._hash_headers(h, policy, fields, [f[0].lower() for f in fields], {}, include, (b"DKIM-Signature", b" b=x"))
    assert h.digest() == _digest_dkimpy(b"relaxed/relaxed", dkim.rfc822_parse(message)[0], include, b" b=x")


def test_policy_is_dkimpys() -> None:
    for c in (b"relaxed/relaxed", b"simple", b"relaxed/simple"):
        got, want = ours._policy(c), CanonicalizationPolicy.from_c_value(c)
        assert got is not None and got.to_c_value() == want.to_c_value()
    assert ours._policy(b"bogus/relaxed") is None and ours._policy(b"a/b/c") is None
