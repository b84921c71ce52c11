"""DKIM signing and verification (RFC 6376, RFC 8463, RFC 8301) through dkimpy, every key
lookup answered by a real DNS server on loopback (tests/dnsfixture.py)."""

from __future__ import annotations

import asyncio
import base64
import os
import random
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import dkim
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # tests/dnsfixture.py

from dnsfixture import DnsFixture  # noqa: E402
from postroom.mailauth.dkim import (  # noqa: E402
    GUARD_WHEN_ABSENT, MAX_SIGNATURE_FIELD, header_b_prefixes, sign, signed_fields, verify,
)
from postroom.mailauth.keys import DkimKey, keygen  # noqa: E402
from postroom.mailauth.model import DKIM_RESULTS, DkimResult  # noqa: E402
from postroom.mailauth.settings import DEFAULT_SIGN_HEADERS  # noqa: E402
from postroom.resolver import DnsSettings, Resolver  # noqa: E402

DOMAIN = "example.test"
MESSAGE = (
    b"From: Alice <alice@example.test>\r\n"
    b"To: bob@example.org\r\n"
    b"Subject: lunch\r\n"
    b"Date: Mon, 01 Jan 2024 12:00:00 +0000\r\n"
    b"Message-ID: <1@example.test>\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"\r\n"
    b"Noon at the usual place?\r\n"
    b"\r\n"
    b"-- \r\nAlice\r\n"
)
VENV_BIN = Path(sys.executable).parent


@dataclass
class Keys:
    rsa: DkimKey
    ed: DkimKey
    short: DkimKey  # RSA-1024
    unpublished: DkimKey


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    data = tmp_path_factory.mktemp("dkim-data")
    return Keys(keygen(data, DOMAIN, "rsa1", "rsa"), keygen(data, DOMAIN, "ed1", "ed25519"),
                keygen(data, DOMAIN, "short1", "rsa", bits=1024), keygen(data, DOMAIN, "gone1", "ed25519"))


@pytest.fixture(scope="module")
def server() -> Iterator[DnsFixture]:
    with DnsFixture() as s:
        yield s


@pytest.fixture
def srv(server: DnsFixture, keys: Keys) -> DnsFixture:
    """The module's server with the three published keys, nothing failing."""
    server.records.clear()
    server.failing.clear()
    server.silenced.clear()
    server.queries.clear()
    for k in (keys.rsa, keys.ed, keys.short):
        server.txt(k.record_name, k.txt_record())
    return server


def check(srv: DnsFixture, message: bytes, timeout: float = 5.0, **kw: int) -> tuple[DkimResult, ...]:
    # A long per-attempt timeout: only verify's own deadline may end a silent lookup.
    resolver = Resolver(DnsSettings(nameserver=(srv.host, srv.port), timeout=10.0, attempts=1))
    return asyncio.run(verify(resolver, message, timeout, **kw))


def signed(keys: list[DkimKey], message: bytes = MESSAGE, **kw: object) -> bytes:
    return sign(message, keys, **kw) + message  # type: ignore[arg-type]


def dnsfunc_for(*published: DkimKey):  # type: ignore[no-untyped-def]
    records = {(k.record_name + ".").encode(): k.txt_record().encode() for k in published}
    return lambda name, timeout=5: records.get(name)


# -- signing --------------------------------------------------------------------------------

def test_signature_fields(keys: Keys) -> None:
    out = sign(MESSAGE, [keys.rsa, keys.ed], now=1700000000)
    assert out.endswith(b"\r\n") and b"\n" not in out.replace(b"\r\n", b"")
    fields = re.split(rb"\r\n(?=\S)", out.rstrip(b"\r\n"))
    assert len(fields) == 2
    for field, key in zip(fields, (keys.rsa, keys.ed)):
        name, value = field.split(b":", 1)
        assert name == b"DKIM-Signature"
        assert all(len(line) <= 78 for line in field.split(b"\r\n"))  # RFC 5322 §2.1.1
        tags = dkim.util.parse_tag_value(value)
        assert tags[b"v"] == b"1"
        assert tags[b"a"] == key.signature_algorithm
        assert tags[b"c"] == b"relaxed/relaxed"
        assert (tags[b"d"], tags[b"s"], tags[b"t"]) == (DOMAIN.encode(), key.selector.encode(), b"1700000000")
        assert b"i" not in tags and b"l" not in tags and b"x" not in tags
        h = [x.strip() for x in tags[b"h"].split(b":")]
        assert h[:2] == [b"from", b"from"]  # oversigned (RFC 6376 §8.15)
        assert b"list-id" not in h  # absent and not guarded
        assert b"reply-to" in h  # absent but guarded


def test_no_keys_no_signature() -> None:
    assert sign(MESSAGE, []) == b""


def test_from_must_be_signed(keys: Keys) -> None:
    with pytest.raises(ValueError):
        sign(MESSAGE, [keys.rsa], headers=("subject",))


@pytest.mark.parametrize("present, headers, expected", [
    # From listed twice: each instance plus a null entry.
    ([b"From", b"To"], ("from", "from", "to"), [b"from", b"from", b"to"]),
    ([b"From", b"From"], ("from", "from"), [b"from", b"from", b"from"]),
    ([], ("from", "from"), [b"from"]),
    # Listed once: every instance present; absent only when guarded.
    ([b"From", b"Received", b"Received"], ("from", "received"), [b"from", b"received", b"received"]),
    ([b"From"], ("from", "reply-to", "list-id", "resent-from"), [b"from", b"reply-to"]),
    ([b"From", b"List-Id"], ("from", "list-id"), [b"from", b"list-id"]),
    # Names are lower-cased, bad names skipped, order is that of first mention.
    ([b"SUBJECT", b"From"], ("Subject", "FROM", "bad;name", "sp ace", ""), [b"subject", b"from"]),
])
def test_signed_fields(present: list[bytes], headers: tuple[str, ...], expected: list[bytes]) -> None:
    assert signed_fields(present, headers) == expected


def test_default_headers_guard_what_a_reader_sees() -> None:
    h = signed_fields([b"From"], DEFAULT_SIGN_HEADERS)
    assert set(h) == {n.encode() for n in DEFAULT_SIGN_HEADERS if n in GUARD_WHEN_ABSENT}
    assert h.count(b"from") == 2


def test_dkimpy_verifies_postroom_signatures(keys: Keys) -> None:
    """dkimpy's own verifier (in-process, its DNS function answering from our records)."""
    msg = signed([keys.rsa, keys.ed])
    dnsfunc = dnsfunc_for(keys.rsa, keys.ed)
    assert dkim.verify(msg, dnsfunc=dnsfunc)  # the first signature (RSA)
    for idx in range(2):
        assert dkim.DKIM(msg).verify(idx=idx, dnsfunc=dnsfunc)
    tampered = msg.replace(b"Noon", b"Nine")
    for idx in range(2):
        with pytest.raises(dkim.ValidationError, match="body hash mismatch"):
            dkim.DKIM(tampered).verify(idx=idx, dnsfunc=dnsfunc)


def test_dkimverify_command(keys: Keys, srv: DnsFixture, tmp_path: Path) -> None:
    """dkimpy's ``dkimverify`` script, unchanged. It asks dnspython's default resolver
    (the system's /etc/resolv.conf); a ``sitecustomize`` module on PYTHONPATH points
    that resolver at the DNS fixture before the script starts."""
    script = VENV_BIN / "dkimverify"
    if not script.exists():
        pytest.skip("dkimpy's dkimverify script is not installed next to this Python")
    (tmp_path / "sitecustomize.py").write_text(
        "import os\n"
        "import dns.resolver\n"
        "r = dns.resolver.Resolver(configure=False)\n"
        "r.nameservers = [os.environ['TEST_DNS_HOST']]\n"
        "r.port = int(os.environ['TEST_DNS_PORT'])\n"
        "dns.resolver.default_resolver = r\n"
    )
    env = dict(os.environ, PYTHONPATH=str(tmp_path), TEST_DNS_HOST=srv.host, TEST_DNS_PORT=str(srv.port))
    msg = signed([keys.rsa, keys.ed])
    for idx in range(2):
        p = subprocess.run([str(script), "--index", str(idx)], input=msg, env=env, capture_output=True, timeout=60)
        assert (p.returncode, p.stdout.strip()) == (0, b"signature ok"), p.stderr[-2000:]
    p = subprocess.run([str(script)], input=msg.replace(b"lunch", b"dinner"), env=env, capture_output=True,
                       timeout=60)
    assert p.returncode == 1 and b"signature verification failed" in p.stdout
    assert ("rsa1._domainkey.example.test.", "TXT") in srv.queries  # the fixture answered


# -- verifying: the results -----------------------------------------------------------------

def test_rsa_pass(keys: Keys, srv: DnsFixture) -> None:
    msg = signed([keys.rsa])
    (r,) = check(srv, msg)
    b = dkim.util.parse_tag_value(msg.split(b"\r\nFrom:")[0].split(b":", 1)[1])[b"b"]
    assert r == DkimResult("pass", DOMAIN, "rsa1", "rsa-sha256", re.sub(rb"\s", b"", b)[:8].decode(), "", "")
    assert srv.queries == [("rsa1._domainkey.example.test.", "TXT")]


def test_ed25519_pass(keys: Keys, srv: DnsFixture) -> None:
    (r,) = check(srv, signed([keys.ed]))
    assert (r.result, r.domain, r.selector, r.algorithm, len(r.header_b)) == ("pass", DOMAIN, "ed1",
                                                                            "ed25519-sha256", 8)


def test_both_algorithms_two_passes_in_header_order(keys: Keys, srv: DnsFixture) -> None:
    results = check(srv, signed([keys.ed, keys.rsa]))
    assert [(r.result, r.selector) for r in results] == [("pass", "ed1"), ("pass", "rsa1")]
    assert results[0].header_b != results[1].header_b


def test_unsigned_is_empty(srv: DnsFixture) -> None:
    assert check(srv, MESSAGE) == ()
    assert srv.queries == []


def test_body_changed_fails(keys: Keys, srv: DnsFixture) -> None:
    (r,) = check(srv, signed([keys.rsa]).replace(b"Noon", b"Nine"))
    assert (r.result, r.reason) == ("fail", "body hash did not verify")


def test_signed_header_changed_fails(keys: Keys, srv: DnsFixture) -> None:
    for key in (keys.rsa, keys.ed):
        (r,) = check(srv, signed([key]).replace(b"Subject: lunch", b"Subject: dinner"))
        assert (r.result, r.reason) == ("fail", "signature did not verify")


def test_refolding_a_signed_header_still_passes(keys: Keys, srv: DnsFixture) -> None:
    """relaxed header canonicalization (RFC 6376 §3.4.2): what relays may do."""
    msg = signed([keys.rsa]).replace(b"Subject: lunch", b"subject:   lunch\r\n ")
    assert check(srv, msg)[0].result == "pass"


def test_second_from_added_after_signing_fails(keys: Keys, srv: DnsFixture) -> None:
    for key in (keys.rsa, keys.ed):
        msg = signed([key])
        top = msg.replace(b"From: Alice", b"From: Mallory <m@evil.test>\r\nFrom: Alice", 1)
        bottom = msg.replace(b"\r\n\r\nNoon", b"\r\nFrom: Mallory <m@evil.test>\r\n\r\nNoon", 1)
        for forged in (top, bottom):
            (r,) = check(srv, forged)
            assert r.result == "fail", r


def test_guarded_absent_header_added_fails(keys: Keys, srv: DnsFixture) -> None:
    msg = signed([keys.rsa])
    (r,) = check(srv, msg.replace(b"\r\n\r\nNoon", b"\r\nReply-To: m@evil.test\r\n\r\nNoon", 1))
    assert r.result == "fail"
    # A list header added by a mailing list leaves the signature intact.
    (r,) = check(srv, msg.replace(b"\r\n\r\nNoon", b"\r\nList-Id: <lunch.example.org>\r\n\r\nNoon", 1))
    assert r.result == "pass"


def test_key_missing_is_permerror(keys: Keys, srv: DnsFixture) -> None:
    (r,) = check(srv, signed([keys.unpublished]))
    assert (r.result, r.reason, r.selector) == ("permerror", "no key for signature", "gone1")


def test_key_name_without_txt_is_permerror(keys: Keys, srv: DnsFixture) -> None:
    srv.a(keys.unpublished.record_name, "192.0.2.1")  # NOERROR, no TXT data
    (r,) = check(srv, signed([keys.unpublished]))
    assert (r.result, r.reason) == ("permerror", "no key for signature")


def test_revoked_key_fails(keys: Keys, srv: DnsFixture) -> None:
    srv.txt(keys.rsa.record_name, "v=DKIM1; k=rsa; p=")
    (r,) = check(srv, signed([keys.rsa]))
    assert (r.result, r.reason) == ("fail", "key revoked")


@pytest.mark.parametrize("record, reason", [
    ("v=DKIM1; k=rsa; p=bm90IGEga2V5", "key record unusable"),
    ("v=DKIM1; k=rsa; p=!!!!", "key record unusable"),
    ("v=DKIM1; k=dsa; p=AAAA", "key record unusable"),
    ("v=DKIM2; k=rsa; p=AAAA", "key record unusable"),
    ("v=DKIM1; k=rsa; h=sha1; p={p}", "key record does not allow sha256"),
    ("v=DKIM1; k=rsa; s=tlsrpt; p={p}", None),  # dkimpy checks tlsrpt itself
    ("v=DKIM1; k=rsa; s=other; p={p}", "key is not for e-mail"),
    ("v=DKIM1; k=rsa; k=rsa; p={p}", "key record unreadable"),
])
def test_bad_key_record_is_permerror(keys: Keys, srv: DnsFixture, record: str, reason: str | None) -> None:
    p = keys.rsa.txt_record().split("p=")[1]
    srv.txt(keys.rsa.record_name, record.replace("{p}", p))
    (r,) = check(srv, signed([keys.rsa]))
    assert r.result == "permerror"
    if reason:
        assert r.reason.startswith(reason), r.reason


def test_key_type_must_match_algorithm(keys: Keys, srv: DnsFixture) -> None:
    srv.txt(keys.rsa.record_name, keys.ed.txt_record())  # an Ed25519 key where a=rsa-sha256 points
    (r,) = check(srv, signed([keys.rsa]))
    assert (r.result, r.reason) == ("permerror", "ed25519 key for a=rsa-sha256")


def test_servfail_is_temperror(keys: Keys, srv: DnsFixture) -> None:
    srv.servfail(keys.rsa.record_name)
    (r,) = check(srv, signed([keys.rsa]))
    assert r.result == "temperror" and r.reason.startswith("key lookup failed")
    assert (r.domain, r.selector) == (DOMAIN, "rsa1")


def test_silent_nameserver_is_temperror_within_the_timeout(keys: Keys, srv: DnsFixture) -> None:
    srv.silent(keys.rsa.record_name)
    srv.silent(keys.ed.record_name)
    t0 = time.monotonic()
    results = check(srv, signed([keys.rsa, keys.ed]), timeout=1.0)
    elapsed = time.monotonic() - t0
    assert [r.result for r in results] == ["temperror", "temperror"]
    assert elapsed < 2.5, elapsed  # one shared deadline, the lookups side by side


def test_one_slow_signature_does_not_spoil_the_other(keys: Keys, srv: DnsFixture) -> None:
    srv.silent(keys.ed.record_name)
    results = check(srv, signed([keys.rsa, keys.ed]), timeout=1.0)
    assert [r.result for r in results] == ["pass", "temperror"]


def test_short_rsa_key_fails_under_min_key_bits(keys: Keys, srv: DnsFixture) -> None:
    msg = signed([keys.short])
    assert check(srv, msg)[0].result == "pass"  # 1024 is enough by default (RFC 8301 §3.2)
    (r,) = check(srv, msg, min_key_bits=2048)
    assert (r.result, r.reason) == ("fail", "RSA key of 1024 bits is too short")
    assert check(srv, signed([keys.ed]), min_key_bits=4096)[0].result == "pass"  # RSA only


def test_rsa_sha1_fails(keys: Keys, srv: DnsFixture) -> None:
    sig = dkim.sign(MESSAGE, b"rsa1", DOMAIN.encode(), keys.rsa.dkimpy_private(), signature_algorithm=b"rsa-sha1",
                    canonicalize=(b"relaxed", b"relaxed"))
    (r,) = check(srv, sig + MESSAGE)
    assert (r.result, r.algorithm) == ("fail", "rsa-sha1") and "RFC 8301" in r.reason


def test_at_most_max_signatures(keys: Keys, srv: DnsFixture) -> None:
    msg = MESSAGE
    for i in range(12):
        msg = sign(msg, [keys.ed], now=1700000000 + i) + msg  # Ed25519 is deterministic: vary t=
    results = check(srv, msg, max_signatures=10)
    assert len(results) == 10 and {r.result for r in results} == {"pass"}
    assert len({r.header_b for r in results}) == 10


def test_header_b_prefix_is_unique() -> None:
    assert header_b_prefixes([b"abcdefghXY", b"abcdefghXZ", b"zzzzzzzzzzzz", b""]) == \
        ["abcdefghXY", "abcdefghXZ", "zzzzzzzz", ""]
    assert header_b_prefixes([b"abcdefghij", b"abcdefghij"]) == ["abcdefgh", "abcdefgh"]  # the same signature


# -- verifying: malformed signatures --------------------------------------------------------

def _tamper_field(msg: bytes, fn) -> bytes:  # type: ignore[no-untyped-def]
    head, rest = msg.split(b"\r\nFrom:", 1)
    return fn(head) + b"\r\nFrom:" + rest


def _garbage_tags(h: bytes) -> bytes:
    return b"DKIM-Signature: v=1; a=rsa-sha256; this is not a tag list; b=AAAA"


MALFORMED = {
    "garbage tags": _garbage_tags,
    "no tags at all": lambda h: b"DKIM-Signature:",
    "only junk": lambda h: b"DKIM-Signature: \x00\xff\xfe;;==;",
    "missing b=": lambda h: re.sub(rb";\s*b=[^;]*$", b"", h),
    "missing h=": lambda h: re.sub(rb"(?<=\s)h=[^;]*;", b"", h),
    "missing d=": lambda h: re.sub(rb"d=[^;]*;", b"", h),
    "bad base64 b=": lambda h: re.sub(rb"b=([A-Za-z0-9+/]{4})", rb"b=!!\1", h),
    "b= not a multiple of 4": lambda h: re.sub(rb"b=([A-Za-z0-9+/]{4})", rb"b=A\1", h),
    "bad base64 bh=": lambda h: h.replace(b"bh=", b"bh=*"),
    "duplicate tag": lambda h: h.replace(b"v=1;", b"v=1; v=1;"),
    "unknown algorithm": lambda h: h.replace(b"a=rsa-sha256", b"a=rsa-md5"),
    "unknown canonicalization": lambda h: h.replace(b"c=relaxed/relaxed", b"c=weird/relaxed"),
    "version 2": lambda h: h.replace(b"v=1;", b"v=2;"),
    "h= without from": lambda h: re.sub(rb"(?<=\s)h=[^;]*;", b"h=subject:date;", h),
    "i= outside d=": lambda h: h.replace(b"v=1;", b"v=1; i=@evil.test;"),
    "i= equal to d=": lambda h: h.replace(b"v=1;", b"v=1; i=example.test;"),
    "t= in the future": lambda h: re.sub(rb"t=\d+", b"t=99999999999", h),
    "t= not a number": lambda h: re.sub(rb"t=\d+", b"t=soon", h),
    "x= passed": lambda h: h.replace(b"v=1;", b"v=1; x=1000;"),
    "l= not a number": lambda h: h.replace(b"v=1;", b"v=1; l=ten;"),
    "q= not dns/txt": lambda h: h.replace(b"v=1;", b"v=1; q=http;"),
    "huge field": lambda h: h.replace(b"v=1;", b"v=1; z=" + b"A" * (MAX_SIGNATURE_FIELD + 10) + b";"),
    "huge white space in b=": lambda h: re.sub(rb"b=([A-Za-z0-9+/]{4})", b"b=A" + b" " * 15000 + b"!", h),
    "non-ascii d=": lambda h: h.replace(b"d=example.test", "d=exämple.test".encode()),
    "d= with spaces": lambda h: h.replace(b"d=example.test", b"d=exa mple.test"),
}


@pytest.mark.parametrize("name", list(MALFORMED))
def test_malformed_signature_is_permerror(keys: Keys, srv: DnsFixture, name: str) -> None:
    msg = _tamper_field(signed([keys.rsa]), MALFORMED[name])
    t0 = time.monotonic()
    (r,) = check(srv, msg)
    assert r.result == "permerror", r
    assert time.monotonic() - t0 < 2
    assert r.reason and all(" " <= c <= "~" for c in r.reason) and len(r.reason) <= 200


def test_malformed_signature_does_not_spoil_the_good_one(keys: Keys, srv: DnsFixture) -> None:
    good = sign(MESSAGE, [keys.ed])
    bad = b"DKIM-Signature: v=1; a=rsa-sha256; b=AAAA\r\n"
    results = check(srv, bad + good + MESSAGE)
    assert [r.result for r in results] == ["permerror", "pass"]
    assert results[0].reason == "missing bh="


def test_unreadable_header_block(keys: Keys, srv: DnsFixture) -> None:
    # dkimpy cannot read a header block that starts with a continuation line.
    assert check(srv, b" folded\r\n" + signed([keys.rsa]))[0].result == "permerror"
    assert check(srv, b" folded\r\n" + MESSAGE) == ()


def test_random_damage_never_raises(keys: Keys, srv: DnsFixture) -> None:
    """Bytes flipped, cut and repeated anywhere in the signature fields: a result, never a traceback."""
    rng = random.Random(6376)
    msg = signed([keys.rsa, keys.ed])
    cut = msg.index(b"\r\nFrom:")
    alphabet = b" \t\r\n;=:abcdehlstvxAZ09+/\x00\xff"
    resolver = Resolver(DnsSettings(nameserver=(srv.host, srv.port), timeout=5.0, attempts=1))

    async def run_all() -> None:
        for _ in range(150):
            head = bytearray(msg[:cut])
            for _ in range(rng.randint(1, 4)):
                i = rng.randrange(len(head))
                op = rng.randrange(3)
                if op == 0:
                    head[i] = rng.choice(alphabet)
                elif op == 1:
                    del head[i:i + rng.randint(1, 20)]
                else:
                    head[i:i] = bytes(head[i:i + rng.randint(1, 30)]) * rng.randint(1, 5)
            results = await verify(resolver, bytes(head) + msg[cut:], 2.0)
            assert all(r.result in DKIM_RESULTS for r in results)

    asyncio.run(run_all())


# -- cost -------------------------------------------------------------------------------------

def test_public_key_work_is_not_dkimpys(keys: Keys, srv: DnsFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """Signing and verifying are on every message's path: the RSA operations are OpenSSL's
    (cryptography), not dkimpy's pure-Python ones (6 ms a signature), and each private key
    is read and parsed once. Checked by cause rather than by a time (issue #22: no test
    depends on a timing)."""
    def refuse(*args: object, **kw: object) -> None:
        raise AssertionError("dkimpy's pure-Python RSA was used")

    for name in ("RSASSA_PKCS1_v1_5_sign", "RSASSA_PKCS1_v1_5_verify", "rsa_decrypt", "rsa_encrypt",
                 "parse_pem_private_key", "parse_private_key"):
        for module in (dkim, dkim.crypto):
            if hasattr(module, name):
                monkeypatch.setattr(module, name, refuse)
    from postroom.mailauth import dkim as ours

    msg = MESSAGE + b"A line of a typical message body, some seventy characters or so.\r\n" * 60
    sign(msg, [keys.rsa, keys.ed])  # each key parsed here at the latest
    before = ours._private_key.cache_info()
    for _ in range(3):
        fields = sign(msg, [keys.rsa, keys.ed])
    after = ours._private_key.cache_info()
    assert (after.misses, after.hits) == (before.misses, before.hits + 6)  # no key file read again
    assert [(r.result, r.selector) for r in check(srv, fields + msg)] == [("pass", "rsa1"), ("pass", "ed1")]


def test_signature_survives_base64_check(keys: Keys) -> None:
    """The b= value, unfolded, is the raw signature: 256 octets for RSA-2048, 64 for Ed25519."""
    for key, size in ((keys.rsa, 256), (keys.ed, 64)):
        value = re.split(rb";\s*b=", sign(MESSAGE, [key]))[-1]
        assert len(base64.b64decode(re.sub(rb"\s", b"", value))) == size
