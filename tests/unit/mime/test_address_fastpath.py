"""The address fast path must give exactly what the full parser gives."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from postroom.mime.addresses import _fast, _fast_quoted, _parse_slow, parse_address_list

atom = st.text(alphabet="abcXYZ019!#$%&'*+/=?^_`{|}~-", min_size=1, max_size=6)
ws = st.sampled_from(["", " ", "  ", "\t", "\r\n "])
dot_atom = st.lists(atom, min_size=1, max_size=3).map(".".join)
addr = st.builds(lambda l, d: f"{l}@{d}", dot_atom, dot_atom)
name = st.lists(atom, min_size=1, max_size=3).map(" ".join)
noise = st.sampled_from(["", ".", "(c)", '"q"', ":", ";", "<", ">", "@", ",", "\\", "[x]", " . "])
item = st.one_of(
    st.builds(lambda a, w1, w2: f"{w1}{a}{w2}", addr, ws, ws),
    st.builds(lambda n, a, w: f"{n}{w}<{a}>", name, addr, ws),
    st.builds(lambda a: f"<{a}>", addr),
    st.builds(lambda n, a, w: f'"{n}"{w}<{a}>', name, addr, ws),
    st.builds(lambda a, n, x: f"{a}{x}{n}", addr, name, noise),
)
value = st.lists(item, min_size=1, max_size=4).map(", ".join).map(lambda s: s.encode())


@settings(max_examples=2000)
@given(value)
def test_fast_path_equals_full_parser(v: bytes) -> None:
    assert parse_address_list(v) == _parse_slow(v)


def test_fast_path_is_taken_for_common_shapes() -> None:
    for v in (b"a@b.c", b"Joe Bloggs <joe@x.test>", b"a@b, c@d", b"<x@y>"):
        assert _fast(v) is not None
    assert _fast_quoted(b'"Bloggs, Joe" <joe@x.test>') is not None
    assert _fast(b"undisclosed-recipients:;") is None
