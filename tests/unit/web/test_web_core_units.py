"""The web UI's pure parts: TOTP (RFC 6238 test vectors), signed sessions, the request
schema checker, redirect targets and the ``[web]`` settings."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from postroom.web import schema, totp
from postroom.web.errors import Invalid
from postroom.web.render import safe_next
from postroom.web.sessions import Signer, load_secret

RFC_SECRET = base64.b32encode(b"12345678901234567890").decode()


@pytest.mark.parametrize(("when", "eight_digits"), [
    (59, "94287082"), (1111111109, "07081804"), (1111111111, "14050471"),
    (1234567890, "89005924"), (2000000000, "69279037"), (20000000000, "65353130"),
])
def test_totp_rfc6238_vectors(when: int, eight_digits: str) -> None:
    # RFC 6238 Appendix B (SHA-1): six digits are the last six of the eight (the code mod 10^6).
    assert totp.code_at(RFC_SECRET, when) == eight_digits[-6:]


def test_totp_verify_window_and_junk() -> None:
    secret = totp.new_secret()
    now = 1_700_000_000.0
    code = totp.code_at(secret, now)
    assert totp.verify(secret, code, now) == int(now) // 30
    assert totp.verify(secret, code[:3] + " " + code[3:], now) is not None
    assert totp.verify(secret, code, now + 30) is not None  # one step of clock skew
    assert totp.verify(secret, code, now + 95) is None
    for junk in ("", "12345", "1234567", "abcdef", "١٢٣٤٥٦"):
        assert totp.verify(secret, junk, now) is None
    assert totp.verify("not base32!!", "123456", now) is None
    assert totp.uri(secret, "a@example.test", "Post room").startswith(
        "otpauth://totp/Post%20room:a@example.test?secret=")


def test_session_round_trip_and_limits() -> None:
    s = Signer(b"k" * 32, idle=1800, lifetime=12 * 3600)
    session = s.new(7, "a@example.test", 3, False, now=1000.0)
    value = s.encode(session)
    assert s.decode(value, now=1000.0 + 1799) == session
    assert s.decode(value, now=1000.0 + 1801) is None  # idle
    late = s.encode(session.touched(1000.0 + 12 * 3600))
    assert s.decode(late, now=1000.0 + 12 * 3600 + 1) is None  # absolute
    assert Signer(b"x" * 32, 1800, 43200).decode(value, now=1000.0) is None  # another key
    assert s.decode(value.replace(".", ".A"), now=1000.0) is None
    for junk in ("", ".", "a.b.c", "x" * 5000, "!!!.???"):
        assert s.decode(junk, now=1000.0) is None
    # a value signed for another purpose never passes as a session
    assert s.decode(s.sign("flash", {"a": 7, "u": "a@example.test", "e": 3, "i": 1000, "s": 1000, "n": "x",
                                     "p": 0}), now=1000.0) is None
    pending = s.new(7, "a@example.test", 3, True, now=1000.0)
    assert s.decode(s.encode(pending), now=1200.0) is not None
    assert s.decode(s.encode(pending), now=1400.0) is None  # the second factor is due within 5 minutes


def test_csrf_token_is_per_session() -> None:
    s = Signer(b"k" * 32, 1800, 43200)
    a, b = s.new(1, "a@x.test", 0, False), s.new(1, "a@x.test", 0, False)
    assert s.csrf_ok(a, s.csrf_token(a))
    assert not s.csrf_ok(a, s.csrf_token(b))
    assert not s.csrf_ok(a, None) and not s.csrf_ok(a, "")


def test_secret_file_made_once(tmp_path: Path) -> None:
    path = tmp_path / "d" / "web-secret"
    key = load_secret(path)
    assert len(key) == 32 and path.stat().st_mode & 0o777 == 0o600
    assert load_secret(path) == key
    assert not [p for p in path.parent.iterdir() if p.name != "web-secret"]  # no temp file left


@pytest.mark.parametrize(("value", "schema_", "field"), [
    ({}, {"type": "object", "required": ["name"]}, "name"),
    ({"name": 5}, {"type": "object", "properties": {"name": {"type": "string"}}}, "name"),
    ({"x": 1}, {"type": "object", "properties": {}, "additionalProperties": False}, "x"),
    ({"n": True}, {"type": "object", "properties": {"n": {"type": "integer"}}}, "n"),
    ({"n": 0}, {"type": "object", "properties": {"n": {"type": "integer", "minimum": 1}}}, "n"),
    ({"l": [1, "a"]}, {"type": "object", "properties": {"l": {"type": "array", "items": {"type": "integer"}}}},
     "l[1]"),
    ({"s": "a" * 11}, {"type": "object", "properties": {"s": {"type": "string", "maxLength": 10}}}, "s"),
    ({"e": "nope"}, {"type": "object", "properties": {"e": {"type": "string", "format": "email"}}}, "e"),
    ({"k": "c"}, {"type": "object", "properties": {"k": {"enum": ["a", "b"]}}}, "k"),
    ([], {"type": "object"}, None),
])
def test_schema_check_names_the_field(value: object, schema_: dict, field: str | None) -> None:
    with pytest.raises(Invalid) as exc:
        schema.check(schema_, value)
    assert exc.value.field == field


def test_schema_accepts_good_values() -> None:
    sch = {"type": "object", "required": ["a"], "additionalProperties": False,
           "properties": {"a": {"type": "string", "maxLength": 5}, "b": {"type": "number", "nullable": True}}}
    schema.check(sch, {"a": "x", "b": 1.5})
    schema.check(sch, {"a": "x", "b": None})


@pytest.mark.parametrize(("target", "expected"), [
    ("/admin/users?x=1", "/admin/users?x=1"), (None, "/settings/"), ("", "/settings/"),
    ("https://evil.test/", "/settings/"), ("//evil.test", "/settings/"), ("/\\evil.test", "/settings/"),
    ("javascript:alert(1)", "/settings/"), ("/a\r\nSet-Cookie: x=1", "/settings/"),
])
def test_safe_next(target: str | None, expected: str) -> None:
    assert safe_next(target) == expected


def test_web_settings_problems(tmp_path: Path) -> None:
    from postroom.config import from_dict
    from postroom.web.settings import read_settings

    def problems(web: dict) -> list[str]:
        cfg = from_dict({"hostname": "h.test", "domains": ["example.test"], "web": web}, tmp_path / "c.toml")
        out: list[str] = []
        read_settings(cfg, out)
        return out

    assert problems({}) == []
    assert problems({"idle_timeout": "10s"}) == ["web.idle_timeout: must be at least 1m"]
    assert problems({"idle_timeout": "2h", "session_lifetime": "1h"}) == [
        "web.session_lifetime: must not be shorter than idle_timeout"]
    assert problems({"max_body": "1k"}) == ["web.max_body: must be at least 64k"]
    assert problems({"totp_issuer": "a:b"}) == ["web.totp_issuer: must be a non-empty name without ':'"]
    assert problems({"colour": "blue"}) == ["web.colour: unknown key"]


def test_broken_secret_file_is_a_config_problem(tmp_path: Path) -> None:
    from postroom.config import from_dict
    from postroom.web.settings import check_settings

    (tmp_path / "secret").write_text("not base64 !!\n")
    cfg = from_dict({"hostname": "h.test", "domains": ["example.test"], "web": {"secret_file": "secret"}},
                    tmp_path / "c.toml")
    out: list[str] = []
    check_settings(cfg, out)
    assert len(out) == 1 and out[0].startswith(f"web.secret_file: {tmp_path / 'secret'}: ")
