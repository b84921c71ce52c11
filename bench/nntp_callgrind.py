#!/usr/bin/env python3
"""User-space instructions per NNTP reading command (valgrind's callgrind on the serving process):
the figure that does not move with a shared machine's load, for A/B work on ARTICLE's path.

One Postroom process (``workers = 1``) serves a group of ``--articles`` articles (bench/nntp.py's
articles, filled through ``News.post`` once into ``--data`` and copied for each run), started under
callgrind with instrumentation off. One client (bench/nntp.py's reader: one command, then its whole
answer) enters the group and reads ``--warm`` articles twice; then instrumentation is switched on
(``callgrind_control -i on``) for ``--commands`` commands of ``--verb`` over those articles, off, and
the counts dumped. Printed: instructions per command (everything the process ran in that window,
background work included, divided by the commands).

    python bench/nntp_callgrind.py                          # this tree, ARTICLE
    python bench/nntp_callgrind.py --src /tmp/base/src      # another tree on the same data
    python bench/nntp_callgrind.py --verb HEAD --commands 2000
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(1, str(ROOT / "tests"))

import nntp as B  # bench/nntp.py: the articles, the loader and the reader
from dovecot_peer import free_port


def fill(data: Path, articles: int) -> None:
    """The group, once: ``data`` keeps it for later runs (and other trees)."""
    if (data / "postroom.toml").exists():
        return
    data.mkdir(parents=True, exist_ok=True)
    B.Postroom(data, 1).load([B.article(i, 2048) for i in range(articles)])


def run(src: Path, data: Path, verb: str, commands: int, warm: int) -> float:
    with tempfile.TemporaryDirectory(prefix="nntp-cg-") as tmp:
        d = Path(tmp) / "srv"
        shutil.copytree(data, d)
        port = free_port()
        cfg = (d / "postroom.toml").read_text()
        cfg = re.sub(r'address = "127\.0\.0\.1:\d+"', f'address = "127.0.0.1:{port}"', cfg)
        cfg = cfg.replace('path = "data"', f'path = "{d}/data"')
        cfg = cfg.replace('cert = "cert.pem"', f'cert = "{d}/cert.pem"').replace('key = "key.pem"', f'key = "{d}/key.pem"')
        (d / "postroom.toml").write_text(cfg)
        with open(d / "serve.log", "wb") as log:
            proc = subprocess.Popen(
                ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={d}/cg.%p",
                 sys.executable, "-m", "postroom.cli", "-c", str(d / "postroom.toml"), "serve"],
                env=dict(os.environ, PYTHONPATH=str(src)), stdout=subprocess.DEVNULL, stderr=log)
        try:
            B.wait_port(port, proc, timeout=600)
            r = B.Reader(port)
            _count, lo, hi = r.enter(B.GROUP)
            numbers = list(range(lo, min(hi, lo + warm - 1) + 1))
            r.articles(numbers)
            r.articles(numbers)
            todo = [numbers[i % len(numbers)] for i in range(commands)]
            subprocess.run(["callgrind_control", "-i", "on", str(proc.pid)], capture_output=True, check=True)
            if verb == "ARTICLE":
                r.articles(todo)
            else:
                for n in todo:
                    r.cmd(f"{verb} {n}", b"22")
                    if verb in ("HEAD", "BODY"):
                        r.block()
            subprocess.run(["callgrind_control", "-i", "off", str(proc.pid)], capture_output=True, check=True)
            subprocess.run(["callgrind_control", "-d", str(proc.pid)], capture_output=True, check=True)
            r.quit()
        finally:
            proc.terminate()
            proc.wait(120)
        total = 0
        for f in glob.glob(f"{d}/cg.*"):
            with open(f) as out:
                total += sum(int(line.split()[1]) for line in out if line.startswith("totals:"))
        return total / commands


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--src", type=Path, default=ROOT / "src", help="the tree's src/ to run (PYTHONPATH)")
    ap.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "postroom-nntp-cg",
                    help="where the filled group is kept between runs")
    ap.add_argument("--articles", type=int, default=2000)
    ap.add_argument("--verb", default="ARTICLE", choices=["ARTICLE", "HEAD", "BODY", "STAT"])
    ap.add_argument("--commands", type=int, default=1000)
    ap.add_argument("--warm", type=int, default=500, help="articles read twice before, then read in turn")
    args = ap.parse_args()
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        print("valgrind (callgrind) is not installed", file=sys.stderr)
        return 2
    fill(args.data, args.articles)
    per = run(args.src, args.data, args.verb, args.commands, args.warm)
    print(f"{args.src}: {args.verb}, user-space instructions per command: {per:,.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
