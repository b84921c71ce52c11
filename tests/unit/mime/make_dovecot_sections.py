"""Regenerate ``data/sections.dovecot.json``: Dovecot 2.3's BODY[section] answers on small shapes.

Run as root on a machine with Dovecot installed (it drops to ``nobody``)::

    .venv/bin/python tests/unit/mime/make_dovecot_sections.py

Each shape is APPENDed once per section spec and each copy is asked one spec,
so every answer comes from a fresh parse: Dovecot serves a repeated
HEADER.FIELDS from its cache, and that answer differs for a header-only
message whose last line has no line break (see docs/mime.md).
test_sections.py compares ``mime.section`` with the stored answers.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from make_dovecot_golden import CONF, IMAP

OUT = Path(__file__).parent / "data" / "sections.dovecot.json"


def _crlf(s: str) -> str:
    return s.replace("\n", "\r\n")


SHAPES: dict[str, str] = {
    "single": _crlf("From: a@x\nSubject: s\n\nbody\n"),
    "mixed": _crlf("From: a@x\nContent-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain\n\n"
                   "one\n--b\n\ntwo\n--b--\n"),
    "mixed_rfc822_single": _crlf("From: a@x\nContent-Type: multipart/mixed; boundary=b\n\n--b\n\none\n--b\n"
                                 "Content-Type: message/rfc822\n\nFrom: in@x\nSubject: inner\n\ninner body\n"
                                 "--b--\n"),
    "mixed_rfc822_multi": _crlf("From: a@x\nContent-Type: multipart/mixed; boundary=b\n\n--b\n\none\n--b\n"
                                "Content-Type: message/rfc822\n\nFrom: in@x\nSubject: inner\n"
                                "Content-Type: multipart/alternative; boundary=c\n\n--c\n\ninner1\n--c\n"
                                "Content-Type: text/html\n\n<b>inner2</b>\n--c--\n--b--\n"),
    "top_rfc822_single": _crlf("From: a@x\nContent-Type: message/rfc822\n\nSubject: inside\n\nhello\n"),
    "top_rfc822_multi": _crlf("From: a@x\nContent-Type: message/rfc822\n\nSubject: inside\n"
                              "Content-Type: multipart/mixed; boundary=c\n\n--c\n\nx1\n--c\n\nx2\n--c--\n"),
    "nested_multi": _crlf("From: a@x\nContent-Type: multipart/mixed; boundary=b\n\n--b\n"
                          "Content-Type: multipart/alternative; boundary=c\n\n--c\n\nalt1\n--c\n\nalt2\n--c--\n"
                          "--b\n\ntwo\n--b--\n"),
    "header_only": "From: a@x\r\nSubject: no blank line",
    "header_only_eol": "From: a@x\r\nSubject: no blank line\r\n",
    "header_only_folded": "From: a@x\r\nSubject: a\r\n\tfolded",
    "header_only_bogus": "From: a\r\nbogus line\r\n cont\r\nSubject: s",
    "header_and_blank": "From: a@x\r\nSubject: s\r\n\r\n",
    "bogus_line": "From: a\r\nbogus line\r\nSubject: s\r\n\r\nbody",
    "no_header": "\r\nbody only",
    "part_header_only": _crlf("From: a@x\nContent-Type: multipart/mixed; boundary=b\n\n--b\n"
                              "Content-Type: text/plain\n--b\n\ntwo\n--b--\n"),
}

SPECS = ["", "HEADER", "TEXT", "1", "2", "3", "1.1", "1.2", "2.1", "2.2", "1.1.1", "2.1.1", "2.1.2", "1.1.2",
         "2.2.1", "1.1.1.1", "1.MIME", "2.MIME", "1.1.MIME", "2.1.MIME", "2.2.MIME", "1.1.1.MIME",
         "1.HEADER", "2.HEADER", "1.1.HEADER", "2.1.HEADER", "1.TEXT", "2.TEXT", "1.1.TEXT", "2.1.TEXT",
         "HEADER.FIELDS (SUBJECT)", "HEADER.FIELDS.NOT (SUBJECT)", "HEADER.FIELDS (FROM)",
         "HEADER.FIELDS.NOT (FROM)", "HEADER.FIELDS (X-NONE)", "HEADER.FIELDS.NOT (X-NONE)",
         "1.HEADER.FIELDS (SUBJECT)", "1.HEADER.FIELDS.NOT (SUBJECT)", "2.HEADER.FIELDS (SUBJECT)",
         "2.HEADER.FIELDS.NOT (SUBJECT)", "2.HEADER.FIELDS.NOT (X-NONE)", "1.1.HEADER.FIELDS (SUBJECT)"]

_ITEM = re.compile(rb"^\* (\d+) FETCH \(BODY\[[^\]]*\] (?:\{(\d+)\}\r\n|\"((?:[^\"\\]|\\.)*)\"|(NIL))", re.M)


def ask(messages: list[bytes], specs: list[str]) -> dict[int, bytes | None]:
    """APPEND ``messages``, then FETCH ``BODY.PEEK[specs[i]]`` of message i+1 (one session)."""
    nobody = pwd.getpwnam("nobody")
    with tempfile.TemporaryDirectory() as d:
        os.chmod(d, 0o755)
        for sub in ("run", "state", "home"):
            os.mkdir(f"{d}/{sub}")
        os.chown(f"{d}/home", nobody.pw_uid, nobody.pw_gid)
        Path(f"{d}/dovecot.conf").write_text(CONF.format(d=d, gid=nobody.pw_gid))
        script = b"".join(b"a%d APPEND INBOX {%d+}\r\n%s\r\n" % (i, len(m), m) for i, m in enumerate(messages))
        script += b"b SELECT INBOX\r\n"
        script += b"".join(b"c%d FETCH %d (BODY.PEEK[%s])\r\n" % (i, i + 1, s.encode()) for i, s in enumerate(specs))
        script += b"d LOGOUT\r\n"
        out = subprocess.run(
            [IMAP, "-c", f"{d}/dovecot.conf", "-o", f"mail_location=maildir:{d}/home/m"],
            input=script, capture_output=True, env={"USER": "t", "HOME": f"{d}/home"}, timeout=120,
        ).stdout
    answers: dict[int, bytes | None] = {}
    for m in _ITEM.finditer(out):
        n = int(m.group(1))
        if m.group(2) is not None:
            answers[n] = out[m.end():m.end() + int(m.group(2))]
        elif m.group(3) is not None:
            answers[n] = re.sub(rb"\\(.)", rb"\1", m.group(3))
        else:
            answers[n] = None
    return answers


def main() -> int:
    if not os.path.exists(IMAP):
        print("dovecot imap binary not found", file=sys.stderr)
        return 1
    messages, specs, keys = [], [], []
    for name, text in SHAPES.items():
        for spec in SPECS:
            messages.append(text.encode("ascii"))
            specs.append(spec)
            keys.append((name, spec))
    answers = ask(messages, specs)
    if len(answers) != len(keys):
        print(f"expected {len(keys)} answers, got {len(answers)}", file=sys.stderr)
        return 1
    dovecot: dict[str, dict[str, str | None]] = {name: {} for name in SHAPES}
    for i, (name, spec) in enumerate(keys, 1):
        a = answers[i]
        dovecot[name][spec] = None if a is None else a.decode("ascii")
    OUT.write_text(json.dumps({"shapes": SHAPES, "dovecot": dovecot}, indent=1) + "\n")
    print(f"{OUT}: {len(keys)} answers")
    return 0


if __name__ == "__main__":
    sys.exit(main())
