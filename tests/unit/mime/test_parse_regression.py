"""``parse`` reproduces, byte for byte, what the reference implementation gave for a fixed corpus.

The corpus and its results are in data/parse_regression.json.gz, written by
make_parse_regression.py (see there).  A deliberate change of parse output bumps
``FORMAT_VERSION`` and regenerates the file.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
from pathlib import Path

from postroom.mime import ParsedMessage, parse

DATA = Path(__file__).parent / "data" / "parse_regression.json.gz"


def _cases() -> list[dict[str, str]]:
    cases: list[dict[str, str]] = json.loads(gzip.decompress(DATA.read_bytes()))["cases"]
    return cases


def test_corpus_is_intact() -> None:
    cases = _cases()
    assert len(cases) > 1000
    for c in cases:
        assert hashlib.sha256(base64.b64decode(c["raw"])).hexdigest() == c["sha256"]


def test_parse_reproduces_corpus() -> None:
    mismatches = []
    for c in _cases():
        raw = base64.b64decode(c["raw"])
        p = parse(raw)
        if json.dumps(p.to_json(), separators=(",", ":")) != c["json"]:
            mismatches.append(c["sha256"])
            continue
        assert ParsedMessage.from_json(json.loads(c["json"])) == p, c["sha256"]
    assert not mismatches, f"{len(mismatches)} of the corpus differ, first {mismatches[:5]}"


def test_to_json_keys_follow_the_fields() -> None:
    """to_json is spelled out by hand: it must still have every field, in field order."""
    from dataclasses import fields

    from postroom.mime import Envelope, Part

    assert list(Part(0, 0, 0).to_json()) == [f.name for f in fields(Part)]
    assert list(Envelope().to_json()) == ["date", "subject", "in_reply_to", "message_id",
                                          "from_", "sender", "reply_to", "to", "cc", "bcc"]
