"""The queue runner: picks due recipients, delivers them, records outcomes, sends DSNs.

One :class:`Runner` per server with the SQLite queue (the worker holding the scheduler
lock), one per worker of every node with the PostgreSQL queue, where ``due`` claims for
``queue.lease`` seconds: the runner renews the claims of attempts that run long and
gives them back when a job fails or the runner stops. A *job* is one message's due
recipients for one destination domain (or all of them through a smart host). Jobs run
under a global semaphore and one per domain; connections are pooled per (address,
port) so consecutive messages to one host share a session.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import ssl
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from .. import metrics
from ..config import Config
from ..errors import StoreUnavailable
from ..resolver import shared as shared_resolver
from .api import Recipient
from .client import Auth, SmtpClient, SmtpError
from .dane import (
    DNSSEC_INVALID,
    INSECURE,
    DanePlan,
    DaneSource,
    HostDane,
    State,
    verify_chain,
)
from .dns import DestinationResolver, DnsPermanent, DnsTemporary, Host
from .dsn import RecipientReport, build_dsn, wants_notice
from .local import send_notice
from .mtasts import Lookup, PolicySource, post_report
from .queue import Outcome, QueueBackend, QueuedMessage, QueuedRecipient, RcptState
from .reply import Reply
from .settings import OutboundSettings, retry_delay
from .tlsrpt import VALIDATION_FAILURE, ReportSender, TlsReportCounts

log = logging.getLogger("postroom.outbound")

MAX_ADDRESSES_PER_ATTEMPT = 10  # across all MX hosts of one domain in one attempt


@dataclass(slots=True)
class Result:
    rcpt: QueuedRecipient
    state: RcptState
    status: str
    error: str
    remote_mta: str = ""
    dsn_passed: bool = False  # the next hop offered DSN, so it reports SUCCESS itself


class Pool:
    """Idle connections by (address, port), closed after ``idle`` seconds unused."""

    def __init__(self, settings: OutboundSettings) -> None:
        self.settings = settings
        self.idle: dict[tuple[str, int], list[tuple[SmtpClient, float]]] = {}
        self._closing: set[asyncio.Task[None]] = set()

    async def get(self, host: Host, address: str, port: int, relay: bool,
                  verify: ssl.SSLContext | None = None, dane: bool = False) -> SmtpClient:
        """A pooled or new connection; ``verify`` (an SSLContext) demands verified TLS to ``host.name``;
        ``dane`` demands STARTTLS, and a pooled session only if it passed the TLSA check."""
        now = time.monotonic()
        stack = self.idle.get((address, port), [])
        while stack:
            client, since = stack.pop()
            # A session opened without verified TLS never carries mail that needs it (MTA-STS).
            if not client.broken and now - since < self.settings.connection_idle and \
                    (client.dane if dane else verify is None or client.verified) and \
                    (verify is None and not dane or client.peer.startswith(host.name + " ")):
                return client
            self._quit(client)
        s = self.settings
        auth = Auth(s.relay_user, s.relay_password) if relay and s.relay_user else None
        return await SmtpClient.connect(
            address, port, name=host.name, helo=s.helo_name, connect_timeout=s.connect_timeout,
            command_timeout=s.command_timeout, data_timeout=s.data_timeout, source_address=s.source_address,
            starttls="dane" if dane else "verify" if verify is not None else s.relay_tls if relay
            else "opportunistic", auth=auth,
            tls_context=verify)

    def put(self, client: SmtpClient, address: str, port: int) -> None:
        if client.broken or client.transactions >= self.settings.messages_per_connection \
                or self.settings.connection_idle <= 0:
            self._quit(client)
            return
        self.idle.setdefault((address, port), []).append((client, time.monotonic()))

    def _quit(self, client: SmtpClient) -> None:
        task = asyncio.get_running_loop().create_task(client.quit())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    def reap(self) -> None:
        now = time.monotonic()
        for key, stack in list(self.idle.items()):
            keep = [(c, t) for c, t in stack if not c.broken and now - t < self.settings.connection_idle]
            for c, t in stack:
                if (c, t) not in keep:
                    self._quit(c)
            if keep:
                self.idle[key] = keep
            else:
                del self.idle[key]

    async def close(self) -> None:
        for stack in self.idle.values():
            for c, _ in stack:
                self._quit(c)
        self.idle.clear()
        if self._closing:
            await asyncio.wait(set(self._closing), timeout=5)


class Runner:
    def __init__(self, ctx: Any, queue: QueueBackend, settings: OutboundSettings,
                 clock: Callable[[], float] = time.time, resolver: DestinationResolver | None = None,
                 notice_queue: Any = None) -> None:
        self.ctx = ctx
        self.queue = queue
        self.notice_queue = notice_queue or queue  # where remote notices are enqueued
        self.s = settings
        self.clock = clock
        if resolver is None:
            cfg = getattr(ctx, "config", None)
            # The process's one resolver ([dns], or the deprecated [outbound] resolver).
            resolver = (DestinationResolver(resolver=shared_resolver(cfg)) if isinstance(cfg, Config)
                        else DestinationResolver(settings.resolver))
        self.resolver = resolver
        self.pool = Pool(settings)
        self.sem = asyncio.Semaphore(settings.concurrency)
        self.domain_sems: dict[str, asyncio.Semaphore] = {}
        self.inflight: set[int] = set()  # recipient ids being delivered
        # Leased queues: recipient id -> when its claim was taken or last renewed (monotonic).
        self.claimed: dict[int, float] = {}
        self.unavailable = False  # the queue database is down: said once, not every poll
        self.tasks: set[asyncio.Task[None]] = set()
        self.wakeup = asyncio.Event()
        # RFC 1123 §5.3.1.1: keep a list of hosts we cannot reach, so that a queue of
        # mail for a dead host costs one connection timeout, not one per message.
        self.unreachable: dict[tuple[str, int], tuple[float, str]] = {}
        self.unreachable_ttl = min(settings.retry_schedule[0], 60.0)
        self.hostname = getattr(getattr(ctx, "config", None), "hostname", "localhost")
        # DANE (RFC 7672), opt-in and for direct delivery only, like MTA-STS below.
        self.dane = DaneSource(self.resolver.dns) if settings.dane and not settings.relay_host else None
        # MTA-STS (RFC 8461) for direct delivery; a smart host applies its own policies.
        self.sts: PolicySource | None = None
        self.tlsrpt: TlsReportCounts | None = None
        self.reports: ReportSender | None = None
        cfg = getattr(ctx, "config", None)
        if isinstance(cfg, Config) and settings.mta_sts.enforce_outbound and not settings.relay_host:
            self.sts = PolicySource(self.resolver.dns, settings.mta_sts, cfg.data_dir / "mta-sts")
            self.tlsrpt = TlsReportCounts(cfg.data_dir / "tlsrpt")
            sts = self.sts
            self.reports = ReportSender(
                self.tlsrpt, sts.dns.txt, submitter=self.hostname, sending_ip=settings.source_address,
                submit=lambda to, raw: send_notice(self.ctx, self.notice_queue, to, raw),
                post=lambda url, gz: post_report(url, gz, sts.ssl_context, sts.dns,
                                                allow_private=sts.allow_private))

    def wake(self) -> None:
        self.wakeup.set()

    # -- scheduling --------------------------------------------------------------
    async def run(self) -> None:
        keeper = asyncio.get_running_loop().create_task(self._keep_leases()) if self.queue.lease > 0 else None
        try:
            while True:
                self.wakeup.clear()
                try:
                    await self.schedule_once()
                    if self.unavailable:
                        log.info("outbound queue: the queue database is back")
                        self.unavailable = False
                    if self.reports is not None:
                        self.reports.maybe_start()  # RFC 8460: yesterday's TLS reports, once
                except StoreUnavailable as exc:
                    # A restart or failover of PostgreSQL: one line, then quiet retries every poll.
                    if not self.unavailable:
                        log.warning("outbound queue: %s; retrying every %gs", exc, self.s.poll_interval)
                        self.unavailable = True
                except Exception:
                    log.exception("queue scan failed")
                self.pool.reap()
                # asyncio.timeout, not wait_for: Python 3.11's wait_for loses a cancellation
                # that arrives as the wake-up completes, and this loop would then never end.
                try:
                    async with asyncio.timeout(self.s.poll_interval):
                        await self.wakeup.wait()
                except TimeoutError:
                    pass
        finally:
            if keeper is not None:
                keeper.cancel()

    async def _keep_leases(self) -> None:
        """Renew the claims of attempts running longer than half the lease, so no other
        node takes their recipients while they are still being delivered."""
        lease = self.queue.lease
        while True:
            await asyncio.sleep(lease / 4)
            now = time.monotonic()
            ids = [i for i, t in self.claimed.items() if now - t >= lease / 2]
            if not ids:
                continue
            try:
                await self.queue.renew(ids, self.clock())
            except Exception as exc:  # the database is down: the next round tries again
                log.warning("outbound queue: renewing %d claim(s) failed: %s", len(ids), exc)
                continue
            for i in ids:
                if i in self.claimed:
                    self.claimed[i] = now

    async def schedule_once(self) -> int:
        """Start jobs for every due recipient not already in flight; returns jobs started."""
        room = self.s.concurrency * 4 - len(self.tasks)
        if room <= 0:
            return 0
        msgs = await self.queue.due(self.clock(), room, tuple(self.inflight))
        started = 0
        for msg in msgs:
            groups: dict[str, list[QueuedRecipient]] = {}
            for r in msg.recipients:
                if r.id in self.inflight or r.state.final:
                    continue
                key = "" if self.s.relay_host else r.domain
                groups.setdefault(key, []).append(r)
            claimed = time.monotonic()
            for domain, rcpts in groups.items():
                self.inflight.update(r.id for r in rcpts)
                if self.queue.lease > 0:
                    self.claimed.update((r.id, claimed) for r in rcpts)
                task = asyncio.get_running_loop().create_task(self._job(msg, domain, rcpts))
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)
                started += 1
        return started

    async def drain(self) -> None:
        """Wait for the running jobs (tests and shutdown)."""
        while self.tasks:
            await asyncio.wait(set(self.tasks))

    async def close(self) -> None:
        for t in list(self.tasks):
            t.cancel()  # each job gives its claims back (leased queues) as it ends
        if self.tasks:
            await asyncio.wait(set(self.tasks), timeout=5)
        await self.pool.close()
        if self.reports is not None:
            await self.reports.close()
        if self.tlsrpt is not None:
            self.tlsrpt.flush()

    async def _job(self, msg: QueuedMessage, domain: str, rcpts: list[QueuedRecipient]) -> None:
        recorded = False
        try:
            sem = self.domain_sems.setdefault(domain, asyncio.Semaphore(self.s.per_domain_concurrency))
            async with self.sem, sem:
                results = await self.attempt(msg, domain, rcpts)
                await self.conclude(msg, results)
                recorded = True
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s: delivery job failed", msg.id)
        finally:
            ids = [r.id for r in rcpts]
            self.inflight.difference_update(ids)
            for i in ids:
                self.claimed.pop(i, None)
            if not recorded and self.queue.lease > 0:
                await self._release(msg.id, ids)
            self.wake()

    async def _release(self, qid: str, ids: list[int]) -> None:
        """Hand unfinished claims back at once (a failed job, shutdown) rather than make
        the other nodes wait for the lease to run out; if that fails, the lease does it."""
        try:
            async with asyncio.timeout(5):
                await self.queue.release(ids)
        except Exception as exc:
            log.warning("%s: could not release claim(s) (they expire with the lease): %s", qid, exc)

    # -- one attempt -------------------------------------------------------------
    async def _hosts(self, domain: str) -> tuple[list[Host], int]:
        if self.s.relay_host:
            name, port = self.s.relay_host
            addrs = await self.resolver.addresses(name)
            if not addrs:
                raise DnsTemporary(f"relay host {name} has no address")
            return [Host(name, 0, addrs)], port
        return self.without_self(await self.resolver.hosts_for_domain(domain)), self.s.port

    def without_self(self, hosts: list[Host]) -> list[Host]:
        """RFC 5321 §5.1: if we are an MX of the domain, only more preferred MX hosts count."""
        me = self.s.helo_name.lower().rstrip(".")
        mine = [h.preference for h in hosts if h.name.lower().rstrip(".") == me]
        if not mine:
            return hosts
        kept = [h for h in hosts if h.preference < min(mine)]
        if not kept:
            raise DnsPermanent(f"mail for this domain loops back to myself ({me} is its best MX)", "5.4.6")
        return kept

    async def attempt(self, msg: QueuedMessage, domain: str, rcpts: Sequence[QueuedRecipient]) -> list[Result]:
        try:
            hosts, port = await self._hosts(domain)
        except DnsPermanent as exc:
            return [Result(r, RcptState.BOUNCED, exc.status, str(exc)) for r in rcpts]
        except DnsTemporary as exc:
            return [Result(r, RcptState.DEFERRED, "4.4.3", str(exc)) for r in rcpts]
        plan = DanePlan()
        if self.dane is not None and domain:
            try:
                hosts, plan = await self.dane.plan(domain, hosts)
            except DnsTemporary as exc:  # the validated MX lookup failed (RFC 7672 §2.1.1)
                return [Result(r, RcptState.DEFERRED, "4.4.3", f"DANE: {exc}") for r in rcpts]
        sts = await self.sts.lookup(domain) if self.sts is not None and domain else Lookup(None)
        hosts = self._sts_hosts(msg.id, domain, hosts, sts, plan)
        if not hosts:
            # RFC 8461 §4.2: enforce and no MX host matches: not sent (no bounce; retried as usual).
            mx = ", ".join(sts.cached.policy.mx) if sts.cached else ""
            error = f"MTA-STS: no MX host of {domain} matches its policy (mx: {mx})"
            return [Result(r, RcptState.DEFERRED, "4.7.5", error) for r in rcpts]
        try:
            raw = await self.queue.read_body(msg.id)
        except FileNotFoundError:
            # Only a lost disk or a hand-deleted file gets here; retrying cannot help.
            log.error("%s: message file is missing; bouncing", msg.id)
            return [Result(r, RcptState.BOUNCED, "5.3.0", "the queued message file was lost") for r in rcpts]
        env = msg.envelope
        remaining = list(rcpts)
        results: list[Result] = []
        last = ("4.4.1", f"no host for {domain} could be reached", "", False)
        tried = 0
        for host in hosts:
            dane = plan.of(host)
            if dane.state is State.FAILED and remaining:
                # RFC 7672 §2.1.1: TLSA records of a secure name that cannot be looked up
                # may be hidden by an attacker: this host waits, mail is not sent in clear.
                last = ("4.4.3", f"DANE: TLSA lookup for {host.name} failed: {dane.error}", "", False)
                log.warning("%s: %s", msg.id, last[1])
                if self.tlsrpt is not None:
                    self.tlsrpt.failure(domain, *self._dane_policy(host, dane), DNSSEC_INVALID, host.name,
                                        reason=dane.error, policy_type="tlsa")
                continue
            for address in host.addresses:
                if not remaining or tried >= MAX_ADDRESSES_PER_ATTEMPT:
                    break
                tried += 1
                down = self.unreachable.get((address, port))
                if down and down[0] > time.monotonic():
                    last = ("4.4.1", down[1], "", False)  # tried moments ago by another job
                    continue
                try:
                    client = await self._connect(msg.id, domain, host, address, port, sts, dane)
                except SmtpError as exc:
                    log.info("%s: %s", msg.id, exc)
                    last = (exc.status, str(exc.reply) if exc.reply else str(exc), "", exc.permanent)
                    if exc.reply is None and not exc.tls_failure:  # no TCP session at all: remember for a while
                        self.unreachable[(address, port)] = (time.monotonic() + self.unreachable_ttl, str(exc))
                    continue
                self.unreachable.pop((address, port), None)
                try:
                    done, remaining, last = await self._transaction(client, env, raw, remaining)
                    results += done
                finally:
                    self.pool.put(client, address, port)
        status, error, mta, permanent = last
        state = RcptState.BOUNCED if permanent else RcptState.DEFERRED
        results += [Result(r, state, status, error, mta) for r in remaining]
        return results

    # -- MTA-STS (RFC 8461 §4) ----------------------------------------------------
    def _sts_hosts(self, qid: str, domain: str, hosts: list[Host], sts: Lookup,
                   plan: DanePlan | None = None) -> list[Host]:
        """The hosts the policy allows: in ``enforce`` only MX hosts it names (§4.1, §4.2);
        in ``testing`` all of them, the mismatches logged and counted for TLS-RPT. A host
        with usable TLSA records is DANE's (RFC 8461 §2: DANE takes precedence)."""
        if sts.cached is None:
            return hosts
        c = sts.cached
        if sts.failure and self.tlsrpt is not None:
            self.tlsrpt.failure(domain, c.id, c.body, c.policy.mx, sts.failure)
        if sts.mode == "none":
            return hosts
        kept = []
        for h in hosts:
            if c.policy.matches(h.name) or plan is not None and plan.of(h).state is State.USABLE:
                kept.append(h)
                continue
            log.warning("%s: MTA-STS (%s): MX %s of %s is not in the policy (mx: %s)%s", qid, sts.mode, h.name,
                        domain, ", ".join(c.policy.mx), "; skipped" if sts.mode == "enforce" else "")
            if self.tlsrpt is not None:
                self.tlsrpt.failure(domain, c.id, c.body, c.policy.mx, VALIDATION_FAILURE, h.name,
                                    reason="mx-mismatch")
        return kept if sts.mode == "enforce" else hosts

    async def _connect(self, qid: str, domain: str, host: Host, address: str, port: int, sts: Lookup,
                       dane: HostDane = INSECURE) -> SmtpClient:
        """A connection to ``host``: DANE-authenticated TLS when it has TLSA records (RFC 7672),
        else verified TLS when the MTA-STS policy names it (RFC 8461 §4.2).

        ``enforce``: a TLS failure raises (the next host is tried; none left defers, never
        plain text). ``testing``: the failure is logged and counted, and delivery goes on
        over opportunistic TLS on a new connection."""
        if dane.state in (State.USABLE, State.UNUSABLE):
            return await self._connect_dane(qid, domain, host, address, port, dane)
        relay = bool(self.s.relay_host)
        c = sts.cached
        if c is None or self.sts is None or sts.mode == "none" or not c.policy.matches(host.name):
            return await self.pool.get(host, address, port, relay)
        try:
            client = await self.pool.get(host, address, port, relay, verify=self.sts.ssl_context)
        except SmtpError as exc:
            if not exc.tls_failure:
                raise
            log.warning("%s: MTA-STS (%s): %s", qid, sts.mode, exc)
            if self.tlsrpt is not None:
                self.tlsrpt.failure(domain, c.id, c.body, c.policy.mx, exc.tls_failure, host.name, address, str(exc))
            if sts.mode == "enforce":
                raise
            return await self.pool.get(host, address, port, relay)
        if client.transactions == 0 and self.tlsrpt is not None:  # a new session, not a pooled one
            self.tlsrpt.success(domain, c.id, c.body, c.policy.mx)
        return client

    # -- DANE (RFC 7672) -----------------------------------------------------------
    @staticmethod
    def _dane_policy(host: Host, dane: HostDane) -> tuple[str, str, tuple[str, ...]]:
        """TLS-RPT (RFC 8460 §4.4) policy id, policy string and host of one MX's TLSA RRset."""
        text = dane.policy_text
        return f"tlsa {host.name} {hashlib.sha256(text.encode()).hexdigest()[:16]}", text, (host.name,)

    async def _connect_dane(self, qid: str, domain: str, host: Host, address: str, port: int, dane: HostDane
                            ) -> SmtpClient:
        """STARTTLS is mandatory (RFC 7672 §2.2); with usable records the peer's chain must
        match them (§3), else the session is dropped before MAIL and the next host tried.
        Secure records that are all unusable still demand TLS, just not authentication."""
        policy = self._dane_policy(host, dane)
        try:
            client = await self.pool.get(host, address, port, False, dane=True)
        except SmtpError as exc:
            if exc.tls_failure:
                log.warning("%s: DANE: %s", qid, exc)
                if self.tlsrpt is not None:
                    self.tlsrpt.failure(domain, *policy, exc.tls_failure, host.name, address, str(exc),
                                        policy_type="tlsa")
            raise
        if client.dane or dane.state is State.UNUSABLE:
            return client
        failure = verify_chain(dane.records, client.peer_chain(), dane.names)
        if failure is not None:
            client.close()  # not QUIT: nothing more is said to a peer that failed authentication
            error = f"DANE: {client.peer}: {failure.reason} (TLSA: {dane.policy_text.replace(chr(10), '; ')})"
            log.warning("%s: %s", qid, error)
            if self.tlsrpt is not None:
                self.tlsrpt.failure(domain, *policy, failure.result_type, host.name, address, failure.reason,
                                    policy_type="tlsa")
            raise SmtpError(error, status="4.7.5", tls_failure=failure.result_type)
        client.dane = True
        if self.tlsrpt is not None:
            self.tlsrpt.success(domain, *policy, policy_type="tlsa")
        return client

    async def _transaction(self, client: SmtpClient, env: Any, raw: bytes, rcpts: list[QueuedRecipient]
                           ) -> tuple[list[Result], list[QueuedRecipient], tuple[str, str, str, bool]]:
        """Results for recipients settled here, those to try on the next host, and the last error."""
        mta = client.peer
        try:
            tx = await client.send(env, [Recipient(r.address, r.notify, r.orcpt) for r in rcpts], raw)
        except SmtpError as exc:
            err = str(exc.reply) if exc.reply else str(exc)
            if exc.permanent:
                # A refusal before MAIL (size, SMTPUTF8): another host of the domain
                # would say the same, so bounce now.
                return [Result(r, RcptState.BOUNCED, exc.status, err, mta) for r in rcpts], [], \
                    (exc.status, err, mta, True)
            client.broken = True
            return [], rcpts, (exc.status, err, mta, False)
        if not tx.mail.ok:
            return self._whole(tx.mail, rcpts, mta)
        done: list[Result] = []
        accepted: list[QueuedRecipient] = []
        later: list[QueuedRecipient] = []
        last = ("4.0.0", "", mta, False)
        for r, reply in zip(rcpts, tx.rcpts):
            if reply is None:
                later.append(r)
            elif reply.ok:
                accepted.append(r)
            elif reply.permanent:  # RFC 5321 §4.2.1: 5yz is final for this recipient
                # Settled here: ``last`` stays the reason for the others, or a 4yz recipient
                # refused before this one would be bounced with this one's 5yz.
                done.append(Result(r, RcptState.BOUNCED, reply.status("1.0"), str(reply), mta))
            else:
                later.append(r)
                last = (reply.status("0.0"), str(reply), mta, False)
        if accepted:
            data = tx.data
            if data is not None and data.ok:
                dsn = client.caps.has("DSN")
                done += [Result(r, RcptState.DELIVERED, data.status("0.0"), str(data), mta, dsn)
                         for r in accepted]
            elif data is not None and data.permanent:
                done += [Result(r, RcptState.BOUNCED, data.status("0.0"), str(data), mta) for r in accepted]
                last = (data.status("0.0"), str(data), mta, True)
            else:
                later += accepted
                if data is not None:
                    last = (data.status("0.0"), str(data), mta, False)
        if later and not last[1]:
            last = ("4.0.0", "no reply for this recipient", mta, False)
        return done, later, last

    def _whole(self, reply: Reply, rcpts: list[QueuedRecipient], mta: str
               ) -> tuple[list[Result], list[QueuedRecipient], tuple[str, str, str, bool]]:
        """MAIL FROM refused: 5xx bounces every recipient, 4xx tries the next host."""
        if reply.permanent:
            return [Result(r, RcptState.BOUNCED, reply.status("0.0"), str(reply), mta) for r in rcpts], [], \
                (reply.status("0.0"), str(reply), mta, True)
        return [], rcpts, (reply.status("0.0"), str(reply), mta, False)

    # -- after an attempt --------------------------------------------------------
    async def conclude(self, msg: QueuedMessage, results: list[Result]) -> None:
        now = self.clock()
        expires = msg.created + self.s.max_lifetime
        outcomes: list[Outcome] = []
        for res in results:
            if res.state is RcptState.DEFERRED:
                if now >= expires:
                    # RFC 5321 §4.5.4.1: give up after the configured lifetime.
                    res.state = RcptState.BOUNCED
                    res.error = f"delivery time expired after {self.s.max_lifetime:g}s; last error: {res.error}"
                    res.status = "5.4.7"  # RFC 3463: delivery time expired
                else:
                    nxt = min(now + retry_delay(self.s.retry_schedule, res.rcpt.attempts + 1), expires)
                    outcomes.append(Outcome(res.rcpt.id, res.state, res.status, res.error, res.remote_mta, nxt))
                    log.info("%s: deferred %s: %s (next attempt in %.0fs)", msg.id, res.rcpt.address,
                             res.error, nxt - now)
                    metrics.outbound_result("deferred")
                    continue
            metrics.outbound_result(res.state.value, now - msg.created)
            if res.state is RcptState.BOUNCED:
                log.info("%s: bounced %s: %s", msg.id, res.rcpt.address, res.error)
            elif res.state is RcptState.DELIVERED:
                # By queue id, as the "queued" and "deferred" lines: grep one id, see its story.
                log.info("%s: delivered to %s via %s: %s", msg.id, res.rcpt.address, res.remote_mta, res.error)
            outcomes.append(Outcome(res.rcpt.id, res.state, res.status, res.error, res.remote_mta, now))
        # Notices go out before the outcome is committed: a crash in between repeats
        # the attempt (and maybe the notice) rather than losing a bounce.
        delay_notified = await self._notices(msg, results, now)
        await self._record(msg.id, outcomes, now, delay_notified)

    async def _record(self, qid: str, outcomes: list[Outcome], now: float, delay_notified: list[int]) -> None:
        """Record, riding out a short database outage (a restart, a failover): mail already
        handed over is not sent again if the outcome gets in within about half a minute."""
        delay = 0.5
        while True:
            try:
                await self.queue.record(outcomes, now, delay_notified=delay_notified, finish=qid)
                return
            except StoreUnavailable as exc:
                if delay > 16:
                    raise
                log.warning("%s: recording the outcome failed (%s); trying again in %gs", qid, exc, delay)
                await asyncio.sleep(delay)
                delay *= 2

    async def _notices(self, msg: QueuedMessage, results: list[Result], now: float) -> list[int]:
        """Send the DSNs this attempt calls for; return the recipients given a delay notice."""
        sender = msg.envelope.sender
        failed = [r for r in results if r.state is RcptState.BOUNCED]
        relayed = [r for r in results if r.state is RcptState.DELIVERED and not r.dsn_passed]
        delayed = [r for r in results if r.state is RcptState.DEFERRED and not r.rcpt.delay_notified
                   and now - msg.created >= self.s.delay_warning]
        expires = msg.created + self.s.max_lifetime
        notified: list[int] = []
        original: bytes | None = None
        for action, group in (("failed", failed), ("relayed", relayed), ("delayed", delayed)):
            group = [r for r in group if wants_notice(sender, r.rcpt.notify, action)]
            if not group:
                continue
            reports = [RecipientReport(
                address=r.rcpt.address, action=action, status=r.status, orcpt=r.rcpt.orcpt,
                diagnostic=r.error, remote_mta=r.remote_mta, last_attempt=now,
                will_retry_until=expires if action == "delayed" else None) for r in group]
            if original is None:
                try:
                    original = await self.queue.read_body(msg.id)
                except FileNotFoundError:
                    original = b""
            raw = build_dsn(reporting_mta=self.hostname, sender=sender, queue_id=msg.id, arrival=msg.created,
                            now=now, reports=reports, original=original, ret=msg.envelope.ret,
                            envid=msg.envelope.envid)
            try:
                how = await send_notice(self.ctx, self.notice_queue, sender, raw, msg.envelope.body_8bit)
                log.info("%s: %s notice to %s %s", msg.id, action, sender, how)
            except Exception:
                log.exception("%s: could not send the %s notice to %s", msg.id, action, sender)
                continue
            if action == "delayed":
                notified += [r.rcpt.id for r in group]
        return notified
