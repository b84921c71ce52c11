import pytest

from hypothesis import given
from hypothesis import strategies as st

from postroom.wire.dotstuff import DataReader, normalize_newlines, normalize_newlines_counted, stuff


def read_all(chunks, max_size=10_000):
    r = DataReader(max_size)
    for i, c in enumerate(chunks):
        if r.feed(c):
            return r, chunks[i + 1:]
    return r, []


@pytest.mark.parametrize("wire,body", [
    (b".\r\n", b""),
    (b"a\r\n.\r\n", b"a\r\n"),
    (b"a\r\nb\r\n.\r\n", b"a\r\nb\r\n"),
    (b"..x\r\n.\r\n", b".x\r\n"),  # RFC 5321 §4.5.2 transparency on the first line
    (b"a\r\n..\r\n.\r\n", b"a\r\n.\r\n"),
    (b"a\r\n...\r\n.\r\n", b"a\r\n..\r\n"),
])
def test_end_and_unstuffing(wire, body):
    r, _ = read_all([wire])
    assert r.done and r.body == body and r.leftover == b""


@pytest.mark.parametrize("smuggle", [b"\n.\n", b"\r.\n", b"\n.\r\n", b"\r.\r", b"\r\n.\n", b"\n.\r"])
def test_bare_cr_lf_never_end_data(smuggle):
    wire = b"Subject: x\r\n\r\nbody" + smuggle + b"MAIL FROM:<evil@x>\r\n"
    r = DataReader(10_000)
    assert not r.feed(wire)
    assert r.feed(b".\r\n")
    assert smuggle in r.body or smuggle.replace(b"\r\n.", b"\r\n") in r.body
    assert b"MAIL FROM" in r.body


def test_terminator_split_across_chunks_and_leftover():
    wire = b"line1\r\nline2\r\n.\r\nQUIT\r\n"
    for cut in range(1, len(wire)):
        r, rest = read_all([wire[:cut], wire[cut:]])
        assert r.done and r.body == b"line1\r\nline2\r\n", cut
        assert r.leftover + b"".join(rest) == b"QUIT\r\n"


def test_byte_by_byte():
    wire = b"..a\r\n.b\r\n\r\n.\r\nX"
    r = DataReader(100)
    done = False
    for i in range(len(wire)):
        done = r.feed(wire[i:i + 1])
        if done:
            break
    assert done and r.body == b".a\r\nb\r\n\r\n"


def test_too_big_keeps_reading_to_the_end():
    r = DataReader(100)
    assert not r.feed(b"x" * 5000)
    assert not r.feed(b"y" * 5000 + b"\r\n")
    assert r.feed(b".\r\nNOOP\r\n")
    assert r.too_big and r.body == b"" and r.leftover == b"NOOP\r\n"


def test_too_big_exact_limit():
    r, _ = read_all([b"a" * 98 + b"\r\n.\r\n"], max_size=100)
    assert not r.too_big and len(r.body) == 100
    r, _ = read_all([b"a" * 99 + b"\r\n.\r\n"], max_size=100)
    assert r.too_big


def test_normalize_and_stuff():
    assert normalize_newlines(b"a\r\nb\r\n") == b"a\r\nb\r\n"
    assert normalize_newlines(b"a\nb\rc\r\n") == b"a\r\nb\r\nc\r\n"
    assert stuff(b".a\r\nb\r\n.\r\n") == b"..a\r\nb\r\n..\r\n.\r\n"
    r, _ = read_all([stuff(b".a\r\n..b\r\nc")])
    assert r.body == b".a\r\n..b\r\nc\r\n"


@given(st.lists(st.sampled_from([b"a", b"\r", b"\n", b"\r\n", b".", b" "]), max_size=40).map(b"".join))
def test_counted_normalising_gives_the_bytes_and_their_lf_count(data: bytes) -> None:
    # SMTP passes this count to Store.deliver(newlines=): it must be exactly the stored bytes' LFs.
    out, lf = normalize_newlines_counted(data)
    assert out == normalize_newlines(data)
    assert lf == out.count(b"\n") == out.count(b"\r\n")
