"""split_header (one regex over the header block) against the rules in its docstring, line by line."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from postroom.mime.headers import HeaderField, split_header

PIECES = [b"\r\n", b"\n", b"\r", b" ", b"\t", b":", b"::", b"Subject", b"From ", b"X-A", b"Subject:",
          b" Subject:", b"\tcont", b"\r\n\r\n", b"\n\n", b"\r\n ", b"\n\t", b"\xff", b"\x00"]


def reference(raw: bytes, start: int, end: int) -> tuple[list[HeaderField], int]:
    lines: list[tuple[int, int]] = []  # (start, end incl. LF) of each line
    pos = start
    while pos < end:
        nl = raw.find(b"\n", pos, end)
        lines.append((pos, end if nl < 0 else nl + 1))
        pos = end if nl < 0 else nl + 1
    groups: list[tuple[int, int]] = []  # field extents
    open_field = False
    body = end
    for s, e in lines:
        line = raw[s:e]
        if line in (b"\n", b"\r\n"):
            body = e
            break
        if open_field and line[:1] in (b" ", b"\t"):
            groups[-1] = (groups[-1][0], e)
            continue
        content = line[:-2] if line.endswith(b"\r\n") else line[:-1] if line.endswith(b"\n") else line
        open_field = b":" in content
        if open_field:
            groups.append((s, e))
    fields = []
    for s, e in groups:
        text = raw[s:e]
        text = text[:-2] if text.endswith(b"\r\n") else text[:-1] if text.endswith(b"\n") else text
        name, _, value = text.partition(b":")
        fields.append(HeaderField(name.rstrip(b" \t"), value.lstrip(b" \t"), s, e))
    return fields, body


@settings(max_examples=2000, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(PIECES) | st.binary(max_size=4), max_size=40), st.data())
def test_split_header_follows_the_line_rules(chunks: list[bytes], data: st.DataObject) -> None:
    raw = b"".join(chunks)
    start = data.draw(st.integers(0, len(raw)))
    end = data.draw(st.integers(start, len(raw)))
    assert split_header(raw, start, end) == reference(raw, start, end)
