"""Postfix beside Postroom in bench/mailauth.py: plain, and doing the same inbound checks
the way admins assemble them.

- ``postfix``: bench/smtp.py's Postfix (virtual delivery to a Maildir), no checks.
- ``postfix+checks``: the same Postfix with
  * OpenDKIM as a milter in verify mode (``Mode v``),
  * OpenDMARC as a milter enforcing the sender's policy (``RejectFailures true``; the bench
    domain publishes ``p=reject``), reading OpenDKIM's Authentication-Results field,
  * postfix-policyd-spf-python as a ``check_policy_service`` (spawned, not chrooted): SPF of
    the HELO name and of MAIL FROM, rejecting on Fail, adding ``Received-SPF``.
  The bench client (127.0.0.1) is not trusted anywhere: ``mynetworks``, OpenDKIM's
  ``InternalHosts``, OpenDMARC's ``IgnoreHosts`` and policyd-spf's ``skip_addresses`` all
  name 127.0.0.2 only (their defaults name 127.0.0.1, which would skip the checks or make
  OpenDKIM sign instead of verify).

Same DNS for everyone: the DNS fixture answers on port 53 of 127.0.0.153 (root only), and
Postfix, OpenDKIM and OpenDMARC start in a private mount namespace whose /etc/resolv.conf
says ``nameserver 127.0.0.153`` (libresolv in OpenDMARC, dnspython in policyd-spf, which
Postfix's master spawns inside that namespace). OpenDKIM resolves with libunbound, which
does not read resolv.conf: ``Nameservers 127.0.0.153`` forwards it to the same fixture.
Postroom uses ``[dns] resolver = "127.0.0.153:53"``. No DNSSEC anywhere (Debian's
opendkim.conf sets ``TrustAnchorFile``; the fixture's zones are unsigned).

Two things found on the way (Debian 12: OpenDKIM 2.11.0, Postfix 3.7):

- ``ResolverConfiguration`` (an unbound.conf, the only way to make libunbound resolve
  .test names, see tests/server/mailauth/test_opendkim_interop.py) crashes the OpenDKIM
  daemon under concurrent mail: it creates a libunbound context for VBR per message and
  loads that file into it, and libunbound's config parser is not thread-safe ("fatal flex
  scanner internal error", or a 451 "can't set VBR resolver configuration"). Hence the
  bench's sender domain is under .example, which resolvers treat like any other name.
- Milters on TCP sockets (``inet:``) cost about 90 ms per message each here (delayed ACKs
  on the milter connection): one client gets 7 messages/s instead of ~150. The milters
  listen on UNIX sockets in smtpd's chroot, as Debian's README.Debian suggests;
  ``CheckedPostfix(..., milter_socket="inet")`` measures the other way.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

import smtp as smtp_bench  # bench/smtp.py

FIXTURE_HOST = "127.0.0.153"  # a spare loopback address: the DNS fixture listens on its port 53
TRUSTED = "127.0.0.2"  # the "internal" network of every component; the bench client is 127.0.0.1
AUTHSERV_ID = "mx.example.test"
OPENDKIM = "/usr/sbin/opendkim"
OPENDMARC = "/usr/sbin/opendmarc"
POLICYD_SPF = "/usr/bin/policyd-spf"
STALL = 60.0  # seconds without a new delivery before a Postfix run gives up waiting


def smtp_source_file(port: int, sessions: int, messages: int, eml: Path, sender: str, helo: str) -> float:
    """smtp-source sending ``eml`` (-F) with this envelope and HELO; the elapsed seconds."""
    t = time.perf_counter()
    subprocess.run(["smtp-source", "-s", str(sessions), "-m", str(messages), "-F", str(eml), "-M", helo,
                    "-f", sender, "-t", smtp_bench.RCPT, f"127.0.0.1:{port}"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=3600)
    return time.perf_counter() - t


def namespace_unavailable() -> str | None:
    """Why Postfix and the milters cannot get a resolv.conf of their own here, or None."""
    if os.geteuid() != 0:
        return "needs root (port 53, a mount namespace)"
    if not shutil.which("unshare"):
        return "unshare (util-linux) is not installed"
    p = subprocess.run(["unshare", "-m", "--propagation", "private", "true"], capture_output=True,
                       check=False)
    if p.returncode:
        return f"no mount namespace: {p.stderr.decode(errors='replace').strip()}"
    return None


def in_namespace(resolv: Path, cmd: list[str]) -> list[str]:
    """``cmd`` in a private mount namespace where /etc/resolv.conf is ``resolv`` (the
    process execs ``cmd``, so its pid is the daemon's when the daemon stays in front)."""
    return ["unshare", "-m", "--propagation", "private", "sh", "-c",
            'mount --bind "$0" /etc/resolv.conf && exec "$@"', str(resolv), *cmd]


def header_block(raw: bytes) -> str:
    """The header section, folded lines joined."""
    head = raw.replace(b"\r\n", b"\n").split(b"\n\n", 1)[0].decode(errors="replace")
    return re.sub(r"\n[ \t]+", " ", head)


class PeerPostfix(smtp_bench.Postfix):
    """bench/smtp.py's Postfix, sent the bench's signed message like the Postroom columns,
    and started with the fixture as its resolver when ``resolv`` is given."""

    name = "postfix"

    def __init__(self, base: Path, eml: Path, sender: str, helo: str, resolv: Path | None) -> None:
        super().__init__(base)
        self.eml, self.sender, self.helo, self.resolv = eml, sender, helo, resolv

    def start(self) -> None:
        cmd = ["postfix", "start"]
        subprocess.run(in_namespace(self.resolv, cmd) if self.resolv else cmd, check=True, capture_output=True)
        smtp_bench.wait_port(self.port)

    def run(self, sessions: int, messages: int) -> float:
        """Until every message is in Maildir/new (Postfix's 250 means queued)."""
        want = self.delivered() + messages
        t = time.perf_counter()
        smtp_source_file(self.port, sessions, messages, self.eml, self.sender, self.helo)
        seen, last = self.delivered(), time.monotonic()
        while seen < want and time.monotonic() - last < STALL:
            time.sleep(0.01)
            now = self.delivered()
            if now != seen:
                seen, last = now, time.monotonic()
        return time.perf_counter() - t

    def first_message(self) -> bytes:
        new = self.maildir_new
        names = sorted(os.listdir(new)) if new.is_dir() else []
        return (new / names[0]).read_bytes() if names else b""


class CheckedPostfix(PeerPostfix):
    """Postfix + OpenDKIM + OpenDMARC + policyd-spf, all asking the fixture."""

    name = "postfix+checks"

    SPOOL = Path("/var/spool/postfix")  # smtpd's chroot: milter sockets go in here
    MILTERS = ("opendkim", "opendmarc")

    def __init__(self, base: Path, eml: Path, sender: str, helo: str, resolv: Path,
                 milter_socket: str = "unix") -> None:
        super().__init__(base, eml, sender, helo, resolv)
        self.ns_resolv = resolv
        self.dir = base / "postfix-checks"
        self.milter_socket = milter_socket
        self.sockdir = self.SPOOL / f"postroom-bench-{os.getpid()}"
        self.ports = {m: smtp_bench.free_port() for m in self.MILTERS}
        self.milters: list[subprocess.Popen[bytes]] = []

    def milter_sockets(self, name: str) -> tuple[str, str]:
        """(the milter's Socket setting, the smtpd_milters entry)."""
        if self.milter_socket == "inet":
            return f"inet:{self.ports[name]}@127.0.0.1", f"inet:127.0.0.1:{self.ports[name]}"
        # smtpd is chrooted to the spool: the name it connects to is relative to it.
        path = self.sockdir / name / f"{name}.sock"
        return f"local:{path}", f"unix:{path.relative_to(self.SPOOL)}"

    @staticmethod
    def unavailable() -> str | None:
        missing = [p for p in (OPENDKIM, OPENDMARC, POLICYD_SPF) if not os.access(p, os.X_OK)]
        if missing:
            return f"{', '.join(missing)} not installed (bash scripts/install-test-deps.sh)"
        return namespace_unavailable()

    def setup(self) -> None:
        super().setup()  # saves main.cf and master.cf, the virtual Maildir delivery, the listener
        d = self.dir
        if self.milter_socket == "unix":  # a directory of its own for each milter, which runs as its own user
            for name in self.MILTERS:
                (self.sockdir / name).mkdir(parents=True)
                shutil.chown(self.sockdir / name, name, name)
        (d / "trusted.hosts").write_text(f"{TRUSTED}\n")
        (d / "opendkim.conf").write_text(
            f"Mode v\nSocket {self.milter_sockets('opendkim')[0]}\nUMask 000\nUserID opendkim\nSyslog no\n"
            f"AuthservID {AUTHSERV_ID}\nInternalHosts {d / 'trusted.hosts'}\n"
            f"Nameservers {FIXTURE_HOST}\n")  # no ResolverConfiguration: see the module's docstring
        psl = Path("/usr/share/publicsuffix/public_suffix_list.dat")
        (d / "opendmarc.conf").write_text(
            f"Socket {self.milter_sockets('opendmarc')[0]}\nUMask 000\nUserID opendmarc\nSyslog false\n"
            f"AuthservID {AUTHSERV_ID}\nTrustedAuthservIDs {AUTHSERV_ID}\nIgnoreHosts {d / 'trusted.hosts'}\n"
            "RejectFailures true\nFailureReports false\n" + (f"PublicSuffixList {psl}\n" if psl.exists() else ""))
        (d / "policyd-spf.conf").write_text(
            "debugLevel = 1\nTestOnly = 0\nHELO_reject = Fail\nMail_From_reject = Fail\n"
            f"PermError_reject = False\nTempError_Defer = False\nskip_addresses = {TRUSTED}/32\n")
        settings = {
            "mynetworks": f"{TRUSTED}/32",
            "smtpd_recipient_restrictions": "reject_unauth_destination, check_policy_service unix:private/policyd-spf",
            "policyd-spf_time_limit": "3600",
            "smtpd_milters": ", ".join(self.milter_sockets(name)[1] for name in self.MILTERS),
            "non_smtpd_milters": "",
            "milter_default_action": "tempfail",  # a broken milter shows as undelivered mail
        }
        subprocess.run(["postconf", "-e", *(f"{k}={v}" for k, v in settings.items())], check=True)
        spawn = f"policyd-spf unix - n n - 0 spawn user=policyd-spf argv={POLICYD_SPF} {d / 'policyd-spf.conf'}"
        subprocess.run(["postconf", "-M", f"policyd-spf/unix = {spawn}"], check=True)

    def start(self) -> None:
        for name in self.MILTERS:
            conf = str(self.dir / f"{name}.conf")
            cmd = [OPENDKIM, "-f", "-x", conf] if name == "opendkim" else [OPENDMARC, "-f", "-c", conf]
            with open(self.dir / f"{name}.log", "wb") as log:
                self.milters.append(subprocess.Popen(in_namespace(self.ns_resolv, cmd), stdout=log,
                                                     stderr=subprocess.STDOUT))
        for name, proc in zip(self.MILTERS, self.milters):
            self.wait_milter(name, proc)
        super().start()

    def wait_milter(self, name: str, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while proc.poll() is None and time.monotonic() < deadline:
            if self.milter_socket == "unix" and (self.sockdir / name / f"{name}.sock").exists():
                return
            if self.milter_socket == "inet":
                try:
                    socket.create_connection(("127.0.0.1", self.ports[name]), timeout=1).close()
                    return
                except OSError:
                    pass
            time.sleep(0.05)
        out = (self.dir / f"{name}.log").read_text(errors="replace").strip()[-500:]
        state = "exited" if proc.poll() is not None else f"is not listening after {timeout:.0f}s"
        raise RuntimeError(f"{name} {state}: {out or 'no output'}")

    def stop(self) -> None:
        try:
            super().stop()  # postfix stop; main.cf and master.cf put back
        finally:
            for proc in self.milters:
                if proc.poll() is None:
                    proc.terminate()
                    try:
                        proc.wait(10)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait()
            self.milters.clear()
            shutil.rmtree(self.sockdir, ignore_errors=True)

    def verify(self) -> list[str]:
        """What is wrong with the first delivered message's authentication fields."""
        head = header_block(self.first_message())
        ar = re.findall(rf"^Authentication-Results: {re.escape(AUTHSERV_ID)};(.*)$", head, re.MULTILINE | re.IGNORECASE)
        problems = []
        if not any(re.search(r"\bdkim=pass\b", r) for r in ar):
            problems.append("no dkim=pass from OpenDKIM")
        if not any(re.search(r"\bdmarc=pass\b", r) for r in ar):
            problems.append("no dmarc=pass from OpenDMARC")
        if not re.search(r"^Received-SPF: Pass\b", head, re.MULTILINE):
            problems.append("no Received-SPF: Pass from policyd-spf")
        return problems

    def summary(self) -> str:
        """The fields the checks added to the first delivered message, one line."""
        head = header_block(self.first_message())
        found = re.findall(r"^(?:Authentication-Results|Received-SPF): .*$", head, re.MULTILINE | re.IGNORECASE)
        return "\n".join("      " + (f[:150] + "..." if len(f) > 150 else f) for f in found)
