"""``compile_script`` and ``evaluate``: the engine's two entry points.

Both promise to raise nothing but :class:`SieveError` subclasses for any input: the
lexer and parser are bounded (size and nesting limits are checked before any work),
and anything unexpected while running is wrapped in :class:`SieveRuntimeError`.
"""

from __future__ import annotations

from typing import Any

from . import core as _core  # noqa: F401 - registers RFC 5228 core
from . import match as _match  # noqa: F401 - registers comparators and match types
from .api import (
    Envelope,
    Host,
    Limits,
    Result,
    SieveError,
    SieveLimitError,
    SieveSyntaxError,
)
from .ast import Script
from .ext import load as _load_extensions
from .interp import run
from .parser import parse
from .registry import REGISTRY
from .validator import Checker

__all__ = ["SUPPORTED_EXTENSIONS", "compile_script", "evaluate"]

_load_extensions()

#: What ``require`` accepts and ManageSieve's SIEVE capability lists: every extension
#: registered by a module in ``postroom/sieve/ext/`` (only fully implemented ones are).
SUPPORTED_EXTENSIONS: tuple[str, ...] = tuple(sorted(REGISTRY.extensions))

#: Limits is frozen: one shared default instance.
DEFAULT_LIMITS = Limits()


def compile_script(text: str | bytes, *, limits: Limits = DEFAULT_LIMITS,
                   extensions: frozenset[str] | None = None) -> Script:
    """Parse and validate ``text``. ``extensions`` restricts what ``require`` may name
    (default: all of :data:`SUPPORTED_EXTENSIONS`)."""
    if isinstance(text, str):
        try:
            size = len(text.encode("utf-8"))
        except UnicodeEncodeError as e:  # lone surrogates: not text a script can hold
            line = text.count("\n", 0, e.start) + 1
            raise SieveSyntaxError("script is not valid UTF-8", line, e.start - text.rfind("\n", 0, e.start)) from None
    else:
        size = len(text)
    if size > limits.max_script_size:
        raise SieveLimitError(f"script too large ({size} octets, limit {limits.max_script_size})")
    if isinstance(text, bytes):
        data = text
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as e:
            line = data.count(b"\n", 0, e.start) + 1
            col = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
            raise SieveSyntaxError("script is not valid UTF-8", line, col) from None
    allowed = frozenset(SUPPORTED_EXTENSIONS) if extensions is None else frozenset(extensions) & frozenset(
        SUPPORTED_EXTENSIONS)
    allowed |= frozenset(REGISTRY.silent)
    try:
        commands = parse(text, limits.max_nesting)
        checker = Checker(REGISTRY, allowed)
        checker.check_script(commands)
    except SieveError:
        raise
    except RecursionError:
        raise SieveSyntaxError("script nesting too deep") from None
    except Exception as e:
        raise SieveSyntaxError(f"internal error while compiling: {type(e).__name__}: {e}") from e
    return Script(commands, frozenset(checker.all_required), size, allowed)


def evaluate(script: Script, raw: bytes, envelope: Envelope, host: Host, *, parsed: Any = None,
             limits: Limits = DEFAULT_LIMITS) -> Result:
    """Run ``script`` over the message ``raw`` (optionally already parsed with
    :func:`postroom.mime.parse.parse`). Raises :class:`SieveRuntimeError` or
    :class:`SieveLimitError`, never anything else."""
    return run(script, raw, envelope, host, parsed, limits)
