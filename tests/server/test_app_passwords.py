"""App passwords and disabled accounts on every mail protocol (postroom.accounts, docs/web.md
"Accounts: admins, app passwords"): one real server, the stdlib's clients over TLS on
loopback (imaplib, poplib, smtplib), raw ManageSieve and NNTP clients."""

from __future__ import annotations

import imaplib
import poplib
import smtplib
import ssl
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from postroom.accounts import app_passwords, attributes
from postroom.auth import hash_password

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent / "managesieve"))
from cli.serving import make_server_dir
from managesieve_harness import Client as ManageSieveClient
from nntpclient import NNTPClient
from threaded_runtime import ThreadedRuntime

PW = "account password"
DOMAIN = "example.test"


def _tls() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


@pytest.fixture(scope="module")
def rt(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadedRuntime]:
    cfgp = make_server_dir(tmp_path_factory.mktemp("apppw") / "srv")
    cfgp.write_text(cfgp.read_text().replace("[limits]\n", "[limits]\nauth_failures_per_ip = 1000\n"))
    runtime = ThreadedRuntime(cfgp)
    # Failures double the delay (base_delay × 2^n): keep a module of refusals fast.
    runtime.server.ctx.auth.base_delay = 1e-5
    try:
        yield runtime
    finally:
        runtime.close()


_n = iter(range(1, 1000))


def _user(rt: ThreadedRuntime) -> str:
    address = f"apppw{next(_n)}@{DOMAIN}"
    rt.call(rt.store.create_account(address, hash_password(PW)))
    return address


def _app_password(rt: ThreadedRuntime, address: str, name: str = "phone") -> str:
    account = rt.call(rt.store.get_account(address))
    return rt.call(app_passwords.create(rt.store, account, name))[1]


# -- one login per protocol: True when accepted ------------------------------------------
def imap_login(rt: ThreadedRuntime, user: str, pw: str) -> bool:
    with imaplib.IMAP4_SSL("127.0.0.1", rt.ports["imaps"], ssl_context=_tls(), timeout=30) as c:
        try:
            c.login(user, pw)
        except imaplib.IMAP4.error:
            return False
        assert c.select("INBOX")[0] == "OK"
        c.logout()
        return True


def pop3_login(rt: ThreadedRuntime, user: str, pw: str) -> bool:
    c = poplib.POP3_SSL("127.0.0.1", rt.ports["pop3s"], context=_tls(), timeout=30)
    try:
        c.user(user)
        try:
            c.pass_(pw)
        except poplib.error_proto:
            return False
        c.stat()
        return True
    finally:
        c.quit()


def smtp_login(rt: ThreadedRuntime, user: str, pw: str) -> bool:
    with smtplib.SMTP_SSL("127.0.0.1", rt.ports["submissions"], context=_tls(), timeout=30) as c:
        try:
            c.login(user, pw)
        except smtplib.SMTPAuthenticationError:
            return False
        return True


def managesieve_login(rt: ThreadedRuntime, user: str, pw: str) -> bool:
    c = ManageSieveClient(rt.ports["managesieve"])
    try:
        c.greeting = c.response()
        c.starttls()
        return c.authenticate_plain(user, pw).status == "OK"
    finally:
        c.close()


def nntp_login(rt: ThreadedRuntime, user: str, pw: str) -> bool:
    c = NNTPClient.connect("127.0.0.1", rt.ports["nntps"], tls=True)
    try:
        return c.authinfo(user, pw)[0] == 281
    finally:
        c.quit()


PROTOCOLS: dict[str, Callable[[ThreadedRuntime, str, str], bool]] = {
    "imap": imap_login, "pop3": pop3_login, "smtp": smtp_login, "managesieve": managesieve_login,
    "nntp": nntp_login,
}


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_app_password_logs_in_and_revocation_is_immediate(rt: ThreadedRuntime, proto: str) -> None:
    login = PROTOCOLS[proto]
    user = _user(rt)
    pw = _app_password(rt, user)
    assert login(rt, user, pw)
    assert login(rt, user, pw.upper().replace("-", ""))  # as typed on a phone
    assert login(rt, user, PW)  # the account password still works
    account = rt.call(rt.store.get_account(user))
    [cred] = rt.call(app_passwords.list_for(rt.store, account))
    assert cred.last_used is not None  # recorded on the first use
    assert rt.call(app_passwords.revoke(rt.store, account, "phone"))
    assert not login(rt, user, pw)  # at once: nothing is cached
    other = _user(rt)
    assert not login(rt, other, _app_password(rt, user, "laptop"))  # another account's is no use


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_disabled_account_logs_in_nowhere(rt: ThreadedRuntime, proto: str) -> None:
    login = PROTOCOLS[proto]
    user = _user(rt)
    pw = _app_password(rt, user)
    rt.call(attributes.set_disabled(rt.store, user, True))
    assert not login(rt, user, PW)
    assert not login(rt, user, pw)
    rt.call(attributes.set_disabled(rt.store, user, False))
    assert login(rt, user, PW) and login(rt, user, pw)


def test_disabled_account_still_receives_mail(rt: ThreadedRuntime) -> None:
    user = _user(rt)
    rt.call(attributes.set_disabled(rt.store, user, True))
    with smtplib.SMTP("127.0.0.1", rt.ports["smtp"], timeout=30) as c:
        c.sendmail(f"someone@{DOMAIN}", [user], b"Subject: still here\r\n\r\nhello\r\n")
    account = rt.call(rt.store.get_account(user))
    inbox = rt.call(rt.store.get_mailbox(account.id, "INBOX"))
    assert len(rt.call(rt.store.list_messages(inbox.id))) == 1


def test_web_login_refuses_app_passwords(rt: ThreadedRuntime) -> None:
    user = _user(rt)
    pw = _app_password(rt, user)
    auth = rt.server.ctx.auth
    assert rt.call(auth.authenticate(user, pw, "192.0.2.7")).account is not None
    assert rt.call(auth.authenticate(user, pw, "192.0.2.7", app_passwords=False)).account is None
    assert rt.call(auth.authenticate(user, PW, "192.0.2.7", app_passwords=False)).account is not None


def test_wrong_app_passwords_count_in_the_throttle(rt: ThreadedRuntime) -> None:
    user = _user(rt)
    pw = _app_password(rt, user)
    auth = rt.server.ctx.auth
    before = rt.call(auth.failures.counts("127.0.0.1", user))
    wrong = "aaaa-bbbb-cccc-dddd-eeee-ffff-gggg"  # an app password's shape, but no one's
    for _ in range(3):
        assert not imap_login(rt, user, wrong)
    after = rt.call(auth.failures.counts("127.0.0.1", user))
    assert after.user == before.user + 3 and after.ip >= before.ip + 3
    saved = auth.max_failures
    auth.max_failures = after.ip  # past the limit now: even the right app password is refused unchecked
    try:
        assert not imap_login(rt, user, pw)
        assert rt.call(auth.authenticate(user, pw, "127.0.0.1")).throttled
    finally:
        auth.max_failures = saved
    assert imap_login(rt, user, pw)  # and a success forgets the name's failures
    assert rt.call(auth.failures.counts("127.0.0.1", user)).user == 0


def test_disabled_account_refused_on_apop(rt: ThreadedRuntime) -> None:
    user = _user(rt)
    rt.call(rt.store.set_apop_secret(user, "apop secret"))

    def apop() -> bool:
        c = poplib.POP3_SSL("127.0.0.1", rt.ports["pop3s"], context=_tls(), timeout=30)
        try:
            c.apop(user, "apop secret")
            return True
        except poplib.error_proto:
            return False
        finally:
            c.quit()
    assert apop()
    rt.call(attributes.set_disabled(rt.store, user, True))
    assert not apop()
