"""DeflateStream (RFC 4978 raw deflate), on its own: round trips, bounded inflation, garbage."""

from __future__ import annotations

import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from postroom.net.deflate import DeflateError, DeflateStream


def _inflate_all(z: DeflateStream, max_length: int) -> bytes:
    out = b""
    while True:
        got = z.read(max_length)
        assert len(got) <= max_length
        if not got:
            assert not z.has_input
            return out
        out += got


@settings(max_examples=200, deadline=None)
@given(batches=st.lists(st.binary(max_size=3000), max_size=8), split=st.integers(1, 50),
       max_length=st.integers(1, 5000))
def test_round_trip_in_any_pieces(batches: list[bytes], split: int, max_length: int) -> None:
    """What one side writes in flushed batches, the other reads back whole and in order, however
    the wire cuts it up and however small the inflated pieces asked for are."""
    sender, receiver = DeflateStream(), DeflateStream()
    got = b""
    sent = b""
    for batch in batches:
        wire = sender.compress_flush(batch)
        sent += batch
        for i in range(0, len(wire), split):
            receiver.feed(wire[i:i + split])
            got += _inflate_all(receiver, max_length)
        # Z_SYNC_FLUSH: everything sent so far inflates without waiting for more.
        assert got == sent
    assert got == b"".join(batches)


@settings(max_examples=100, deadline=None)
@given(chunks=st.lists(st.binary(max_size=500), max_size=10))
def test_compress_then_flush_is_zlib_raw_deflate(chunks: list[bytes]) -> None:
    """The output is plain raw deflate (wbits -15): what any client's zlib inflates."""
    z = DeflateStream()
    wire = b"".join(z.compress(c) for c in chunks) + z.flush()
    assert zlib.decompressobj(-15).decompress(wire) == b"".join(chunks)
    # and what a client's zlib sends, we read
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    r = DeflateStream()
    r.feed(c.compress(b"".join(chunks)) + c.flush(zlib.Z_SYNC_FLUSH))
    assert _inflate_all(r, 1000) == b"".join(chunks)


def test_a_bomb_inflates_piece_by_piece() -> None:
    """100 MB of zeros in ~100 KB: never more than max_length inflated per read, and the
    compressed rest stays compressed (memory bounded by what was fed, not what it makes)."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    bomb = c.compress(b"\0" * (100 * 1024 * 1024)) + c.flush(zlib.Z_SYNC_FLUSH)
    assert len(bomb) < 200_000
    r = DeflateStream()
    r.feed(bomb)
    total = 0
    reads = 0
    while r.has_input:
        got = r.read(65536)
        assert len(got) <= 65536
        total += len(got)
        reads += 1
        if not got:
            break
    assert total == 100 * 1024 * 1024
    assert reads >= 100 * 1024 * 1024 // 65536


@pytest.mark.parametrize("garbage", [b"\xff" * 64, b"\x07\x00garbage", b"hello world\r\n"])
def test_garbage_is_a_deflate_error(garbage: bytes) -> None:
    r = DeflateStream()
    r.feed(garbage)
    with pytest.raises(DeflateError):
        while r.has_input:
            if not r.read(1000):
                raise AssertionError("garbage was taken as incomplete input")

def test_data_after_a_final_block_is_an_error() -> None:
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    r = DeflateStream()
    r.feed(c.compress(b"a1 NOOP\r\n") + c.flush(zlib.Z_FINISH) + b"more")
    with pytest.raises(DeflateError):
        r.read(1000)


def test_incomplete_input_waits_for_more() -> None:
    s = DeflateStream()
    wire = s.compress_flush(b"a1 NOOP\r\n")
    r = DeflateStream()
    r.feed(wire[:1])
    assert r.read(100) == b""  # not even one whole symbol yet
    assert not r.has_input
    r.feed(wire[1:4])
    head = r.read(100)
    r.feed(wire[4:])
    assert head + _inflate_all(r, 100) == b"a1 NOOP\r\n"
