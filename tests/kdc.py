"""A throwaway MIT Kerberos realm for the tests: its own database, KDC and keytab in a temp dir.

``Realm(root)`` writes a ``krb5.conf`` and a ``kdc.conf`` under ``root``, creates the database
with ``kdb5_util create -s``, and starts ``krb5kdc`` in the foreground on a free loopback port
(UDP and TCP). Principals and keytabs are made with ``kadmin.local``. Nothing outside ``root``
is read or written: ``KRB5_CONFIG`` and ``KRB5_KDC_PROFILE`` point every MIT tool and library
call at these files, and the acceptor's replay cache goes to ``root/rcache``
(``KRB5RCACHEDIR``). :meth:`Realm.environ` is what the process needs (the in-process server
and the test's own GSSAPI client both read it); :meth:`Realm.close` stops the KDC.

``clockskew`` is small (2 seconds) so a test can make a ticket expire, or an authenticator
go stale, in a few seconds instead of the default five minutes.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

REALM = "POSTROOM.TEST"
PASSWORD = "kerberos-secret"
TOOLS = ("krb5kdc", "kdb5_util", "kadmin.local", "kinit")


def _sbin(name: str) -> str | None:
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")


def available() -> str | None:
    """Why a realm cannot be made here (a missing program), or None when it can."""
    for tool in TOOLS:
        if _sbin(tool) is None:
            return f"{tool} not installed (scripts/install-test-deps.sh installs MIT Kerberos)"
    return None


def _free_port() -> int:
    """A port free for both UDP and TCP on loopback (the KDC listens on both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
            t.bind(("127.0.0.1", 0))
            port = t.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                try:
                    u.bind(("127.0.0.1", port))
                except OSError:
                    continue
            return int(port)
    raise RuntimeError("no free port for the KDC")


class Realm:
    def __init__(self, root: Path, realm: str = REALM) -> None:
        self.root = root
        self.realm = realm
        self.port = _free_port()
        self.krb5_conf = root / "krb5.conf"
        self.kdc_conf = root / "kdc.conf"
        (root / "rcache").mkdir(parents=True, exist_ok=True)
        self.krb5_conf.write_text(f"""[libdefaults]
  default_realm = {realm}
  dns_lookup_kdc = false
  dns_lookup_realm = false
  rdns = false
  dns_canonicalize_hostname = false
  udp_preference_limit = 1
  clockskew = 2
  default_ccache_name = FILE:{root}/ccache-default
  default_keytab_name = FILE:{root}/default.keytab

[realms]
  {realm} = {{
    kdc = 127.0.0.1:{self.port}
    admin_server = 127.0.0.1:{self.port + 1}
  }}
""")
        self.kdc_conf.write_text(f"""[kdcdefaults]
  kdc_listen = 127.0.0.1:{self.port}
  kdc_tcp_listen = 127.0.0.1:{self.port}

[realms]
  {realm} = {{
    database_name = {root}/principal
    key_stash_file = {root}/stash
    acl_file = {root}/kadm5.acl
    max_life = 10h
    max_renewable_life = 0
    supported_enctypes = aes256-cts-hmac-sha1-96:normal aes128-cts-hmac-sha1-96:normal
  }}

[logging]
  kdc = FILE:{root}/kdc.log
  admin_server = FILE:{root}/kadmin.log
  default = FILE:{root}/krb5lib.log
""")
        (root / "kadm5.acl").write_text("")
        self.env = {"KRB5_CONFIG": str(self.krb5_conf), "KRB5_KDC_PROFILE": str(self.kdc_conf),
                    "KRB5RCACHEDIR": str(root / "rcache"), "KRB5CCNAME": f"FILE:{root}/ccache-default",
                    "KRB5_KTNAME": f"FILE:{root}/default.keytab"}
        self._run("kdb5_util", "-r", realm, "create", "-s", "-W", "-P", "master-" + PASSWORD)
        with open(root / "krb5kdc.err", "wb") as err:  # the child keeps its own descriptor
            self.proc: subprocess.Popen[bytes] | None = subprocess.Popen(
                [str(_sbin("krb5kdc")), "-n", "-r", realm], env=self._environ(),
                stdout=subprocess.DEVNULL, stderr=err)
        self._wait_listening()

    def _environ(self) -> dict[str, str]:
        return {**os.environ, **self.env}

    def environ(self) -> dict[str, str]:
        """The variables that point the Kerberos library at this realm (set them in os.environ
        for an in-process server; pass them to a client subprocess)."""
        return dict(self.env)

    def _run(self, tool: str, *args: str, stdin: str | None = None) -> str:
        res = subprocess.run([str(_sbin(tool)), *args], env=self._environ(), input=stdin,
                             check=False, capture_output=True, text=True, timeout=60)
        if res.returncode != 0:
            raise RuntimeError(f"{tool} {' '.join(args)} failed: {res.stderr.strip() or res.stdout.strip()}")
        return res.stdout

    def _wait_listening(self) -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                err = (self.root / "krb5kdc.err").read_text(errors="replace")
                raise RuntimeError(f"krb5kdc exited: {err}")
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        raise RuntimeError("krb5kdc did not start listening")

    def kadmin(self, query: str) -> str:
        return self._run("kadmin.local", "-r", self.realm, "-q", query)

    def add_user(self, name: str, password: str = PASSWORD, maxlife: str | None = None) -> str:
        """A user principal ``name@REALM`` (``maxlife`` like "5 seconds" caps its tickets)."""
        extra = f' -maxlife "{maxlife}"' if maxlife else ""
        self.kadmin(f"addprinc -pw {password}{extra} {name}@{self.realm}")
        return f"{name}@{self.realm}"

    def add_service(self, service: str, host: str, keytab: Path) -> str:
        """A service principal ``service/host@REALM`` with a random key, exported to ``keytab``."""
        principal = f"{service}/{host}@{self.realm}"
        self.kadmin(f"addprinc -randkey {principal}")
        self.kadmin(f"ktadd -k {keytab} {principal}")
        return principal

    def kinit(self, principal: str, ccache: Path, password: str = PASSWORD, lifetime: str | None = None) -> None:
        """Get a TGT into the private credential cache ``ccache`` (``lifetime`` like "4s")."""
        args = ["-c", f"FILE:{ccache}"] + (["-l", lifetime] if lifetime else []) + [principal]
        self._run("kinit", *args, stdin=password + "\n")

    def close(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None
