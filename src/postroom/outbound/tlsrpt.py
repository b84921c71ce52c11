"""TLS-RPT (RFC 8460): counting outbound TLS sessions per policy domain and day.

The runner records each new SMTP session to a domain that has an MTA-STS policy: a
success, or a failure with its RFC 8460 §4.3 result type. Counts are kept per UTC day
in ``DATA_DIR/tlsrpt/YYYY-MM-DD.json`` so that the daily report (§4.4, built by
:func:`build_report`) can be made from them. Counts are statistics, not mail: they are
written atomically (temporary file, fsync, rename) at most every
:data:`FLUSH_INTERVAL` seconds and when the runner stops, so a crash loses at most the
last few seconds of counts and never leaves a half-written file.

:class:`ReportSender` sends each finished day's reports (RFC 8460 §3, §5) to the ``rua``
addresses of ``_smtp._tls.DOMAIN``: gzip'd JSON in a ``multipart/report;
report-type="tlsrpt"`` mail (queued like a notice, DKIM-signed for the host name) or
an HTTPS POST. A day is marked done per domain in its file, so a crash resends at most
one domain's report, and the file is renamed ``YYYY-MM-DD.sent.json`` once every domain
is done (or after :data:`GIVE_UP_DAYS`).
"""

from __future__ import annotations

import asyncio
import base64
import calendar
import gzip
import json
import logging
import os
import secrets
import ssl
import time
from collections.abc import Awaitable, Callable
from email.utils import formatdate
from pathlib import Path
from typing import Any

log = logging.getLogger("postroom.outbound.tlsrpt")

FLUSH_INTERVAL = 10.0
REPORT_INTERVAL = 3600.0  # how often finished days are looked at (and failed sends retried)
GIVE_UP_DAYS = 7  # a day whose reports could not all be sent by then is dropped

# RFC 8460 §4.3.1 (negotiation) and §4.3.2.2 (MTA-STS policy) result types.
STARTTLS_NOT_SUPPORTED = "starttls-not-supported"
CERT_HOST_MISMATCH = "certificate-host-mismatch"
CERT_EXPIRED = "certificate-expired"
CERT_NOT_TRUSTED = "certificate-not-trusted"
VALIDATION_FAILURE = "validation-failure"
STS_POLICY_FETCH_ERROR = "sts-policy-fetch-error"
STS_POLICY_INVALID = "sts-policy-invalid"
STS_WEBPKI_INVALID = "sts-webpki-invalid"

# OpenSSL X509_V_ERR_* codes behind ssl.SSLCertVerificationError.verify_code.
_EXPIRED = {9, 10}  # certificate not yet valid / has expired
_UNTRUSTED = {2, 18, 19, 20, 21, 27}  # unknown issuer, self-signed, untrusted, rejected
_HOST_MISMATCH = {62}  # X509_V_ERR_HOSTNAME_MISMATCH


def classify(exc: BaseException) -> str:
    """The §4.3.1 result type of a failed TLS handshake."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        code = exc.verify_code
        if code in _HOST_MISMATCH:
            return CERT_HOST_MISMATCH
        if code in _EXPIRED:
            return CERT_EXPIRED
        if code in _UNTRUSTED:
            return CERT_NOT_TRUSTED
    return VALIDATION_FAILURE


def day_of(ts: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(ts))


class TlsReportCounts:
    """Per-day session counts; one instance in the runner (the one process delivering)."""

    def __init__(self, root: Path, clock: Callable[[], float] = time.time) -> None:
        self.root = Path(root)
        self.clock = clock
        self.days: dict[str, dict[str, Any]] = {}
        self.dirty: set[str] = set()
        self.flushed = clock()

    def _day(self, day: str) -> dict[str, Any]:
        data = self.days.get(day)
        if data is None:
            data = self.load(day)
            self.days[day] = data
        return data

    def load(self, day: str) -> dict[str, Any]:
        """The counts of ``day`` on disk (empty if none, or unreadable: logged, started afresh)."""
        path = self.root / f"{day}.json"
        try:
            data = json.loads(path.read_text())
            if isinstance(data, dict) and isinstance(data.get("domains"), dict):
                return data
            log.warning("%s: not a TLS-RPT counts file; starting afresh", path)
        except FileNotFoundError:
            pass
        except (OSError, ValueError) as exc:
            log.warning("%s: unreadable (%s); starting afresh", path, exc)
        return {"day": day, "domains": {}}

    def _entry(self, domain: str, policy_id: str, policy_text: str, mx: tuple[str, ...],
               policy_type: str = "sts") -> dict[str, Any]:
        now = self.clock()
        day = day_of(now)
        domains = self._day(day)["domains"]
        # One entry per (domain, policy id): a policy changed mid-day is a second policy in the report.
        key = f"{domain} {policy_id}"
        entry = domains.get(key)
        if entry is None:
            entry = domains[key] = {"domain": domain, "policy_string": policy_text.splitlines(),
                                    "mx_host": list(mx), "successes": 0, "failures": {}}
            if policy_type != "sts":  # "tlsa": DANE (RFC 8460 §4.4), src/postroom/outbound/dane.py
                entry["policy_type"] = policy_type
        self.dirty.add(day)
        return entry

    def success(self, domain: str, policy_id: str, policy_text: str, mx: tuple[str, ...],
                policy_type: str = "sts") -> None:
        self._entry(domain, policy_id, policy_text, mx, policy_type)["successes"] += 1
        self._maybe_flush()

    def failure(self, domain: str, policy_id: str, policy_text: str, mx: tuple[str, ...], result_type: str,
                mx_host: str = "", ip: str = "", reason: str = "", policy_type: str = "sts") -> None:
        entry = self._entry(domain, policy_id, policy_text, mx, policy_type)
        key = f"{result_type}\t{mx_host}\t{ip}"
        f = entry["failures"].setdefault(key, {"count": 0, "reason": ""})
        f["count"] += 1
        if reason:
            f["reason"] = reason[:200]
        self._maybe_flush()

    def _maybe_flush(self) -> None:
        if self.clock() - self.flushed >= FLUSH_INTERVAL:
            self.flush()

    def flush(self) -> None:
        """Write every changed day (atomically); errors are logged, counts stay in memory."""
        self.flushed = self.clock()
        for day in sorted(self.dirty):
            try:
                self._write(day, self.days[day])
            except OSError as exc:
                log.warning("cannot write TLS-RPT counts for %s: %s", day, exc)
                continue
            self.dirty.discard(day)
        today = day_of(self.clock())
        for day in [d for d in self.days if d < today and d not in self.dirty]:
            del self.days[day]  # done with: keep memory to today's counts

    def _write(self, day: str, data: dict[str, Any]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        write_atomic(self.root / f"{day}.json", json.dumps(data, sort_keys=True).encode())


def write_atomic(path: Path, data: bytes) -> None:
    """Temporary file, fsync, rename, fsync of the directory: the old or the new file, never half of one."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def build_report(counts: dict[str, Any], domain: str, *, organization: str, contact: str, sending_ip: str = "",
                 report_id: str = "") -> dict[str, Any]:
    """The RFC 8460 §4.4 JSON report for one policy domain from one day's counts."""
    day = counts["day"]
    policies = []
    for entry in counts["domains"].values():
        if entry["domain"] != domain:
            continue
        details = []
        total_failed = 0
        for key, f in sorted(entry["failures"].items()):
            result_type, mx_host, ip = key.split("\t")
            detail: dict[str, Any] = {"result-type": result_type, "failed-session-count": f["count"]}
            if sending_ip:
                detail["sending-mta-ip"] = sending_ip
            if mx_host:
                detail["receiving-mx-hostname"] = mx_host
            if ip:
                detail["receiving-ip"] = ip
            if f.get("reason"):
                detail["failure-reason-code"] = f["reason"]
            details.append(detail)
            total_failed += f["count"]
        policy: dict[str, Any] = {"policy-type": entry.get("policy_type", "sts"),
                                  "policy-string": entry["policy_string"], "policy-domain": domain}
        if policy["policy-type"] == "sts":  # §4.4: mx-host is the MTA-STS policy's mx list
            policy["mx-host"] = entry["mx_host"]
        policies.append({
            "policy": policy,
            "summary": {"total-successful-session-count": entry["successes"],
                        "total-failure-session-count": total_failed},
            "failure-details": details,
        })
    return {
        "organization-name": organization,
        "date-range": {"start-datetime": f"{day}T00:00:00Z", "end-datetime": f"{day}T23:59:59Z"},
        "contact-info": contact,
        "report-id": report_id or f"{day}.{domain}@{organization}",
        "policies": policies,
    }


# -- sending (RFC 8460 §3, §5) -------------------------------------------------------------
def parse_rua(texts: list[str]) -> list[str]:
    """The ``rua`` URIs of the one ``v=TLSRPTv1`` record (§3); [] when there is none, or several."""
    mine = [t for t in texts if t.split(";", 1)[0].strip(" \t") == "v=TLSRPTv1"]
    if len(mine) != 1:
        return []
    for field in mine[0].split(";")[1:]:
        name, eq, value = field.strip(" \t").partition("=")
        if eq and name == "rua":
            return [u.strip(" \t") for u in value.split(",")
                    if u.strip(" \t").startswith(("mailto:", "https://"))]
    return []


def report_filename(submitter: str, domain: str, day: str, unique: str) -> str:
    """§5.1: ``submitter!policy-domain!begin!end!unique.json.gz`` (Unix times of the day)."""
    begin = calendar.timegm(time.strptime(day, "%Y-%m-%d"))
    return f"{submitter}!{domain}!{begin}!{begin + 86399}!{unique}.json.gz"


def report_mail(report: dict[str, Any], gz: bytes, *, domain: str, submitter: str, to: str, filename: str,
                now: float) -> bytes:
    """The §5.3 message: multipart/report with a human part and the gzip'd JSON (base64)."""
    boundary = f"tlsrpt-{secrets.token_hex(12)}"
    rid = report["report-id"]
    headers = [
        f"From: TLS reports <postmaster@{submitter}>",
        f"To: <{to}>",
        f"Subject: Report Domain: {domain} Submitter: {submitter} Report-ID: <{rid}>",
        f"Date: {formatdate(now)}",
        f"Message-ID: <{rid}>",
        f"TLS-Report-Domain: {domain}",
        f"TLS-Report-Submitter: {submitter}",
        "Auto-Submitted: auto-generated",  # RFC 3834: no auto-replies to a report
        "MIME-Version: 1.0",
        f'Content-Type: multipart/report; report-type="tlsrpt";\r\n\tboundary="{boundary}"',
    ]
    b64 = base64.encodebytes(gz).decode().replace("\n", "\r\n")
    start = report["date-range"]["start-datetime"][:10]
    parts = [
        "\r\n".join(headers) + "\r\n\r\nThis is a multipart message in MIME format.\r\n",
        (f"--{boundary}\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
         f"This is an aggregate TLS report (RFC 8460) from {submitter} for {domain}, {start}.\r\n"),
        (f"--{boundary}\r\nContent-Type: application/tlsrpt+gzip\r\nContent-Transfer-Encoding: base64\r\n"
         f'Content-Disposition: attachment;\r\n\tfilename="{filename}"\r\n\r\n{b64}'),
        f"--{boundary}--\r\n",
    ]
    return "\r\n".join(parts).encode("ascii")


def _log_failure(task: asyncio.Task[int]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("TLS report run failed", exc_info=task.exception())


Submit = Callable[[str, bytes], Awaitable[Any]]  # (address, message) → queued or delivered
Post = Callable[[str, bytes], Awaitable[None]]  # (https URL, gzip'd JSON) → raises on failure


class ReportSender:
    """Sends the reports of finished days, once each; run from the runner's loop."""

    def __init__(self, counts: TlsReportCounts, txt: Callable[[str], Awaitable[list[bytes] | None]], *,
                 submitter: str, submit: Submit, post: Post, sending_ip: str = "",
                 clock: Callable[[], float] = time.time) -> None:
        self.counts = counts
        self.txt = txt
        self.submitter = submitter
        self.submit = submit
        self.post = post
        self.sending_ip = sending_ip
        self.clock = clock
        self.next_run = 0.0
        self.task: asyncio.Task[int] | None = None

    def maybe_start(self) -> None:
        """At most every :data:`REPORT_INTERVAL`, send what is due in a task of its own (slow DNS
        or a slow rua server must not hold up deliveries)."""
        now = self.clock()
        if now < self.next_run or (self.task is not None and not self.task.done()):
            return
        self.next_run = now + REPORT_INTERVAL
        self.task = asyncio.get_running_loop().create_task(self.run())
        self.task.add_done_callback(_log_failure)

    async def close(self) -> None:
        if self.task is not None and not self.task.done():
            self.task.cancel()
            await asyncio.wait({self.task}, timeout=5)

    async def run(self) -> int:
        self.counts.flush()  # yesterday's last counts may still be in memory
        today = day_of(self.clock())
        sent = 0
        for path in sorted(self.counts.root.glob("????-??-??.json")):
            day = path.stem
            if day >= today:
                continue
            data = self.counts.load(day)
            done = set(data.get("sent", []))
            domains = sorted({e["domain"] for e in data["domains"].values()} - done)
            for domain in domains:
                try:
                    sent += await self._send(data, domain)
                except Exception as exc:  # noqa: BLE001 - DNS, queue or HTTPS trouble: retried next run
                    log.warning("TLS report for %s (%s) not sent yet: %s", domain, day, exc)
                    continue
                done.add(domain)
                data["sent"] = sorted(done)
                self.counts._write(day, data)
            age_days = (self.clock() - calendar.timegm(time.strptime(day, "%Y-%m-%d"))) / 86400
            if len(done) == len({e["domain"] for e in data["domains"].values()}) or age_days > GIVE_UP_DAYS:
                os.replace(path, path.with_name(f"{day}.sent.json"))
        for old in self.counts.root.glob("????-??-??.sent.json"):  # kept a while for the admin to read
            if old.name[:10] < day_of(self.clock() - 30 * 86400):
                old.unlink(missing_ok=True)
        return sent

    async def _send(self, data: dict[str, Any], domain: str) -> int:
        """Send one domain's report to each of its rua URIs; raises when one could not be sent."""
        from ..resolver import DnsTemporary

        try:
            texts = await self.txt(f"_smtp._tls.{domain}")
        except DnsTemporary as exc:
            raise RuntimeError(str(exc)) from None
        uris = parse_rua([t.decode("utf-8", "replace") for t in texts or []])
        if not uris:
            return 0  # the domain asks for no reports
        unique = secrets.token_hex(6)
        rid = f"{data['day']}.{unique}@{self.submitter}"
        report = build_report(data, domain, organization=self.submitter, contact=f"mailto:postmaster@{self.submitter}",
                              sending_ip=self.sending_ip, report_id=rid)
        gz = gzip.compress(json.dumps(report).encode(), mtime=0)
        filename = report_filename(self.submitter, domain, data["day"], unique)
        for uri in uris:
            if uri.startswith("mailto:"):
                to = uri[len("mailto:"):].split("?", 1)[0]
                raw = report_mail(report, gz, domain=domain, submitter=self.submitter, to=to, filename=filename,
                                  now=self.clock())
                await self.submit(to, raw)
            else:
                await self.post(uri, gz)
            log.info("TLS report for %s (%s) sent to %s", domain, data["day"], uri)
        return len(uris)

