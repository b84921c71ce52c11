#!/usr/bin/env python3
"""CPU cost of the SMTP rate limits per message (docs/abuse.md, "Rate limits", "Cost").

Calls the rate-limit check (postroom.abuse.limits.RateLimits) the way an SMTP session
does for one message (connect, MAIL, one RCPT) against the real SQLite counters, and
prints the process CPU time per message: for one client hit again and again (its counts
in memory), for a new client per message (one read of its counters each), and for an
authenticated user's remote message; then the loop alone (``--base``), to subtract.
CPU time, not wall-clock time, so that a busy machine does not skew it much. Limits are
set out of reach and the tarpit off: this measures counting, not refusing or sleeping.

    python bench/ratelimit_cpu.py [--messages N]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import tempfile
import time
from pathlib import Path

from postroom.abuse.counters import Counters, SqliteStore
from postroom.abuse.guard import ConnInfo
from postroom.abuse.limits import DEFAULTS, Limit, RateLimits, RateSettings, client_keys
from postroom.smtp.address import Path as MailPath
from postroom.smtp.transaction import Peer, Rcpt, Resolved, Transaction


async def measure(n: int, base: bool) -> dict[str, float]:
    counters = Counters(SqliteStore(Path(tempfile.mkdtemp()) / "ratelimit.sqlite"))
    await counters.open()
    s = RateSettings(limits={name: Limit(10**9, 3600.0) for name in DEFAULTS}, tarpit_from=1.0)
    info = ConnInfo("192.0.2.1", "smtp", "smtp", "S", False, "bench")
    stranger = Peer("192.0.2.1", "mx.example", True, None, None, "S", False)
    user = Peer("192.0.2.9", "laptop", True, None, "joe@example.org", "S", True)
    out: dict[str, float] = {}
    for label, clients in (("one client", 1), ("a new client per message", n)):
        t0 = time.process_time()
        for i in range(n):
            c = i % clients
            ip, net = client_keys(f"10.{c // 65536 % 256}.{c // 256 % 256}.{c % 256}", s)
            check = RateLimits("mx", s, counters, info, ip, net)
            txn = Transaction(MailPath("a", f"d{i % 100}.example"))
            rcpt = Rcpt(MailPath("joe", "example.org"), Resolved(local=(1,)))
            if not base:
                await check.connect(None)  # type: ignore[arg-type]
                await check.mail(stranger, txn)
                await check.rcpt(stranger, txn, rcpt)
                await check.close()
            if i % 200 == 0:
                await asyncio.sleep(0)  # the write-behind flusher runs as in a server
        out[label] = (time.process_time() - t0) / n * 1e6
    t0 = time.process_time()
    for _ in range(n):
        check = RateLimits("mx", s, counters, info, "192.0.2.9", "192.0.2.0/24")
        txn = Transaction(MailPath("joe", "example.org"))
        rcpt = Rcpt(MailPath("x", "remote.example"), Resolved(remote=("x@remote.example",)))
        if not base:
            await check.mail(user, txn)
            await check.rcpt(user, txn, rcpt)
    out["submission, remote recipient (user limits too)"] = (time.process_time() - t0) / n * 1e6
    await counters.close()
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--messages", type=int, default=20000)
    args = p.parse_args()
    logging.disable(logging.WARNING)
    loop = asyncio.run(measure(args.messages, base=True))
    full = asyncio.run(measure(args.messages, base=False))
    for label, us in full.items():
        print(f"{label}: {us - loop[label]:.0f} µs CPU per message ({us:.0f} with the loop, {loop[label]:.0f} without)")


if __name__ == "__main__":
    main()
