"""``postroom sieve test`` and ``postroom sieve testsuite``: the shell side of
:mod:`postroom.sieve.offline` and :mod:`postroom.sieve.testsuite`.

``sieve test SCRIPT MESSAGE`` prints one line per action (``postroom.sieve.offline.describe``),
the implicit keep last, like Pigeonhole's ``sieve-test``; nothing is delivered or sent.
Exit 0 when the script ran, 1 when it does not compile (``SCRIPT: line L, column C: …``
on stderr) or failed while running (then the line printed is ``implicit keep``: what
delivery does), 2 for unreadable files.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import UsageError
from ..mime.addresses import parse_address_list
from .api import Envelope, SieveError
from .engine import compile_script, evaluate
from .offline import OfflineHost, describe, headers_of

__all__ = ["run_test", "run_testsuite"]


def _read(path: str, what: str) -> bytes:
    try:
        return sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
    except OSError as exc:
        raise UsageError(f"{path}: cannot read the {what}: {exc.strerror or exc}") from None


def _first_to(raw: bytes) -> str:
    value = headers_of(raw).get("To")
    if value is None:
        return ""
    for a in parse_address_list(str(value).encode("utf-8", "replace")):
        if a.mailbox and a.host and a.host.isprintable() and "." in a.host:
            return f"{a.mailbox}@{a.host}"
    return ""


def run_test(args: argparse.Namespace) -> int:
    text = _read(args.script, "script")
    raw = _read(args.message, "message")
    if b"\r\n" not in raw:
        raw = raw.replace(b"\n", b"\r\n")  # a message saved with LF line ends
    try:
        script = compile_script(text)
    except SieveError as exc:
        print(f"{args.script}: {exc}", file=sys.stderr)
        return 1
    recipient = args.recipient or _first_to(raw) or "user@localhost"
    envelope = Envelope(sender=args.sender.strip("<>"), recipient=recipient)
    host = OfflineHost.for_message(raw, recipient=recipient, script_dir=Path(args.script).resolve().parent)
    try:
        result = evaluate(script, raw, envelope, host)
    except SieveError as exc:
        print(f"{args.script}: runtime error: {exc}", file=sys.stderr)
        print("implicit keep")
        return 1
    for note in result.log:
        print(f"# {note}", file=sys.stderr)
    for action in result.actions:
        print(describe(action))
    return 0


def run_testsuite(args: argparse.Namespace) -> int:
    from .testsuite import run_file

    failed = 0
    for name in args.files:
        try:
            report = run_file(Path(name))
        except OSError as exc:
            raise UsageError(f"{name}: cannot read: {exc.strerror or exc}") from None
        passed = sum(o.passed for o in report.outcomes)
        status = "PASS" if report.passed else "FAIL"
        print(f"{name}: {status} ({passed}/{len(report.outcomes)} tests passed)")
        failed += not report.passed
    return 1 if failed else 0
