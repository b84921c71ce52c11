import base64

import pytest

from postroom.wire import sasl


def test_plain_initial_response():
    m = sasl.mechanism("plain")
    assert sasl.Done("", "joe", "secret") == m.step(b"\0joe\0secret")


def test_plain_with_challenge_and_authzid():
    m = sasl.mechanism("PLAIN")
    assert m.step(None) == sasl.Challenge(b"")
    assert m.step(b"admin\0joe\0pw") == sasl.Done("admin", "joe", "pw")
    with pytest.raises(RuntimeError):
        m.step(b"again")


@pytest.mark.parametrize("data", [b"joe\0pw", b"\0\0pw", b"\0joe\0", b"a\0b\0c\0d", b"\0\xff\0pw", b"x" * 5000])
def test_plain_malformed(data):
    assert isinstance(sasl.mechanism("PLAIN").step(data), sasl.Failed)


def test_login():
    m = sasl.mechanism("LOGIN")
    assert m.step(None) == sasl.Challenge(b"Username:")
    assert m.step(b"joe") == sasl.Challenge(b"Password:")
    assert m.step("pässword".encode()) == sasl.Done("", "joe", "pässword")


def test_login_initial_response_and_failures():
    m = sasl.mechanism("LOGIN")
    assert m.step(b"joe") == sasl.Challenge(b"Password:")
    assert isinstance(m.step(b""), sasl.Failed)
    assert isinstance(sasl.mechanism("LOGIN").step(b""), sasl.Failed)


def test_unknown_and_helpers():
    assert sasl.mechanism("CRAM-MD5") is None
    assert sasl.decode_b64(base64.b64encode(b"\0a\0b") + b"\r\n") == b"\0a\0b"
    assert sasl.decode_b64("=") == b""
    assert sasl.decode_b64("not base64!") is None
    assert sasl.is_cancel(b"*\r\n") and not sasl.is_cancel("x")
    assert sasl.encode_b64(b"Username:") == "VXNlcm5hbWU6"
