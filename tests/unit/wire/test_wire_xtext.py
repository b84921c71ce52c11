import pytest

from postroom.wire import xtext


@pytest.mark.parametrize("raw,enc", [
    ("user@example.org", "user@example.org"),
    ("a+b=c", "a+2Bb+3Dc"),
    ("with space", "with+20space"),
    ("ü", "+C3+BC"),
])
def test_roundtrip(raw, enc):
    assert xtext.encode(raw) == enc
    assert xtext.decode(enc) == raw


@pytest.mark.parametrize("bad", ["a b", "a+2b", "a+", "a=b", "a+ZZ", "é"])
def test_invalid(bad):
    with pytest.raises(xtext.XtextError):
        xtext.decode(bad)


def test_wire_is_io_free():
    import pathlib

    import postroom.wire as w

    for p in pathlib.Path(w.__file__).parent.glob("*.py"):
        assert "import asyncio" not in p.read_text(), p
    import postroom.smtp.proto as proto
    assert "import asyncio" not in pathlib.Path(proto.__file__).read_text()
