"""Password schemes (argon2id, imported Dovecot-style hashes) and login throttling."""

from __future__ import annotations

import asyncio
import time

import bcrypt
from passlib.hash import sha256_crypt, sha512_crypt

from postroom.auth import Authenticator, hash_password, verify_password
from postroom.auth.passwords import needs_rehash, scheme_of


def test_schemes() -> None:
    h = hash_password("s3cret")
    assert h.startswith("{ARGON2ID}$argon2id$") and verify_password(h, "s3cret")
    assert not verify_password(h, "wrong") and not needs_rehash(h)
    imported = {
        "{SHA512-CRYPT}" + sha512_crypt.hash("pw"): "SHA512-CRYPT",
        "{SHA256-CRYPT}" + sha256_crypt.hash("pw"): "SHA256-CRYPT",
        "{BLF-CRYPT}" + bcrypt.hashpw(b"pw", bcrypt.gensalt(4)).decode(): "BLF-CRYPT",
        "{BLF-CRYPT}" + bcrypt.hashpw(b"pw", bcrypt.gensalt(4)).decode().replace("$2b$", "$2y$", 1): "BLF-CRYPT",
        "{PLAIN}pw": "PLAIN",
        sha512_crypt.hash("pw"): "SHA512-CRYPT",
    }
    for stored, scheme in imported.items():
        assert scheme_of(stored) == scheme
        assert verify_password(stored, "pw"), stored
        assert not verify_password(stored, "nope")
        assert needs_rehash(stored)
    for garbage in ("", "{ARGON2ID}garbage", "{SHA512-CRYPT}$6$bad", "{WHAT}x", "{BLF-CRYPT}nope"):
        assert verify_password(garbage, "pw") is False


def test_throttle_and_rehash(store_factory) -> None:
    async def t() -> None:
        async with store_factory() as s:
            await s.add_domain("example.test")
            await s.create_account("u@example.test", "{SHA512-CRYPT}" + sha512_crypt.hash("pw"))
            auth = Authenticator(s, max_failures_per_ip=3, base_delay=0.05)
            ok = await auth.authenticate("U@Example.test", "pw", "10.0.0.1")
            assert ok.account is not None
            # a successful login upgrades an imported hash to argon2id
            assert (await s.get_account("u@example.test")).password_hash.startswith("{ARGON2ID}")
            t0 = time.monotonic()
            for _ in range(3):
                assert (await auth.authenticate("u@example.test", "bad", "10.0.0.2")).account is None
            assert time.monotonic() - t0 >= 0.05 + 0.1 + 0.2 - 0.02  # doubling delays
            blocked = await auth.authenticate("u@example.test", "pw", "10.0.0.2")
            assert blocked.account is None and blocked.throttled
            assert (await auth.authenticate("u@example.test", "pw", "10.0.0.3")).account is not None
            assert (await auth.authenticate("nobody@example.test", "pw", "10.0.0.4")).account is None
    asyncio.run(t())
