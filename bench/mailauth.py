#!/usr/bin/env python3
"""The cost of mail authentication: signing, the inbound checks, and the MX path with them.

1. Signing, in one process: DKIM signatures per second for a 10 KB message with an
   RSA-2048 key, an Ed25519 key, and both (what Postroom does when both are active).
2. The inbound checks, in one process: SPF + DKIM (RSA and Ed25519 signatures) + ARC +
   DMARC of one message, answered from the resolver's cache, one after another.
3. The MX path: ``postroom serve`` receiving a DKIM-signed 10 KB message from
   ``smtp-source`` (20 clients, then 1) with the checks on, then off
   (``[mailauth] check_listeners = []``), and Postfix (no checks: it has none without
   milters) side by side. Issue #13 asks that 20 clients with the checks on stay at
   1.5x Postfix or more; the line says whether they do.

Every DNS answer comes from a local DNS fixture with a long TTL, so after the first
message each lookup is a cache hit: the figures are the checks' own cost.

    python bench/mailauth.py             # 5000 messages at 20 clients
    python bench/mailauth.py --quick     # a smoke run (CI)
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(HERE), str(ROOT / "tests"), str(ROOT / "src")]

import smtp as smtp_bench  # noqa: E402  (bench/smtp.py: the Postroom and Postfix runners)
from dnsfixture import DnsFixture  # noqa: E402

SENDER_DOMAIN = "sender.test"
SENDER = f"news@{SENDER_DOMAIN}"


def make_message(size: int = smtp_bench.SIZE) -> bytes:
    lines = [f"From: Sender <{SENDER}>", f"To: <{smtp_bench.RCPT}>", "Subject: mail authentication bench",
             "Date: Sun, 06 Dec 2026 10:00:00 +0000", f"Message-ID: <bench@{SENDER_DOMAIN}>",
             "MIME-Version: 1.0", "Content-Type: text/plain; charset=us-ascii", ""]
    line = "The quick brown fox jumps over the lazy dog, again and again and again. 0123"
    body = [line] * (size // (len(line) + 2))
    return ("\r\n".join(lines + body) + "\r\n").encode()


def sender_keys(base: Path, dns_srv: DnsFixture) -> list:
    from postroom.mailauth import keys

    out = []
    for alg in ("rsa", "ed25519"):
        k = keys.keygen(base / "sender-keys", SENDER_DOMAIN, algorithm=alg)
        dns_srv.txt(k.record_name, k.txt_record())
        out.append(k)
    dns_srv.txt(SENDER_DOMAIN, "v=spf1 ip4:127.0.0.0/8 -all")
    dns_srv.txt("mta.sender.test", "v=spf1 a -all")  # the HELO name's own SPF (RFC 7208 §2.3)
    dns_srv.a("mta.sender.test", "127.0.0.1")
    dns_srv.txt(f"_dmarc.{SENDER_DOMAIN}", "v=DMARC1; p=reject; rua=mailto:dmarc@sender.test")
    return out


def rate(fn, seconds: float) -> float:
    n, t0 = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        el = time.perf_counter() - t0
        if el >= seconds:
            return n / el


def bench_signing(ks: list, msg: bytes, seconds: float) -> dict[str, float]:
    from postroom.mailauth.dkim import sign
    from postroom.mailauth.settings import DEFAULT_SIGN_HEADERS

    rsa, ed = ks
    return {name: rate(lambda k=k: sign(msg, k, DEFAULT_SIGN_HEADERS), seconds)
            for name, k in (("rsa-2048", [rsa]), ("ed25519", [ed]), ("both", [rsa, ed]))}


def bench_checks(dns_srv: DnsFixture, signed: bytes, seconds: float) -> tuple[float, str]:
    from postroom.mailauth import inbound
    from postroom.mailauth.settings import MailauthSettings
    from postroom.resolver import DnsSettings, Resolver

    async def run() -> tuple[float, str]:
        resolver = Resolver(DnsSettings((dns_srv.host, dns_srv.port), 2.0, 2))
        settings = MailauthSettings()
        first = await inbound.check(resolver, settings, "mx.example.test", ip="127.0.0.1", helo="mta.sender.test",
                                    mail_from=SENDER, message=signed)
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            await inbound.check(resolver, settings, "mx.example.test", ip="127.0.0.1", helo="mta.sender.test",
                                mail_from=SENDER, message=signed)
            n += 1
        return n / (time.perf_counter() - t0), inbound.summary(first.checks)
    return asyncio.run(run())


class CheckedPostroom(smtp_bench.Postroom):
    """bench/smtp.py's Postroom, its DNS from the fixture, the checks on or off, and
    smtp-source sending the signed message."""

    def __init__(self, base: Path, workers: int, resolver: str, checks: bool, eml: Path) -> None:
        super().__init__(base / ("postroom-checks" if checks else "postroom-nochecks"), workers)
        self.dir = base / ("postroom-checks" if checks else "postroom-nochecks")
        self.name = "checks on" if checks else "checks off"
        self.resolver, self.checks, self.eml = resolver, checks, eml

    def setup(self) -> None:
        super().setup()
        cfg = self.dir / "postroom.toml"
        text = cfg.read_text()
        if self.checks:  # bench/smtp.py turns them off
            text = text.replace("[mailauth]\ncheck_listeners = []\n", "")
        cfg.write_text(text + f'\n[dns]\nresolver = "{self.resolver}"\n')

    def run(self, sessions: int, messages: int) -> float:
        import subprocess

        t = time.perf_counter()
        subprocess.run(["smtp-source", "-s", str(sessions), "-m", str(messages), "-F", str(self.eml),
                        "-M", "mta.sender.test", "-f", SENDER, "-t", smtp_bench.RCPT, f"127.0.0.1:{self.port}"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=3600)
        return time.perf_counter() - t


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a smoke run (CI)")
    ap.add_argument("--messages", type=int, help="messages at 20 clients (default 5000)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--no-postfix", action="store_true")
    args = ap.parse_args(argv)
    if not shutil.which("smtp-source"):
        print("smtp-source (Debian package postfix) is needed: bash scripts/install-test-deps.sh")
        return 2
    m20 = args.messages or (200 if args.quick else 5000)
    m1 = max(20, m20 // 5)
    seconds = 0.3 if args.quick else 3.0
    base = Path(tempfile.mkdtemp(prefix="postroom-bench-mailauth-"))
    ok = True
    try:
        with DnsFixture(ttl=3600) as dns_srv:
            ks = sender_keys(base, dns_srv)
            from postroom.mailauth.dkim import sign
            from postroom.mailauth.settings import DEFAULT_SIGN_HEADERS

            msg = make_message()
            signed = sign(msg, ks, DEFAULT_SIGN_HEADERS) + msg
            print(f"Message: {len(msg)} bytes; DNS from a fixture on {dns_srv.address} (cached after the first)")
            print("\n1. DKIM signing, one process (signatures/s):")
            for name, v in bench_signing(ks, msg, seconds).items():
                print(f"   {name:9s} {v:8.0f}/s  ({1e3 / v:.2f} ms each)")
            per_s, summary = bench_checks(dns_srv, signed, seconds)
            print(f"\n2. Inbound checks (SPF + 2 DKIM signatures + ARC + DMARC), one process, one at a time:\n"
                  f"   {per_s:8.0f} messages/s  ({1e3 / per_s:.2f} ms each); results: {summary}")
            if "spf=pass dkim=pass,pass dmarc=pass" not in summary:
                print("   CHECK FAILED: the bench message should pass every check")
                ok = False

            eml = base / "signed.eml"
            eml.write_bytes(signed.replace(b"\r\n", b"\n"))  # smtp-source adds CRLF to each line
            servers: list = [CheckedPostroom(base, args.workers, dns_srv.address, True, eml),
                             CheckedPostroom(base, args.workers, dns_srv.address, False, eml)]
            why = "--no-postfix" if args.no_postfix else smtp_bench.Postfix.available()
            if why:
                print(f"postfix: skipped ({why})")
            else:
                servers.append(smtp_bench.Postfix(base))
            print(f"\n3. The MX path, {args.workers} Postroom workers, smtp-source, 10 KB signed messages:")
            rates: dict[tuple[str, int], float] = {}
            for srv in servers:
                srv.setup()
                srv.start()
                total = 0
                try:
                    srv.run(2, 10)
                    total = 10
                    for sessions, n in ((20, m20), (1, m1)):
                        el = srv.run(sessions, n)
                        total += n
                        rates[(srv.name, sessions)] = n / el
                        print(f"   {srv.name:10s} {sessions:2d} client(s): {n:5d} msgs in {el:6.2f}s = "
                              f"{n / el:7.1f} msg/s", flush=True)
                finally:
                    srv.stop()
                got = srv.delivered()
                if got != total:
                    print(f"   {srv.name}: DELIVERY CHECK FAILED: {got} of {total} delivered")
                    ok = False
            if any(isinstance(s, CheckedPostroom) and s.checks for s in servers):
                checked = servers[0]
                raw = _first_message(checked)
                if b"dmarc=pass" not in raw:
                    print("   CHECK FAILED: the delivered message has no dmarc=pass")
                    ok = False
            on, off = rates.get(("checks on", 20)), rates.get(("checks off", 20))
            pf = rates.get(("postfix", 20))
            print()
            if on and off:
                print(f"20 clients: checks on / off = {on / off:.2f}x "
                      f"(1 client: {rates[('checks on', 1)] / rates[('checks off', 1)]:.2f}x)")
            if on and pf:
                verdict = "meets" if on / pf >= 1.5 else "MISSES"
                print(f"20 clients: checks on / Postfix = {on / pf:.2f}x ({verdict} the 1.5x target); "
                      f"1 client: {rates[('checks on', 1)] / rates[('postfix', 1)]:.2f}x")
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return 0 if ok else 1


def _first_message(srv: CheckedPostroom) -> bytes:
    from postroom.config import load
    from postroom.storage import open_store

    async def read() -> bytes:
        cfg = load(srv.dir / "postroom.toml")
        store = open_store(cfg.backend, cfg.data_dir)
        await store.open()
        try:
            acct = await store.get_account(smtp_bench.RCPT)
            box = await store.get_mailbox(acct.id, "INBOX")
            [first, *_] = await store.list_messages(box.id)
            return await store.read_message(first)
        finally:
            await store.close()
    return asyncio.run(read())


if __name__ == "__main__":
    sys.exit(main())
