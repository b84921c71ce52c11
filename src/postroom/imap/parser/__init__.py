"""Command parsers: framing (``..tokenizer``) → tag, verb, typed arguments."""

from __future__ import annotations

from .base import Reader

__all__ = ["Reader", "split_command"]


def split_command(raw: bytes) -> tuple[bytes, str, Reader]:
    """``tag SP command`` → tag, upper-case verb (``UID FETCH`` …) and a reader after it.

    Raises ParseError when there is no valid tag or verb; the caller answers
    ``* BAD`` (untagged, §7.1.3) when the tag itself is unusable.
    """
    r = Reader(raw)
    tag = r.tag()
    r.sp()
    verb = r.keyword()
    if verb == "UID":
        r.sp()
        verb = "UID " + r.keyword()
    return tag, verb, r
