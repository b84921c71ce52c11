"""Differential test: our ENVELOPE/BODY/BODYSTRUCTURE vs Dovecot 2.3 goldens (see make_dovecot_golden.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from postroom.mime import bodystructure, envelope, parse

DATA = Path(__file__).parent / "data"

#: Deliberate differences, documented in docs/mime.md.
KNOWN_DIFFERENCES = {
    # Dovecot counts bare LF as CRLF in sizes (its "virtual size"); we report the stored octets,
    # which are what BODY[n] returns.  The store normalizes line endings at delivery.
    "bare_lf",
}

CASES = sorted(p.stem for p in DATA.glob("*.dovecot"))


def ours(raw: bytes) -> bytes:
    p = parse(raw)
    return (b"* 1 FETCH (ENVELOPE " + envelope(p) + b" BODY " + bodystructure(p, extended=False)
            + b" BODYSTRUCTURE " + bodystructure(p) + b")\r\n")


@pytest.mark.parametrize("name", CASES)
def test_matches_dovecot(name: str) -> None:
    if name in KNOWN_DIFFERENCES:
        pytest.skip("documented difference from Dovecot")
    raw = (DATA / f"{name}.eml").read_bytes()
    expected = (DATA / f"{name}.dovecot").read_bytes()
    assert ours(raw) == expected
