"""Sieve (RFC 5228 and extensions): a pure engine, plus ManageSieve and delivery glue.

The shared types are in :mod:`postroom.sieve.api`. The engine is
:func:`compile_script` (text → :class:`~postroom.sieve.ast.Script`, or a
:class:`~postroom.sieve.api.SieveSyntaxError` naming line and column) and
:func:`evaluate` (script + message + envelope + :class:`~postroom.sieve.api.Host` →
:class:`~postroom.sieve.api.Result`). See docs/sieve.md, "Engine layout".
"""

from __future__ import annotations

from .api import (
    Envelope,
    Host,
    Limits,
    Result,
    SieveError,
    SieveLimitError,
    SieveRuntimeError,
    SieveSyntaxError,
)
from .ast import Script
from .engine import SUPPORTED_EXTENSIONS, compile_script, evaluate

__all__ = [
    "SUPPORTED_EXTENSIONS",
    "Envelope",
    "Host",
    "Limits",
    "Result",
    "Script",
    "SieveError",
    "SieveLimitError",
    "SieveRuntimeError",
    "SieveSyntaxError",
    "compile_script",
    "evaluate",
]
