"""A throwaway INN 2 news server on loopback, peered with Postroom, for the NNTP peering tests.

Debian's ``inn2`` package provides the binaries (``/usr/lib/news/bin``); nothing of the system
installation is used or touched: every path INN reads or writes (its ``inn.conf``, the active
file, history, spool, overview, logs, the control socket) lives under one temporary directory,
and every INN program finds that ``inn.conf`` through the ``INNCONF`` environment variable
(libinn reads it before falling back to /etc/news/inn.conf). ``innd`` listens on 127.0.0.1 on
an ephemeral port: the fixture binds the socket itself and hands it over with systemd's socket
activation protocol (``LISTEN_FDS``/``LISTEN_PID``, descriptor 3), which Debian's innd supports,
so there is no window in which another process could take the port. INN refuses to run as
root: started as root, it runs as the ``news`` user; otherwise as the current user
(``runasuser``/``runasgroup`` in inn.conf).

The peering, both ways:

- Postroom → INN: ``incoming.conf`` lists the addresses Postroom's feed connects from, so innd
  takes IHAVE/CHECK/TAKETHIS from them (other loopback connections are handed to ``nnrpd``,
  the reader).
- INN → Postroom: a ``newsfeeds`` entry for Postroom's path identity, fed by ``innfeed``
  (streaming when Postroom advertises it), with short reconnect times for the tests; it
  gets each article as innd files it. ``innfeed.conf`` names Postroom's port, and Postroom's
  peer config names INN's: :meth:`InnPeer.reserve` binds INN's socket first, so both are
  known before either server starts. innfeed logs to ``log/innfeed.err`` (there is no
  syslog to catch innd's own messages in a container; :meth:`InnPeer.logs` shows them).

From the shell, for a look at a running INN::

    python tests/innpeer.py start DIR POSTROOM_PORT   # prints INN's port; keeps running
    python tests/innpeer.py stop DIR
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

INN_BIN = Path("/usr/lib/news/bin")
INND = INN_BIN / "innd"


def available() -> bool:
    """True when Debian's inn2 is installed (innd, ctlinnd, makedbz, innfeed)."""
    return all((INN_BIN / p).exists() for p in ("innd", "ctlinnd", "makedbz", "innfeed"))


class InnError(RuntimeError):
    pass


class InnPeer:
    """One INN instance in ``root``, peered with a Postroom at ``postroom_port``.

    ``path_host`` is INN's own Path identity (what Postroom's peer config names it);
    ``postroom_name`` is Postroom's (``[nntp] path_host``): INN does not offer Postroom
    an article whose Path already carries it.
    """

    def __init__(self, root: Path, *, postroom_port: int, path_host: str = "inn.test",
                 postroom_name: str = "postroom.test", postroom_addresses: tuple[str, ...] = ("127.0.0.1",),
                 groups: tuple[str, ...] = ("local.test",), feed_groups: str = "*,!junk,!control*") -> None:
        self.root = Path(root).resolve()
        self.postroom_port = postroom_port
        self.path_host = path_host
        self.postroom_name = postroom_name
        self.postroom_addresses = postroom_addresses
        self.groups = groups
        self.feed_groups = feed_groups
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self._listener: socket.socket | None = None
        if os.geteuid() == 0:
            pw = pwd.getpwnam("news")
            self.uid, self.gid = pw.pw_uid, pw.pw_gid
        else:
            self.uid, self.gid = os.getuid(), os.getgid()
        self.user = pwd.getpwuid(self.uid).pw_name
        self.group = grp.getgrgid(self.gid).gr_name

    # -- layout -----------------------------------------------------------------------------

    def _dir(self, name: str) -> Path:
        return self.root / name

    @property
    def env(self) -> dict[str, str]:
        return {"PATH": f"{INN_BIN}:/usr/sbin:/usr/bin:/sbin:/bin", "INNCONF": str(self._dir("etc") / "inn.conf"),
                "HOME": str(self.root), "LANG": "C"}

    def _write(self, rel: str, text: str) -> None:
        path = self.root / rel
        path.write_text(text)
        os.chown(path, self.uid, self.gid)

    def _inn_conf(self) -> str:
        d = self._dir
        # Everything is spelled out: defaults would point into /var/lib/news and /run/news.
        return f"""\
domain: {self.path_host}
pathhost: {self.path_host}
server: 127.0.0.1
fromhost: {self.path_host}
mta: "/bin/true %s"
mailcmd: /bin/true
runasuser: {self.user}
runasgroup: {self.group}
pathnews: /usr/lib/news
pathbin: {INN_BIN}
pathcontrol: {INN_BIN}/control
pathfilter: {d('filter')}
pathetc: {d('etc')}
pathdb: {d('db')}
pathrun: {d('run')}
pathlog: {d('log')}
pathhttp: {d('http')}
pathspool: {d('spool')}
patharticles: {d('spool')}/articles
pathoverview: {d('spool')}/overview
pathoutgoing: {d('spool')}/outgoing
pathincoming: {d('spool')}/incoming
pathtmp: {d('spool')}/incoming/tmp
patharchive: {d('spool')}/archive
hismethod: hisv6
ovmethod: tradindexed
enableoverview: true
storeonxref: true
wireformat: true
bindaddress: 127.0.0.1
bindaddress6: none
port: 119
nnrpdpostport: 119
artcutoff: 0
docancels: require-auth
pgpverify: false
doinnwatch: false
docnfsstat: false
htmlstatus: false
logstatus: false
status: 0
timer: 0
maxconnections: 50
maxartsize: 1000000
localmaxartsize: 1000000
readerswhenstopped: true
nnrpdloadlimit: 0
noreader: false
addinjectiondate: true
addinjectionpostinghost: false
addinjectionpostingaccount: false
checkincludedtext: false
chanretrytime: 1
pauseretrytime: 1
icdsynccount: 1
"""

    def _innfeed_conf(self) -> str:
        return f"""\
pid-file: {self._dir('run')}/innfeed.pid
log-file: {self._dir('log')}/innfeed.log
status-file: {self._dir('log')}/innfeed.status
backlog-directory: {self._dir('spool')}/innfeed
stats-period: 600
stats-reset: 43200
initial-reconnect-time: 1
max-reconnect-time: 2
article-timeout: 600
response-timeout: 60
initial-connections: 1
max-connections: 1
close-period: 86400
streaming: true
no-check-high: 100.0
no-check-low: 99.0
backlog-feed-first: false
backlog-limit: 0
backlog-ckpt-period: 1
backlog-newfile-period: 1
backlog-rotate-period: 1
port-number: {self.postroom_port}

peer {self.postroom_name} {{
    ip-name: 127.0.0.1
}}
"""

    def _configure(self) -> None:
        for sub in ("etc", "db", "run", "log", "http", "filter", "spool", "spool/articles", "spool/overview",
                    "spool/outgoing", "spool/incoming", "spool/incoming/tmp", "spool/archive", "spool/innfeed"):
            p = self.root / sub
            p.mkdir(parents=True, exist_ok=True)
            os.chown(p, self.uid, self.gid)
        os.chown(self.root, self.uid, self.gid)
        self._write("etc/inn.conf", self._inn_conf())
        # timehash, not tradspool: a tradspool token names its group by a number from a map
        # that innd extends when a group gets its first article, and innfeed, which read the
        # map when it started, then finds the article "missing" until it re-reads it.
        self._write("etc/storage.conf", "method timehash {\n    newsgroups: *\n    class: 0\n}\n")
        self._write("etc/expire.ctl", "/remember/:11\n*:A:1:90:never\n")
        self._write("etc/newsfeeds", (
            "ME:*,!junk::\n"
            # innfeed as a funnel: it carries the articles of every site listed as "innfeed!".
            f"innfeed!:!*:Tc,Wnm*:{INN_BIN}/innfeed -y -l {self._dir('log')}/innfeed.err\n"
            # Postroom: articles of these groups, unless its name is already in the Path.
            f"{self.postroom_name}:{self.feed_groups}:Tm:innfeed!\n"))
        hosts = ", ".join(self.postroom_addresses)
        self._write("etc/incoming.conf", (
            "streaming: true\nmax-connections: 8\n"
            f'peer postroom {{\n  hostname: "{hosts}"\n  patterns: "*"\n}}\n'))
        self._write("etc/readers.conf", (
            'auth "local" {\n  hosts: "127.0.0.1, localhost, stdin"\n  default: "<local>"\n}\n'
            'access "local" {\n  users: "<local>"\n  newsgroups: "*"\n  access: RPA\n}\n'))
        self._write("etc/innfeed.conf", self._innfeed_conf())
        for name in ("distrib.pats", "distributions", "subscriptions", "moderators", "localgroups",
                     "passwd.nntp", "control.ctl", "control.ctl.local", "nocem.ctl", "buffindexed.conf",
                     "cycbuff.conf", "ovdb.conf", "ovsqlite.conf", "inn-secrets.conf", "innwatch.ctl",
                     "news2mail.cf"):
            src = Path("/etc/news") / name
            if src.exists() and name not in ("passwd.nntp", "inn-secrets.conf"):
                self._write(f"etc/{name}", src.read_text())
            else:
                self._write(f"etc/{name}", "")
        active = "control 0000000000 0000000001 n\ncontrol.cancel 0000000000 0000000001 n\n" \
                 "junk 0000000000 0000000001 n\n"
        self._write("db/active", active)
        now = int(time.time())
        self._write("db/active.times", "".join(
            f"{g} {now} {self.user}\n" for g in ("control", "control.cancel", "junk")))
        self._write("db/newsgroups", "")
        self._write("db/history", "")
        self._run("makedbz", "-i", "-o", "-f", str(self._dir("db") / "history"))

    # -- running INN's programs ----------------------------------------------------------------

    def _as_owner(self) -> dict[str, object]:
        """Popen arguments that run an INN program as the owner of its files ("news" when we
        are root; INN refuses to run as root)."""
        if os.geteuid() != 0:
            return {}
        return {"user": self.uid, "group": self.gid, "extra_groups": [self.gid]}

    def _run(self, prog: str, *args: str, check: bool = True, timeout: float = 60) -> str:
        r = subprocess.run([str(INN_BIN / prog), *args], env=self.env, capture_output=True, text=True,
                           timeout=timeout, cwd=self.root, check=False, **self._as_owner())  # type: ignore[call-overload]
        if check and r.returncode != 0:
            raise InnError(f"{prog} {' '.join(args)}: exit {r.returncode}: {r.stdout}{r.stderr}")
        return r.stdout

    def ctlinnd(self, *args: str, check: bool = True) -> str:
        return self._run("ctlinnd", "-t", "30", *args, check=check)

    def reserve(self) -> socket.socket:
        """Bind INN's listening socket now, so that :attr:`port` is known before INN starts
        (Postroom's peer config needs it, and INN's innfeed.conf needs Postroom's port)."""
        if self._listener is None:
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(("127.0.0.1", self.port))  # 0 the first time; the same port on a restart
            listener.listen(128)
            self.port = listener.getsockname()[1]
            self._listener = listener
        return self._listener

    def start(self, timeout: float = 30.0) -> None:
        """Configure (first time), start innd on an ephemeral loopback port, create the groups."""
        if not (self.root / "etc" / "inn.conf").exists():
            self._configure()
        else:  # a restart: Postroom's port may have changed
            self._write("etc/innfeed.conf", self._innfeed_conf())
        listener = self._listener or self.reserve()
        self._listener = None
        # Socket activation: the listening socket comes in as stdin and the shell moves it to
        # descriptor 3 and sets LISTEN_PID to its own pid, which exec keeps for innd. (No
        # preexec_fn: the test process runs Postroom in threads.)
        try:
            with open(self._dir("log") / "innd.stdout", "ab") as log:
                self.proc = subprocess.Popen(  # type: ignore[call-overload]
                    ["/bin/sh", "-c", 'exec 3<&0 0</dev/null; LISTEN_PID=$$ LISTEN_FDS=1 exec "$@"', "sh",
                     str(INND), "-f", "-c", "0"],
                    env=self.env, stdin=listener.fileno(), stdout=log, stderr=subprocess.STDOUT, cwd=self.root,
                    **self._as_owner())
        finally:
            listener.close()
        (self.root / "innd.pid").write_text(f"{self.proc.pid}\n")
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise InnError(f"innd exited with {self.proc.returncode}: {self.logs()}")
            if (self._dir("run") / "control").exists() and \
                    self.ctlinnd("mode", check=False).startswith("Server running"):
                break
            if time.monotonic() > deadline:
                raise InnError(f"innd did not come up: {self.logs()}")
            time.sleep(0.1)
        active = (self._dir("db") / "active").read_text()
        for g in self.groups:
            if f"\n{g} " not in "\n" + active:
                self.ctlinnd("newgroup", g, "y", self.user)

    def flush(self) -> None:
        """``ctlinnd flush innfeed!``: innd closes innfeed's channel and starts a new innfeed,
        which sends what it had not sent yet. innfeed gets each article as innd files it, so
        the tests need not call this; calling it in a loop keeps innfeed from ever connecting."""
        self.ctlinnd("flush", "innfeed!", check=False)

    def stop(self, timeout: float = 30.0) -> None:
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        if self.proc is None or self.proc.poll() is not None:
            self.proc = None
            return
        self.ctlinnd("shutdown", "test done", check=False)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._kill_innfeed()
        self.proc = None

    def _kill_innfeed(self) -> None:
        pidfile = self._dir("run") / "innfeed.pid"
        try:
            pid = int(pidfile.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        _wait_gone(pid, 5.0)

    def logs(self) -> str:
        out = []
        for name in ("innd.stdout", "news.err", "news.notice", "errlog", "innfeed.log", "innfeed.err"):
            p = self._dir("log") / name
            if p.exists():
                out.append(f"--- {name}\n{p.read_text(errors='replace')[-3000:]}")
        return "\n".join(out)

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    # -- talking to INN ------------------------------------------------------------------------

    def reader(self, timeout: float = 10.0) -> InnClient:
        """A reader connection (MODE READER hands it to nnrpd)."""
        c = InnClient(("127.0.0.1", self.port), timeout)
        code, text = c.cmd("MODE READER")
        if code not in (200, 201):
            c.close()
            raise InnError(f"MODE READER: {code} {text}")
        return c

    def has_article(self, message_id: str) -> bool:
        """True when INN's history knows ``message_id`` and it is stored (grephistory)."""
        r = self._run("grephistory", "-q", message_id, check=False)
        return r == "" and self._run("grephistory", message_id, check=False).strip() != ""


class InnClient:
    """Enough NNTP to read from and post to INN in the tests (the suite's client is for Postroom)."""

    def __init__(self, addr: tuple[str, int], timeout: float = 10.0) -> None:
        self.sock = socket.create_connection(addr, timeout=timeout)
        self.f = self.sock.makefile("rwb")
        self.greeting = self._line()

    def _line(self) -> str:
        line = self.f.readline()
        if not line:
            raise ConnectionError("INN closed the connection")
        return line.decode("utf-8", "replace").rstrip("\r\n")

    def cmd(self, line: str) -> tuple[int, str]:
        self.f.write(line.encode() + b"\r\n")
        self.f.flush()
        reply = self._line()
        return int(reply[:3]), reply[4:]

    def multiline(self) -> list[bytes]:
        lines: list[bytes] = []
        while True:
            line = self.f.readline()
            if not line:
                raise ConnectionError("INN closed the connection")
            line = line.rstrip(b"\r\n")
            if line == b".":
                return lines
            lines.append(line[1:] if line.startswith(b"..") else line)

    def article(self, spec: str) -> bytes | None:
        code, _ = self.cmd(f"ARTICLE {spec}")
        if code != 220:
            return None
        return b"\r\n".join(self.multiline()) + b"\r\n"

    def post(self, raw: bytes) -> tuple[int, str]:
        code, text = self.cmd("POST")
        if code != 340:
            return code, text
        body = raw.replace(b"\r\n", b"\n").split(b"\n")
        if body and body[-1] == b"":
            body.pop()
        out = b"".join((b"." + ln if ln.startswith(b".") else ln) + b"\r\n" for ln in body) + b".\r\n"
        self.f.write(out)
        self.f.flush()
        reply = self._line()
        return int(reply[:3]), reply[4:]

    def close(self) -> None:
        try:
            self.cmd("QUIT")
            self.f.close()
        except (OSError, ValueError):
            pass
        self.sock.close()


def _wait_gone(pid: int, timeout: float) -> bool:
    """Wait for process ``pid`` to end; False if it still runs after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def main(argv: list[str]) -> int:
    if len(argv) >= 2 and argv[0] == "start":
        port = int(argv[2]) if len(argv) > 2 else 1
        inn = InnPeer(Path(argv[1]), postroom_port=port)
        inn.start()
        print(inn.port)
        inn.proc = None  # keep it running after we exit
        return 0
    if len(argv) == 2 and argv[0] == "stop":
        inn = InnPeer(Path(argv[1]), postroom_port=1)
        pid = int((inn.root / "innd.pid").read_text())
        inn.ctlinnd("shutdown", "stop", check=False)
        if not _wait_gone(pid, 30.0):
            os.kill(pid, signal.SIGKILL)  # innd ignores SIGTERM while it is stuck
        inn._kill_innfeed()
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
