"""The ``[kerberos]`` config section and the glue between SASL GSSAPI and accounts.

```toml
[kerberos]
keytab = "/etc/postroom/mail.keytab"    # the service keys (relative: from the config's directory)

[kerberos.services]                     # the principal each protocol accepts tickets for
imap = "imap/mail.example.org@EXAMPLE.ORG"
pop3 = "pop/mail.example.org@EXAMPLE.ORG"
smtp = "smtp/mail.example.org@EXAMPLE.ORG"       # SMTP submission (and port 25 if it offers AUTH)
managesieve = "sieve/mail.example.org@EXAMPLE.ORG"
nntp = "nntp/mail.example.org@EXAMPLE.ORG"

[kerberos.realms]                       # user@REALM logs in as user@DOMAIN
"EXAMPLE.ORG" = "example.org"

[kerberos.principals]                   # exceptions, looked up first
"jdoe@EXAMPLE.ORG" = "john.doe@example.org"
```

GSSAPI (and GSS-SPNEGO, the same Kerberos exchange in SPNEGO without the security-layer step)
is offered by a protocol only when the section names a keytab and a service for
it, and only where that protocol offers PLAIN (over TLS, or on a listener that allows
plaintext authentication): no security layer is offered (wire/gssapi.py), so before TLS the
session after login would run in the clear, which is what the TLS rule is there to stop.

A principal maps to an account by the exceptions table, else by its realm; a principal with
an instance (``user/admin@REALM``) maps only through an exception, and a principal whose
account does not exist is refused like a wrong password (counted and delayed), with the
reason in the log. The client only ever sees a plain authentication failure.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import Config

if TYPE_CHECKING:
    from ..wire.gssapi import Gssapi
    from ..wire.sasl import Identified
    from .login import Accepted, Client, Refused

#: Protocols that can offer GSSAPI, as keys of ``[kerberos.services]``.
PROTOCOLS = ("imap", "pop3", "smtp", "managesieve", "nntp")

_log = logging.getLogger("postroom.kerberos")


@dataclass(frozen=True, slots=True)
class KerberosSettings:
    keytab: Path | None = None
    services: dict[str, str] = field(default_factory=dict)  # protocol -> service principal
    realms: dict[str, str] = field(default_factory=dict)  # REALM -> mail domain
    principals: dict[str, str] = field(default_factory=dict)  # principal -> account address

    @property
    def enabled(self) -> bool:
        return self.keytab is not None and bool(self.services)

    def account_for(self, principal: str) -> str | None:
        """The account address ``principal`` logs in as, or None when no rule maps it."""
        exact = self.principals.get(principal)
        if exact is not None:
            return exact.lower()
        primary, at, realm = principal.rpartition("@")
        if not at or not primary or "/" in primary:
            return None  # service or admin instance: only an explicit exception maps it
        domain = self.realms.get(realm)
        return f"{primary.lower()}@{domain.lower()}" if domain else None


def _table(sec: Any, name: str) -> dict[str, str]:
    sub = sec.sub(name)
    out: dict[str, str] = {}
    for key in list(sub.data):
        value = sub.get(key, str, "")
        if value:
            out[key] = value
        elif key in sub.data and isinstance(sub.data[key], str):
            sub.problem(key, "must not be empty")
    return out


def read_settings(cfg: Config, problems: list[str]) -> KerberosSettings:
    sec = cfg.section("kerberos", problems)
    keytab_text = sec.get("keytab", str, "")
    keytab: Path | None = None
    if keytab_text:
        keytab = Path(keytab_text)
        if not keytab.is_absolute():
            keytab = cfg.path.parent / keytab
    services = _table(sec, "services")
    named = bool(services)
    for proto in list(services):
        if proto not in PROTOCOLS:
            problems.append(f"kerberos.services.{proto}: unknown protocol (one of {', '.join(PROTOCOLS)})")
            del services[proto]
        elif "@" not in services[proto]:
            problems.append(f"kerberos.services.{proto}: {services[proto]!r} is not a principal "
                            "like imap/mail.example.org@EXAMPLE.ORG")
            del services[proto]
    realms = _table(sec, "realms")
    principals = _table(sec, "principals")
    for principal in principals:
        if "@" not in principal:
            problems.append(f"kerberos.principals: {principal!r} is not a principal like user@REALM")
    if named and keytab is None:
        sec.problem("keytab", "is needed when kerberos.services names a service")
    sec.finish()
    return KerberosSettings(keytab, services, realms, principals)


def check_settings(cfg: Config, problems: list[str]) -> None:
    """``postroom check``: the keytab must be readable and hold every configured service."""
    s = read_settings(cfg, problems)
    if not s.enabled or s.keytab is None:
        return
    try:
        with open(s.keytab, "rb"):
            pass
    except OSError as exc:
        problems.append(f"kerberos.keytab: cannot read {s.keytab}: {exc.strerror or exc}")
        return
    if not _have_gssapi():
        problems.append("kerberos: the Python package gssapi is not installed (pip install 'postroom[kerberos]')")
        return
    for proto, principal in sorted(s.services.items()):
        problem = _acquire_problem(s.keytab, principal)
        if problem:
            problems.append(f"kerberos.services.{proto}: {problem}")


def _acquire(keytab: Path, principal: str) -> Any:
    import gssapi

    name = gssapi.Name(principal, gssapi.NameType.kerberos_principal)
    return gssapi.Credentials(name=name, usage="accept", store={"keytab": f"FILE:{keytab}"})


def _acquire_problem(keytab: Path, principal: str) -> str | None:
    import gssapi.exceptions

    from ..wire.gssapi import reason

    try:
        _acquire(keytab, principal)
    except gssapi.exceptions.GSSError as exc:
        return f"{keytab} has no key for {principal}: {reason(exc)}"
    return None


def settings_for(ctx: object) -> KerberosSettings:
    """Parsed once per config (``ctx.state`` is cleared on SIGHUP)."""
    state: dict[str, object] = ctx.state  # type: ignore[attr-defined]
    s = state.get("kerberos")
    if not isinstance(s, KerberosSettings):
        s = read_settings(ctx.config, [])  # type: ignore[attr-defined]
        state["kerberos"] = s
    return s


def _have_gssapi() -> bool:
    """The ``gssapi`` package is optional (``postroom[kerberos]``); without it GSSAPI is not
    offered at all, and ``postroom check`` says why."""
    try:
        import gssapi  # noqa: F401
    except ImportError:
        return False
    return True


#: What a protocol lists when [kerberos] names its service.
MECHANISMS = ("GSSAPI", "GSS-SPNEGO")


def offered(ctx: object, protocol: str) -> bool:
    """Whether ``protocol`` offers Kerberos (the caller applies its TLS rule as for PLAIN)."""
    s = settings_for(ctx)
    return s.enabled and protocol in s.services and _have_gssapi()


def mechanisms(ctx: object, protocol: str) -> list[str]:
    """The Kerberos SASL mechanisms ``protocol`` lists: both, or none."""
    return list(MECHANISMS) if offered(ctx, protocol) else []


def mechanism(ctx: object, protocol: str, name: str) -> Gssapi | None:
    """A fresh GSSAPI or GSS-SPNEGO exchange for ``protocol`` when ``name`` is one and it is offered.

    The acceptor credentials are acquired once per process and config; MIT krb5 reads the
    keytab again at each accept, so a rotated keytab needs no reload. When they cannot be
    acquired (keytab gone, principal removed) the reason is logged and the exchange still
    runs, failing at its first token, so the client sees a plain authentication failure.
    """
    name = name.upper()
    if name not in MECHANISMS or not offered(ctx, protocol):
        return None
    import gssapi.exceptions

    from ..wire.gssapi import Gssapi, GssSpnego, reason

    cls = GssSpnego if name == "GSS-SPNEGO" else Gssapi

    s = settings_for(ctx)
    state: dict[str, object] = ctx.state  # type: ignore[attr-defined]
    key = f"kerberos.creds.{protocol}"
    creds = state.get(key)
    if creds is None:
        assert s.keytab is not None
        try:
            creds = _acquire(s.keytab, s.services[protocol])
        except gssapi.exceptions.GSSError as exc:
            _log.warning("%s: no acceptor credentials for %s from keytab %s: %s", protocol,
                         s.services[protocol], s.keytab, reason(exc))
            return cls(None)
        state[key] = creds
    return cls(creds)  # type: ignore[arg-type]  # state holds the Credentials acquired above


async def finish(s: Client, result: Identified, log: logging.Logger) -> Accepted | Refused:
    """Map the authenticated principal to its account and check the authzid.

    A principal with no account is counted as a failed login (so scanning principals is
    throttled like guessing passwords); the log says which principal and why.
    """
    from .login import Accepted, Refused, count_failure

    principal = result.principal
    if await s.ctx.auth.throttled(s.peer_ip):
        log.info("%s auth throttled principal=%r", s.tag, principal[:100])
        return Refused(throttled=True)
    address = settings_for(s.ctx).account_for(principal)
    account = await s.ctx.store.get_account(address) if address else None
    if account is None:
        why = "no mapping for its realm" if address is None else f"no account {address}"
        log.info("%s auth failed (Kerberos: principal %r: %s)", s.tag, principal[:100], why)
        await count_failure(s, address or principal, log)
        return Refused()
    if account.disabled:  # docs/web.md: a disabled account logs in nowhere
        log.info("%s auth disabled (Kerberos: principal %r, account %s)", s.tag, principal[:100], account.address)
        return Refused()
    authzid = result.authzid.lower()
    if authzid and authzid not in (account.address.lower(), principal.lower(), principal.rpartition("@")[0].lower()):
        # Acting as another user (proxy authorization) is not offered, as for PLAIN.
        log.info("%s auth failed (Kerberos: principal %r asked to act as %r)", s.tag, principal[:100], authzid[:100])
        await count_failure(s, account.address, log)
        return Refused()
    log.info("%s auth Kerberos principal=%r", s.tag, principal[:100])
    return Accepted(account)
