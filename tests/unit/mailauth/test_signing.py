"""Which keys sign which mail (mailauth.signing), and the DSNs Postroom writes (outbound.local)."""

from __future__ import annotations

import asyncio
import email
from pathlib import Path
from typing import Any

import dkim

from postroom.config import from_dict
from postroom.mailauth import keys
from postroom.mailauth.settings import DEFAULT_SIGN_HEADERS
from postroom.mailauth.signing import keys_for, seal_for, signature_for
from postroom.outbound.dsn import RecipientReport, build_dsn
from postroom.outbound.local import send_notice

MSG = b"From: Alice <alice@example.org>\r\nTo: bob@remote.test\r\nSubject: hi\r\n\r\nhello\r\n"


def dnsfunc_for(*ks: keys.DkimKey):
    records = {f"{k.record_name}.".encode(): k.txt_record().encode() for k in ks}
    return lambda name, timeout=5: records.get(name)


def test_the_from_domain_picks_the_keys_and_both_algorithms_sign(tmp_path: Path) -> None:
    rsa = keys.keygen(tmp_path, "example.org", algorithm="rsa")
    ed = keys.keygen(tmp_path, "example.org", algorithm="ed25519")
    sig = signature_for(tmp_path, MSG, DEFAULT_SIGN_HEADERS)
    signed = sig + MSG
    fields = email.message_from_bytes(signed).get_all("DKIM-Signature")
    assert len(fields) == 2
    for i in range(2):
        assert dkim.DKIM(signed).verify(idx=i, dnsfunc=dnsfunc_for(rsa, ed))
    # no key for the From domain: unsigned, not an error
    assert signature_for(tmp_path, MSG.replace(b"example.org", b"other.test"), DEFAULT_SIGN_HEADERS) == b""


def test_a_subdomain_uses_its_parent_keys_up_to_the_organizational_domain(tmp_path: Path) -> None:
    keys.keygen(tmp_path, "example.org", algorithm="ed25519")
    assert [k.domain for k in keys_for(tmp_path, "lists.example.org")] == ["example.org"]
    assert keys_for(tmp_path, "org") == []
    keys.keygen(tmp_path, "example.co.uk", algorithm="ed25519")
    # co.uk is a public suffix: mail.example.co.uk stops at example.co.uk, never above it
    assert [k.domain for k in keys_for(tmp_path, "mail.example.co.uk")] == ["example.co.uk"]


def test_pending_and_retired_keys_do_not_sign(tmp_path: Path) -> None:
    first = keys.keygen(tmp_path, "example.org", algorithm="rsa", selector="one")
    keys.keygen(tmp_path, "example.org", algorithm="rsa", selector="two")  # pending
    sig = signature_for(tmp_path, MSG, DEFAULT_SIGN_HEADERS)
    assert b"s=one" in sig and b"s=two" not in sig
    keys.activate(tmp_path, "example.org", "two")
    sig = signature_for(tmp_path, MSG, DEFAULT_SIGN_HEADERS)
    assert b"s=two" in sig and b"s=one" not in sig
    keys.retire(tmp_path, "example.org", "two")
    assert signature_for(tmp_path, MSG, DEFAULT_SIGN_HEADERS) == b""
    assert first.selector == "one"


def test_garbage_never_raises(tmp_path: Path) -> None:
    keys.keygen(tmp_path, "example.org", algorithm="rsa")
    for bad in (b"", b"\r\n\r\n", b"From: \r\n\r\n", b"From: <@>\r\n\r\nx", b"\xff\xfe: x\r\n\r\n",
                b"From: a@example.org\r\n" + b"X" * 100000):
        assert isinstance(signature_for(tmp_path, bad, DEFAULT_SIGN_HEADERS), bytes)
    # a key file gone bad: logged, the message goes unsigned
    for pem in (tmp_path / "dkim" / "example.org").glob("*.pem"):
        pem.write_bytes(b"not a key")
    keys._cache.clear()
    assert signature_for(tmp_path, MSG, DEFAULT_SIGN_HEADERS) == b""


def test_arc_seal_needs_an_rsa_key(tmp_path: Path) -> None:
    keys.keygen(tmp_path, "fwd.test", algorithm="ed25519")
    msg = b"Authentication-Results: mx.fwd.test; spf=pass smtp.mailfrom=o.test\r\n" + MSG
    assert seal_for(tmp_path, msg, "fwd.test", "mx.fwd.test", "none") == b""
    keys.keygen(tmp_path, "fwd.test", algorithm="rsa")
    seal = seal_for(tmp_path, msg, "fwd.test", "mx.fwd.test", "none")
    assert seal.startswith(b"ARC-Seal:") and b"d=fwd.test" in seal


class _Queue:
    def __init__(self) -> None:
        self.items: list[tuple[Any, bytes]] = []

    async def enqueue(self, env: Any, raw: bytes) -> str:
        self.items.append((env, raw))
        return "Q1"


class _Ctx:
    def __init__(self, root: Path) -> None:
        self.config = from_dict({"hostname": "mx.example.org", "domains": ["example.org"],
                                 "listeners": {"smtp": {"address": "127.0.0.1:2525"}}}, root / "c.toml")
        self.state: dict[str, Any] = {}

    async def is_local_domain(self, domain: str) -> bool:
        return domain == "example.org"


def test_a_bounce_to_a_remote_sender_is_signed_for_the_host_domain(tmp_path: Path) -> None:
    ctx = _Ctx(tmp_path)
    key = keys.keygen(ctx.config.data_dir, "example.org", algorithm="rsa")
    raw = build_dsn(reporting_mta="mx.example.org", sender="someone@remote.test", queue_id="Q0", arrival=0,
                    now=60, reports=[RecipientReport("x@far.test", "failed", "5.1.1", diagnostic="550 5.1.1 no such user")],
                    original=MSG)
    queue = _Queue()
    assert asyncio.run(send_notice(ctx, queue, "someone@remote.test", raw)) == "queued as Q1"
    [(env, queued)] = queue.items
    assert env.sender == ""
    assert queued.startswith(b"DKIM-Signature:") and b"d=example.org" in queued.split(b"\r\n\r\n")[0]
    assert dkim.verify(queued, dnsfunc=dnsfunc_for(key))
