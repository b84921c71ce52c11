"""Regenerate ``data/*.dovecot`` goldens by asking a local Dovecot (2.3) the same questions.

Run as root on a machine with Dovecot installed (it drops to ``nobody``)::

    .venv/bin/python tests/unit/mime/make_dovecot_golden.py

For each ``data/NAME.eml`` it APPENDs the message to a throw-away Maildir via
the preauthenticated ``imap`` binary and stores the raw untagged response to
``FETCH 1 (ENVELOPE BODY BODYSTRUCTURE)`` in ``data/NAME.dovecot``.
test_dovecot_golden.py compares our output with these files byte for byte.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

DATA = Path(__file__).parent / "data"
IMAP = "/usr/lib/dovecot/imap"
CONF = """protocols =
ssl = no
mail_uid = nobody
mail_gid = {gid}
first_valid_uid = 1
first_valid_gid = 1
base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/log
"""


def fetch(eml: bytes) -> bytes | None:
    nobody = pwd.getpwnam("nobody")
    with tempfile.TemporaryDirectory() as d:
        os.chmod(d, 0o755)
        for sub in ("run", "state", "home"):
            os.mkdir(f"{d}/{sub}")
        os.chown(f"{d}/home", nobody.pw_uid, nobody.pw_gid)
        Path(f"{d}/dovecot.conf").write_text(CONF.format(d=d, gid=nobody.pw_gid))
        script = (b"a APPEND INBOX {%d+}\r\n" % len(eml) + eml + b"\r\nb SELECT INBOX\r\n"
                  b"c FETCH 1 (ENVELOPE BODY BODYSTRUCTURE)\r\nd LOGOUT\r\n")
        out = subprocess.run(
            [IMAP, "-c", f"{d}/dovecot.conf", "-o", f"mail_location=maildir:{d}/home/m"],
            input=script, capture_output=True, env={"USER": "t", "HOME": f"{d}/home"}, timeout=30,
        ).stdout
    m = re.search(rb"^\* 1 FETCH .*?(?=^c OK)", out, re.S | re.M)
    return m.group(0) if m else None


def main() -> int:
    if not shutil.which(IMAP) and not os.path.exists(IMAP):
        print("dovecot imap binary not found", file=sys.stderr)
        return 1
    for eml in sorted(DATA.glob("*.eml")):
        got = fetch(eml.read_bytes())
        target = eml.with_suffix(".dovecot")
        if got is None:
            print(f"{eml.name}: dovecot gave no FETCH (e.g. refused an empty APPEND)")
            target.unlink(missing_ok=True)
            continue
        target.write_bytes(got)
        print(f"{eml.name}: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
