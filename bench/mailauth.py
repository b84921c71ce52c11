#!/usr/bin/env python3
"""The cost of mail authentication: signing, the inbound checks, and the MX path with them.

1. Signing, in one process: DKIM signatures per second for a 10 KB message with an
   RSA-2048 key, an Ed25519 key, and both (what Postroom does when both are active).
2. The inbound checks, in one process: SPF + DKIM (RSA and Ed25519 signatures) + ARC +
   DMARC of one message, answered from the resolver's cache, one after another.
3. The MX path: ``postroom serve`` receiving a DKIM-signed 10 KB message from
   ``smtp-source`` (20 clients, then 1) with the checks on, then off
   (``[mailauth] check_listeners = []``), beside plain Postfix (no checks) and Postfix
   doing the same checks the way admins assemble them: OpenDKIM and OpenDMARC
   (p=reject enforced) as milters, postfix-policyd-spf-python as a policy service
   (bench/mailauth_peer.py). Issue #13 asks that 20 clients with the checks on stay at
   1.5x Postfix or more; the last lines say whether they do, against both.

Every DNS answer comes from a local DNS fixture with a long TTL. As root it listens on
127.0.0.153:53 and everyone asks it: Postroom through ``[dns] resolver``, Postfix and its
milters through a private /etc/resolv.conf (see bench/mailauth_peer.py). Postroom caches,
so after the first message each lookup is a cache hit; the figures are the checks' own
cost. Each MX column also prints how many queries reached the fixture.

    python bench/mailauth.py                    # 5000 messages at 20 clients
    python bench/mailauth.py --quick            # a smoke run (CI)
    python bench/mailauth.py --only postfix+checks --only checks-on
    python bench/mailauth.py --cpu 2000         # server CPU a message, checks on / off, 3 rounds
    PYTHONPATH=/tmp/before/src python bench/mailauth.py --cpu 2000   # the same, another copy of src
    python bench/mailauth.py --cpu 2000 --against /tmp/before/src   # both copies at once, side by side
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# This tree's src last: a PYTHONPATH naming another copy of the code (an A/B run, see
# docs/mailauth.md "Cost") then holds for parts 1 and 2 too, as it does for the servers.
sys.path[:0] = [str(HERE), str(ROOT / "tests")]
sys.path.append(str(ROOT / "src"))

import mailauth_peer as peer  # noqa: E402  (Postfix plain and with OpenDKIM, OpenDMARC, policyd-spf)
import smtp as smtp_bench  # noqa: E402  (bench/smtp.py: the Postroom and Postfix runners)
from dnsfixture import DnsFixture  # noqa: E402

# Not under .test: libunbound (OpenDKIM's resolver) answers the RFC 6761 names itself
# unless a config file says otherwise, and OpenDKIM 2.11 re-reads that file for every
# message, in every thread at once, which crashes it (bench/mailauth_peer.py).
# .example gets no special treatment from resolvers (RFC 6761 §6.5).
SENDER_DOMAIN = "sender.example"
SENDER = f"news@{SENDER_DOMAIN}"
HELO = f"mta.{SENDER_DOMAIN}"
# --only names: Postroom with its checks on / off, plain Postfix, Postfix + milters + policyd-spf.
COLUMNS = ("checks-on", "checks-off", "postfix", "postfix+checks")


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
    dns_srv.txt(HELO, "v=spf1 a -all")  # the HELO name's own SPF (RFC 7208 §2.3)
    dns_srv.a(HELO, "127.0.0.1")
    dns_srv.txt(f"_dmarc.{SENDER_DOMAIN}", f"v=DMARC1; p=reject; rua=mailto:dmarc@{SENDER_DOMAIN}")
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
        first = await inbound.check(resolver, settings, "mx.example.test", ip="127.0.0.1", helo=HELO,
                                    mail_from=SENDER, message=signed)
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            await inbound.check(resolver, settings, "mx.example.test", ip="127.0.0.1", helo=HELO,
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
        return peer.smtp_source_file(self.port, sessions, messages, self.eml, SENDER, HELO)


def fixture() -> tuple[DnsFixture, str | None]:
    """The DNS fixture: as root on 127.0.0.153:53, for Postroom and Postfix's peers alike;
    otherwise on a random port, for Postroom only, and the reason."""
    why = peer.namespace_unavailable()
    if why is None:
        try:
            return DnsFixture(host=peer.FIXTURE_HOST, port=53, ttl=3600), None
        except OSError as e:
            why = f"cannot listen on {peer.FIXTURE_HOST}:53: {e}"
    return DnsFixture(ttl=3600), why


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def measure(srv: CheckedPostroom | peer.PeerPostfix, dns_srv: DnsFixture, plan: tuple[tuple[int, int], ...],
            rates: dict[tuple[str, int], float]) -> bool:
    """One MX column: a warm-up, then each (clients, messages) of ``plan`` into ``rates``;
    every message delivered, the checks' verdicts in them. False if anything failed."""
    total, q0, cpu0 = 0, len(dns_srv.queries), cpu_seconds()
    try:
        srv.setup()
        srv.start()
        srv.run(2, 10)
        total = 10
        for sessions, n in plan:
            el = srv.run(sessions, n)
            total += n
            rates[(srv.name, sessions)] = n / el
            print(f"   {srv.name:14s} {sessions:2d} client(s): {n:5d} msgs in {el:6.2f}s = {n / el:7.1f} msg/s",
                  flush=True)
    except Exception as e:  # the next column still runs; this one is reported as failed
        stderr = getattr(e, "stderr", None)
        print(f"   {srv.name}: FAILED: {type(e).__name__}: {e}" +
              (f"\n   {stderr.decode(errors='replace').strip()[-500:]}" if stderr else ""))
        return False
    finally:
        srv.stop()
    ok = True
    queries = dns_srv.queries[q0:]
    sender_q = sum(1 for qname, _ in queries if qname.endswith(f"{SENDER_DOMAIN}."))
    got = srv.delivered()
    print(f"   {srv.name}: {got} of {total} delivered; {len(queries)} DNS queries reached the fixture "
          f"({sender_q} for {SENDER_DOMAIN}, {len(queries) / total:.2f} per message); this process "
          f"(DNS fixture, Maildir polling) used {cpu_seconds() - cpu0:.1f}s CPU")
    if got != total:
        print(f"   {srv.name}: DELIVERY CHECK FAILED: {got} of {total} delivered")
        ok = False
    if isinstance(srv, CheckedPostroom) and srv.checks and b"dmarc=pass" not in _first_message(srv):
        print("   CHECK FAILED: the delivered message has no dmarc=pass")
        ok = False
    if isinstance(srv, peer.CheckedPostfix):
        print(srv.summary())
        problems = srv.verify() + ([] if sender_q else [f"no {SENDER_DOMAIN} query reached the fixture"])
        if problems:
            print(f"   CHECK FAILED: {'; '.join(problems)}")
            ok = False
    return ok


def _tree_cpu(pid: int) -> float:
    """CPU seconds (user + system, all threads) of ``pid`` and its descendants, from /proc."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (stat fields 14 and 15)
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue  # gone meanwhile
    return total / os.sysconf("SC_CLK_TCK")


def cpu_per_message(srv: CheckedPostroom, n: int, rounds: int) -> list[float]:
    """Milliseconds of server CPU (every ``postroom serve`` process) a message, over ``n``
    messages from 20 smtp-source clients, ``rounds`` times: what a shared machine's
    throughput figures cannot show (docs/mailauth.md "CPU per message")."""
    out = []
    srv.setup()
    srv.start()
    try:
        srv.run(2, 50)  # warm: caches filled, workers forked and busy once
        assert srv.proc is not None
        for _ in range(rounds):
            before = _tree_cpu(srv.proc.pid)
            srv.run(20, n)
            out.append((_tree_cpu(srv.proc.pid) - before) / n * 1e3)
    finally:
        srv.stop()
    if srv.delivered() != 50 + n * rounds:
        raise RuntimeError(f"{srv.name}: {srv.delivered()} of {50 + n * rounds} delivered")
    return out


def cpu_side_by_side(base: Path, workers: int, resolver: str, eml: Path, n: int, rounds: int,
                     other_src: str) -> None:
    """``--cpu N --against SRC``: server CPU a message of this tree and of another copy of
    the code (``SRC``, a ``src`` directory) with the checks on and off, both servers
    receiving at the same time, so that a shared, busy machine slows both alike (an A/B
    run one after the other compares different moments of the machine's load)."""
    import threading

    mine = os.environ.get("PYTHONPATH", "")
    trees = {"this": mine or str(ROOT / "src"), "against": other_src}  # this: as for --cpu alone
    for checks in (True, False):
        servers: dict[str, CheckedPostroom] = {}
        try:
            for label, src in trees.items():
                os.environ["PYTHONPATH"] = src  # the server processes import this copy
                srv = CheckedPostroom(base / f"ab-{label}-{checks}", workers, resolver, checks, eml)
                srv.dir.parent.mkdir(parents=True, exist_ok=True)
                srv.setup()
                srv.start()
                servers[label] = srv
            os.environ["PYTHONPATH"] = mine
            for srv in servers.values():
                srv.run(2, 50)  # warm: caches filled, workers forked and busy once
            for r in range(rounds):
                before = {k: _tree_cpu(srv.proc.pid) for k, srv in servers.items()}  # type: ignore[union-attr]
                runs = [threading.Thread(target=srv.run, args=(20, n)) for srv in servers.values()]
                for t in runs:
                    t.start()
                for t in runs:
                    t.join()
                ms = {k: (_tree_cpu(srv.proc.pid) - before[k]) / n * 1e3  # type: ignore[union-attr]
                      for k, srv in servers.items()}
                # A few messages may cost less than one clock tick of a server's CPU count.
                ratio = f"{ms['this'] / ms['against']:.2f}x" if ms["against"] > 0 else "no ratio: too few messages"
                print(f"   checks {'on ' if checks else 'off'} round {r + 1}: this tree {ms['this']:.3f} ms, "
                      f"against {ms['against']:.3f} ms ({ratio})", flush=True)
        finally:
            os.environ["PYTHONPATH"] = mine
            for srv in servers.values():
                srv.stop()
        for label, srv in servers.items():
            if srv.delivered() != 50 + n * rounds:
                raise RuntimeError(f"{label}: {srv.delivered()} of {50 + n * rounds} delivered")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a smoke run (CI)")
    ap.add_argument("--messages", type=int, help="messages at 20 clients (default 5000)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--no-postfix", action="store_true", help="skip both Postfix columns")
    ap.add_argument("--cpu", type=int, metavar="N",
                    help="only Postroom's server CPU a message (checks on and off, alternated), "
                         "over N messages a round")
    ap.add_argument("--rounds", type=int, default=3, help="rounds of --cpu (default 3)")
    ap.add_argument("--against", metavar="SRC",
                    help="with --cpu: also run another copy of the code (its src directory) at the same "
                         "time and print both trees' CPU a message")
    ap.add_argument("--only", action="append", choices=COLUMNS, metavar="NAME",
                    help=f"run only this MX column (repeatable): {', '.join(COLUMNS)}")
    args = ap.parse_args(argv)
    if not shutil.which("smtp-source"):
        print("smtp-source (Debian package postfix) is needed: bash scripts/install-test-deps.sh")
        return 2
    m20 = args.messages or (200 if args.quick else 5000)
    m1 = max(20, m20 // 5)
    seconds = 0.3 if args.quick else 3.0
    want = set(args.only or COLUMNS)
    base = Path(tempfile.mkdtemp(prefix="postroom-bench-mailauth-"))
    ok = True
    try:
        dns_srv, ns_why = fixture()
        with dns_srv:
            ks = sender_keys(base, dns_srv)
            from postroom.mailauth.dkim import sign
            from postroom.mailauth.settings import DEFAULT_SIGN_HEADERS

            msg = make_message()
            signed = sign(msg, ks, DEFAULT_SIGN_HEADERS) + msg
            print(f"Message: {len(msg)} bytes; DNS from a fixture on {dns_srv.address} (TTL {dns_srv.ttl} s)")
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
            if args.cpu and args.against:
                print(f"\nServer CPU a message (ms), {args.workers} workers, 20 clients, {args.cpu} messages a "
                      f"round, this tree and {args.against} at the same time:")
                cpu_side_by_side(base, args.workers, dns_srv.address, eml, args.cpu, args.rounds, args.against)
                return 0
            if args.cpu:
                print(f"\nServer CPU a message (ms), {args.workers} workers, 20 clients, {args.cpu} messages a round:")
                for r in range(args.rounds):
                    for checks in (True, False):
                        srv = CheckedPostroom(base / f"cpu{r}", args.workers, dns_srv.address, checks, eml)
                        (base / f"cpu{r}").mkdir(exist_ok=True)
                        ms = cpu_per_message(srv, args.cpu, 1)
                        print(f"   {srv.name:10s} round {r + 1}: {ms[0]:.3f} ms", flush=True)
                return 0
            resolv = None
            if ns_why is None:  # Postfix and its milters get a resolv.conf naming the fixture
                resolv = base / "resolv.conf"
                resolv.write_text(f"nameserver {peer.FIXTURE_HOST}\n")
            servers: list = []
            if "checks-on" in want:
                servers.append(CheckedPostroom(base, args.workers, dns_srv.address, True, eml))
            if "checks-off" in want:
                servers.append(CheckedPostroom(base, args.workers, dns_srv.address, False, eml))
            pf_why = "--no-postfix" if args.no_postfix else smtp_bench.Postfix.available()
            if "postfix" in want:
                if pf_why:
                    print(f"postfix: skipped ({pf_why})")
                else:
                    servers.append(peer.PeerPostfix(base, eml, SENDER, HELO, resolv))
            if "postfix+checks" in want:
                why = pf_why or ns_why or peer.CheckedPostfix.unavailable()
                if why or resolv is None:
                    print(f"postfix+checks (OpenDKIM, OpenDMARC, policyd-spf): skipped ({why})")
                else:
                    servers.append(peer.CheckedPostfix(base, eml, SENDER, HELO, resolv))
            print(f"\n3. The MX path, {args.workers} Postroom workers, smtp-source, 10 KB signed messages:")
            rates: dict[tuple[str, int], float] = {}
            for srv in servers:
                ok = measure(srv, dns_srv, ((20, m20), (1, m1)), rates) and ok
            on, off = rates.get(("checks on", 20)), rates.get(("checks off", 20))
            pf, pfc = rates.get(("postfix", 20)), rates.get(("postfix+checks", 20))
            print()
            if on and off:
                print(f"20 clients: checks on / off = {on / off:.2f}x "
                      f"(1 client: {rates[('checks on', 1)] / rates[('checks off', 1)]:.2f}x)")
            if on and pf:
                verdict = "meets" if on / pf >= 1.5 else "MISSES"
                print(f"20 clients: checks on / Postfix = {on / pf:.2f}x ({verdict} the 1.5x target); "
                      f"1 client: {rates[('checks on', 1)] / rates[('postfix', 1)]:.2f}x")
            if on and pfc:
                verdict = "meets" if on / pfc >= 1.5 else "MISSES"
                one = rates[("checks on", 1)] / rates[("postfix+checks", 1)]
                print(f"20 clients: checks on / Postfix+OpenDKIM+OpenDMARC+policyd-spf = {on / pfc:.2f}x "
                      f"({verdict} the 1.5x target); 1 client: {one:.2f}x")
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return 0 if ok else 1


def _first_message(srv: CheckedPostroom) -> bytes:
    from postroom.config import load
    from postroom.storage import open_store

    async def read() -> bytes:
        cfg = load(srv.dir / "postroom.toml")
        store = open_store(cfg)
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
