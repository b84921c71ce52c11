"""RFC 5228 §2.4.2.4 ``encoded-character``: ``${hex:..}`` / ``${unicode:..}`` in strings.

The decoding itself runs at compile time in
:func:`postroom.sieve.validator.decode_encoded_characters` (before variable expansion,
as the RFC orders it); this module only makes the capability available."""

from __future__ import annotations

from ..registry import REGISTRY

REGISTRY.extension("encoded-character")
