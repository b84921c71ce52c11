"""``postroom check`` on the ``[kerberos]`` section: an unreadable keytab, a keytab without a
configured service's key (named in the message), bad principals and unknown protocols are
reported, one line each; a good section passes. And the module's principal mapping rules."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import kdc
import pytest
from krb_harness import DOMAIN, HOST

from postroom.auth.kerberos import KerberosSettings

sys.path.append(str(Path(__file__).resolve().parents[3] / "bench"))
from postroom_peer import write_config


def check(krb: Any, root: Path, kerberos: str) -> subprocess.CompletedProcess[str]:
    root.mkdir()
    cfg = write_config(root, kerberos, hostname="mail.example.test")
    env = {**os.environ, **krb.realm.environ()}
    return subprocess.run([sys.executable, "-m", "postroom.cli", "-c", str(cfg), "check"],
                          check=False, capture_output=True, text=True, timeout=60, env=env)


def test_check_accepts_the_harness_keytab(krb: Any, tmp_path: Path) -> None:
    p = check(krb, tmp_path / "ok", f'[kerberos]\nkeytab = "{krb.keytab}"\n[kerberos.services]\n'
                                    f'imap = "{krb.principals["imap"]}"\npop3 = "{krb.principals["pop3"]}"\n')
    assert p.returncode == 0, p.stderr


def test_check_reports_unreadable_keytab(krb: Any, tmp_path: Path) -> None:
    p = check(krb, tmp_path / "missing", f'[kerberos]\nkeytab = "{tmp_path}/nope.keytab"\n'
                                         f'[kerberos.services]\nimap = "{krb.principals["imap"]}"\n')
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert f"postroom: config: kerberos.keytab: cannot read {tmp_path}/nope.keytab: No such file or directory" \
        in p.stderr, p.stderr


def test_check_names_the_missing_principal(krb: Any, tmp_path: Path) -> None:
    absent = f"imap/elsewhere.example.test@{kdc.REALM}"
    p = check(krb, tmp_path / "absent", f'[kerberos]\nkeytab = "{krb.keytab}"\n[kerberos.services]\n'
                                        f'imap = "{absent}"\npop3 = "{krb.principals["pop3"]}"\n')
    assert p.returncode == 2 and "Traceback" not in p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        f"postroom: config: kerberos.services.imap: {krb.keytab} has no key for {absent}"), lines


def test_check_reports_bad_section(krb: Any, tmp_path: Path) -> None:
    p = check(krb, tmp_path / "bad", '[kerberos]\nkeytbl = "x"\n[kerberos.services]\n'
                                     'gopher = "gopher/h@R"\nimap = "no-realm"\n')
    assert p.returncode == 2 and "Traceback" not in p.stderr
    for text in ("kerberos.keytbl: unknown key", "kerberos.services.gopher: unknown protocol",
                 "kerberos.services.imap: 'no-realm' is not a principal", "kerberos.keytab: is needed"):
        assert text in p.stderr, (text, p.stderr)


def test_principal_mapping_rules() -> None:
    s = KerberosSettings(keytab=Path("/k"), services={"imap": f"imap/{HOST}@R"},
                         realms={"R.TEST": DOMAIN, "OTHER.TEST": "other.test"},
                         principals={"jdoe@R.TEST": "John.Doe@example.test", "svc/admin@R.TEST": "ops@example.test"})
    assert s.account_for("Alice@R.TEST") == f"alice@{DOMAIN}"
    assert s.account_for("bob@OTHER.TEST") == "bob@other.test"
    assert s.account_for("jdoe@R.TEST") == "john.doe@example.test"  # the exception wins
    assert s.account_for("svc/admin@R.TEST") == "ops@example.test"
    assert s.account_for("carol/admin@R.TEST") is None  # an instance maps only by exception
    assert s.account_for("eve@UNKNOWN.TEST") is None
    assert s.account_for("@R.TEST") is None and s.account_for("noatsign") is None


def test_mechanism_without_credentials_fails_at_the_first_token() -> None:
    """The keytab vanished after start: the exchange still runs and fails like a bad ticket."""
    from postroom.wire import sasl
    from postroom.wire.gssapi import Gssapi

    mech = Gssapi(None)
    assert mech.step(None) == sasl.Challenge(b"")  # RFC 4752: the client sends the first token
    result = mech.step(b"\x60\x01x")
    assert isinstance(result, sasl.Failed) and "no acceptor credentials" in result.reason


def test_mechanism_refuses_oversized_and_empty_tokens(krb: Any) -> None:
    from postroom.auth.kerberos import _acquire
    from postroom.wire import sasl
    from postroom.wire.gssapi import MAX_TOKEN, Gssapi

    creds = _acquire(krb.keytab, krb.principals["imap"])
    assert isinstance(Gssapi(creds).step(b"\0" * (MAX_TOKEN + 1)), sasl.Failed)
    assert isinstance(Gssapi(creds).step(b""), sasl.Failed)
    mech = Gssapi(creds)
    assert isinstance(mech.step(b"\x60\x80garbage"), sasl.Failed)
    with pytest.raises(RuntimeError):  # a finished mechanism must not be stepped again, as PLAIN's
        mech.step(b"more")
