"""A Kerberos realm (tests/kdc.py) and a Postroom runtime whose ``[kerberos]`` section uses it.

The realm and the server live once per test module. The server runs in this process (a
thread, tests/threaded_runtime.py), so the Kerberos variables of the realm are put in
``os.environ`` before it starts: the server's acceptor and the test's own GSSAPI client
then read the realm's krb5.conf, and the replay cache goes to the realm's directory.

:class:`SaslGssapi` is the client side of RFC 4752 written for the tests with the
``gssapi`` package: it is what Thunderbird or mutt do through their GSS-API library.
"""

from __future__ import annotations

import itertools
import os
import ssl
import sys
from pathlib import Path

import gssapi
from threaded_runtime import ThreadedRuntime

from postroom import protocols
from postroom.auth import hash_password
from postroom.storage.models import Account

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # tests/: kdc.py
sys.path.append(str(Path(__file__).resolve().parents[3] / "bench"))
import kdc
from postroom_peer import DOMAIN, write_config

#: The host part of the service principals: the address clients connect to. curl and fetchmail
#: build the principal they ask a ticket for from the host name they connect to
#: (``imap/127.0.0.1@REALM``), and /etc/hosts is not ours to change.
HOST = "127.0.0.1"
#: Service name per protocol: the first part of the principal a client asks a ticket for.
SERVICES = {"imap": "imap", "pop3": "pop", "smtp": "smtp", "managesieve": "sieve", "nntp": "nntp"}
_names = itertools.count(1)


class KerberosHarness(ThreadedRuntime):
    def __init__(self, root: Path) -> None:
        self.root = root
        self.realm = kdc.Realm(root / "realm")
        try:
            self._saved = {k: os.environ.get(k) for k in self.realm.env}
            os.environ.update(self.realm.environ())
            self.keytab = root / "mail.keytab"
            self.principals = {proto: self.realm.add_service(svc, HOST, self.keytab)
                               for proto, svc in SERVICES.items()}
            # A principal in the realm whose service is not configured (a ticket for it is
            # "a ticket for another service" to every listener).
            self.realm.add_service("host", HOST, root / "other.keytab")
            services = "\n".join(f'{proto} = "{p}"' for proto, p in self.principals.items())
            sections = f"""[limits]
auth_failures_per_ip = 1000
[mailauth]
check_listeners = []
[kerberos]
keytab = "{self.keytab}"
[kerberos.services]
{services}
[kerberos.realms]
"{kdc.REALM}" = "{DOMAIN}"
[kerberos.principals]
"carol/admin@{kdc.REALM}" = "admin@{DOMAIN}"
[listeners.imap]
address = "127.0.0.1:0"
tls = "starttls"
[listeners.pop3]
address = "127.0.0.1:0"
tls = "starttls"
[listeners.submission]
address = "127.0.0.1:0"
tls = "starttls"
[listeners.imapplain]
protocol = "imap"
address = "127.0.0.1:0"
""" + "".join(f'[listeners.{p}]\naddress = "127.0.0.1:0"\ntls = "starttls"\n'
              for p in ("managesieve", "nntp") if p in protocols.available())
            super().__init__(write_config(root, sections, hostname="mail.example.test"))
        except BaseException:
            self.realm.close()
            raise

    def new_user(self, password: str = "secret", *, principal: bool = True, maxlife: str | None = None) -> Account:
        """An account ``userN@DOMAIN`` and (``principal``) a Kerberos principal ``userN@REALM``."""
        name = f"kuser{next(_names)}"
        acc = self.call(self.store.create_account(f"{name}@{DOMAIN}", hash_password(password)))
        if principal:
            self.realm.add_user(name, maxlife=maxlife)
        return acc

    def ticket(self, name: str, lifetime: str | None = None) -> Path:
        """kinit ``name@REALM`` with its password into a private credential cache."""
        ccache = self.root / f"cc-{name.replace('/', '_')}-{next(_names)}"
        self.realm.kinit(f"{name}@{kdc.REALM}", ccache, lifetime=lifetime)
        return ccache

    def close(self) -> None:
        try:
            super().close()
        finally:
            self.realm.close()
            for k, v in self._saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


def tls() -> ssl.SSLContext:
    """The clients' TLS: the test server's certificate is self-signed."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


class SaslGssapi:
    """The client side of SASL GSSAPI (RFC 4752 §3.1) over ``ccache``'s tickets.

    ``respond(challenge)`` is the authobject of imaplib and smtplib (they base64 for it).
    ``layer`` is the security layer the client picks (1: none, 2: integrity). ``spnego``: the
    GSS-SPNEGO mechanism instead (SPNEGO tokens, no security-layer negotiation).
    """

    def __init__(self, ccache: Path, target: str, authzid: str = "", layer: int = 1, spnego: bool = False) -> None:
        creds = gssapi.Credentials(usage="initiate", store={"ccache": f"FILE:{ccache}"})
        self.spnego = spnego
        self.ctx = gssapi.SecurityContext(
            name=gssapi.Name(target, gssapi.NameType.kerberos_principal), creds=creds, usage="initiate",
            mech=gssapi.OID.from_int_seq("1.3.6.1.5.5.2") if spnego else None,
            flags=gssapi.RequirementFlag.mutual_authentication | gssapi.RequirementFlag.integrity)
        self.authzid = authzid
        self.layer = layer
        self.started = False
        self.offer: bytes | None = None

    def initial(self) -> bytes:
        self.started = True
        return self.ctx.step() or b""

    def respond(self, challenge: bytes | None = None) -> bytes:
        if not self.started:
            return self.initial()  # the server's empty "+ " asked for the first token
        if not self.ctx.complete:
            return self.ctx.step(challenge or b"") or b""
        if self.spnego:
            return b""  # GSS-SPNEGO has no security-layer step
        self.offer = self.ctx.unwrap(challenge or b"").message
        return self.ctx.wrap(bytes([self.layer, 0, 0, 0]) + self.authzid.encode(), encrypt=False).message

    def __call__(self, challenge: bytes | None = None) -> bytes:
        return self.respond(challenge)
