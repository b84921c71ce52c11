"""The login steps POP3 and ManageSieve share (postroom.auth.login), against a real store
and authenticator; and the config keys they share (postroom.auth.session_settings)."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from postroom.auth import Authenticator, hash_password, login
from postroom.auth.session_settings import (
    LoginSessionSettings,
    cached,
    read_login_session,
)
from postroom.config import from_dict
from postroom.context import ServerContext
from postroom.wire import sasl

IP = "192.0.2.9"


@dataclass(slots=True)
class Client:
    ctx: ServerContext
    peer_ip: str = IP
    tag: str = "test[1] 192.0.2.9"


def test_sasl_login_steps(store_factory: Any, postroom_log: list[str]) -> None:
    log = logging.getLogger("postroom.test")

    async def t() -> None:
        async with store_factory() as store:
            await store.add_domain("example.test")
            await store.create_account("joe@example.test", hash_password("pw"))
            auth = Authenticator(store, max_failures_per_ip=3, base_delay=0.01)
            c = Client(ServerContext(from_dict({}, Path("/tmp/x.toml")), store, None, auth))

            # PLAIN without an initial response: an empty challenge, then the credentials.
            mech = sasl.mechanism("PLAIN")
            assert mech is not None
            assert await login.sasl_step(c, mech, None, log) == login.Continue("")
            ok = await login.sasl_step(c, mech, b"\0joe@example.test\0pw", log)
            assert isinstance(ok, login.Accepted) and ok.account.address == "joe@example.test"

            # LOGIN: the challenges arrive base64-encoded, ready to send.
            mech = sasl.mechanism("LOGIN")
            assert mech is not None
            assert await login.sasl_step(c, mech, None, log) == login.Continue("VXNlcm5hbWU6")
            assert await login.sasl_step(c, mech, b"joe@example.test", log) == login.Continue("UGFzc3dvcmQ6")
            assert await login.sasl_step(c, mech, b"wrong", log) == login.Refused()

            # Acting as someone else is refused and counted, though the password is right.
            mech = sasl.mechanism("PLAIN")
            assert mech is not None
            assert await login.sasl_step(c, mech, b"admin\0joe@example.test\0pw", log) == login.Refused()
            # A malformed exchange is refused without counting against anyone.
            mech = sasl.mechanism("PLAIN")
            assert mech is not None
            assert await login.sasl_step(c, mech, b"no nul bytes", log) == login.Refused()
            # An APOP-style failure checked elsewhere: the third failure from this IP.
            await login.count_failure(c, "joe@example.test", log)
            assert auth.is_throttled(IP)
            assert await login.check_password(c, "joe@example.test", "pw", log) == login.Refused(throttled=True)

    asyncio.run(t())
    assert postroom_log == [
        "test[1] 192.0.2.9 auth failed user='joe@example.test'",  # wrong password
        "test[1] 192.0.2.9 auth failed user='joe@example.test'",  # refused authzid
        "test[1] 192.0.2.9 auth failed (PLAIN: malformed PLAIN message)",
        "test[1] 192.0.2.9 auth failed user='joe@example.test'",  # count_failure
        "test[1] 192.0.2.9 auth throttled user='joe@example.test'",
    ]


@dataclass(frozen=True, slots=True)
class LongIdle(LoginSessionSettings):
    idle_timeout: float = 3600.0


def _read(section: dict[str, object], **kw: Any) -> tuple[LongIdle, list[str]]:
    problems: list[str] = []
    # Any protocol's table will do: the config knows their names, not their keys.
    cfg = from_dict({"pop3": section}, Path("/tmp/x.toml"))
    return read_login_session(cfg, "pop3", LongIdle, problems, **kw), problems


def test_session_settings_read() -> None:
    assert _read({}) == (LongIdle(), [])
    assert LongIdle().idle_timeout == 3600 and LongIdle().max_auth_failures == 5
    s, problems = _read({"allow_plaintext_auth": True, "idle_timeout": "2m", "max_bad_commands": 3,
                         "max_auth_failures": 1})
    assert s == LongIdle(True, 120.0, 3, 1) and problems == []
    _, problems = _read({"idle_timeout": 0, "max_bad_commands": 0, "max_auth_failures": 0, "extra": 1},
                        idle_rule="must be positive (say why)")
    assert problems == [
        "pop3.idle_timeout: must be positive (say why)",
        "pop3.max_bad_commands: must be at least 1",
        "pop3.max_auth_failures: must be at least 1",
        "pop3.extra: unknown key",
    ]


def test_session_settings_cached_until_the_state_is_cleared(store_factory: Any) -> None:
    reads: list[int] = []

    def read(cfg: Any, problems: list[str]) -> LongIdle:
        reads.append(1)
        return LongIdle()

    ctx = ServerContext(from_dict({}, Path("/tmp/x.toml")), store_factory(), None, None)  # type: ignore[arg-type]
    first = cached(ctx, "proto", LongIdle, read)
    assert cached(ctx, "proto", LongIdle, read) is first and len(reads) == 1
    ctx.state.clear()  # what SIGHUP does
    assert cached(ctx, "proto", LongIdle, read) == first and len(reads) == 2
