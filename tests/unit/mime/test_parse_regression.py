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
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any

from postroom.mime import Address, Envelope, ParsedMessage, Part, parse

_ENVELOPE_KEYS = ("date", "subject", "in_reply_to", "message_id", "from_", "sender", "reply_to", "to", "cc", "bcc")

DATA = Path(__file__).parent / "data" / "parse_regression.json.gz"


def _cases() -> list[dict[str, str]]:
    cases: list[dict[str, str]] = json.loads(gzip.decompress(DATA.read_bytes()))["cases"]
    return cases


def test_corpus_is_intact() -> None:
    cases = _cases()
    assert len(cases) > 1000
    for c in cases:
        assert hashlib.sha256(base64.b64decode(c["raw"])).hexdigest() == c["sha256"]


def _full(d: dict[str, Any]) -> dict[str, Any]:
    """The corpus's form of a part's JSON: every key, in field order (to_json leaves out the
    keys at their default since the JSON went compact; the corpus was written before)."""
    out: dict[str, Any] = {}
    for f in fields(Part):
        if f.name in d:
            v = d[f.name]
        else:  # only fields with a default may be left out
            default = f.default if f.default is not MISSING else f.default_factory()  # type: ignore[misc]
            v = list(default) if isinstance(default, tuple) else default
        if f.name == "envelope" and v is not None:
            v = {k: v.get(k) for k in _ENVELOPE_KEYS}
        elif f.name == "children":
            v = [_full(c) for c in v]
        out[f.name] = v
    return out


def test_parse_reproduces_corpus() -> None:
    mismatches = []
    for c in _cases():
        raw = base64.b64decode(c["raw"])
        p = parse(raw)
        d = p.to_json()
        d["root"] = _full(d["root"])
        if json.dumps(d, separators=(",", ":")) != c["json"]:
            mismatches.append(c["sha256"])
            continue
        assert ParsedMessage.from_json(json.loads(c["json"])) == p, c["sha256"]
        assert parse(raw, raw.count(b"\n")) == p, c["sha256"]  # the delivery path's line count
        # The compact form written now reads back to the same tree.
        assert ParsedMessage.from_json(json.loads(json.dumps(p.to_json()))) == p, c["sha256"]
    assert not mismatches, f"{len(mismatches)} of the corpus differ, first {mismatches[:5]}"


def test_to_json_keys_follow_the_fields() -> None:
    """to_json is spelled out by hand: with no field at its default it must have every
    field, and a part with every optional field at its default only the fixed ones."""
    addr = (Address("n", None, "m", "h"),)
    env = Envelope("d", "s", addr, addr, addr, addr, addr, addr, "i", "m")
    assert list(env.to_json()) == ["date", "subject", "in_reply_to", "message_id",
                                   "from_", "sender", "reply_to", "to", "cc", "bcc"]
    assert Envelope().to_json() == {}
    pair = (("a", "b"),)
    kid = Part(0, 0, 0)
    full = Part(1, 2, 3, "t", "s", "T", "S", pair, pair, "c", "d", "e", "m", "disp", pair, pair, ("en",),
                "loc", 4, env, (kid,))
    assert set(full.to_json()) == {f.name for f in fields(Part)}
    assert Part.from_json(full.to_json()) == full
    assert list(Part(0, 0, 0).to_json()) == ["header_start", "body_start", "body_end", "type", "subtype",
                                             "type_wire", "subtype_wire", "lines"]
    assert Part.from_json(Part(0, 0, 0).to_json()) == Part(0, 0, 0)
