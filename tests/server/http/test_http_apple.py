"""Apple configuration profile over real HTTPS: a property list ``plistlib`` reads, with
the best TLS incoming and outgoing servers of the config."""

from __future__ import annotations

import plistlib

import pytest
from http_harness import DOMAIN, HOSTNAME, Harness


def test_profile_parses_and_names_the_servers(srv: Harness) -> None:
    status, headers, body = srv.get(f"/apple/profile?email=joe@{DOMAIN}", DOMAIN, tls=True)
    assert status == 200
    assert headers["content-type"].startswith("application/x-apple-aspen-config")
    assert headers["content-disposition"] == f'attachment; filename="{DOMAIN}.mobileconfig"'
    profile = plistlib.loads(body)
    assert profile["PayloadType"] == "Configuration" and profile["PayloadVersion"] == 1
    (mail,) = profile["PayloadContent"]
    assert mail["PayloadType"] == "com.apple.mail.managed"
    assert mail["EmailAccountType"] == "EmailTypeIMAP"
    assert mail["EmailAddress"] == f"joe@{DOMAIN}"
    assert (mail["IncomingMailServerHostName"], mail["IncomingMailServerPortNumber"]) == (HOSTNAME, srv.ports["imaps"])
    assert (mail["OutgoingMailServerHostName"], mail["OutgoingMailServerPortNumber"]) == (
        HOSTNAME, srv.ports["submissions"])
    assert mail["IncomingMailServerUseSSL"] is True and mail["OutgoingMailServerUseSSL"] is True
    assert mail["IncomingMailServerUsername"] == mail["OutgoingMailServerUsername"] == f"joe@{DOMAIN}"
    for p in (profile, mail):
        assert p["PayloadIdentifier"] and len(p["PayloadUUID"]) == 36


def test_same_address_same_identifiers(srv: Harness) -> None:
    """Installing the profile again replaces the account instead of adding a second one."""
    a = plistlib.loads(srv.get(f"/apple/profile?email=joe@{DOMAIN}", DOMAIN, tls=True)[2])
    b = plistlib.loads(srv.get(f"/apple/profile?email=joe@{DOMAIN}", DOMAIN, tls=True)[2])
    c = plistlib.loads(srv.get(f"/apple/profile?email=ann@{DOMAIN}", DOMAIN, tls=True)[2])
    assert a["PayloadUUID"] == b["PayloadUUID"] != c["PayloadUUID"]
    assert a["PayloadIdentifier"] == b["PayloadIdentifier"] != c["PayloadIdentifier"]


@pytest.mark.parametrize("query,status", [("", 400), ("?email=", 400), ("?email=nobody", 400),
                                          ("?email=joe@other.test", 404)])
def test_bad_requests(srv: Harness, query: str, status: int) -> None:
    got, headers, body = srv.get(f"/apple/profile{query}", DOMAIN, tls=True)
    assert got == status and headers["content-type"].startswith("text/plain") and b"Traceback" not in body


def test_signed_profile(tmp_path_factory: pytest.TempPathFactory) -> None:
    """``sign_profiles = true``: CMS SignedData by the server's certificate, which openssl verifies
    against that certificate and unwraps to the very plist."""
    import shutil
    import subprocess
    from contextlib import closing

    from http_harness import write_http_config

    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed")
    d = tmp_path_factory.mktemp("httpsigned")
    with closing(Harness(write_http_config(d, http='sign_profiles = true\n'))) as h:
        status, headers, body = h.get(f"/apple/profile?email=joe@{DOMAIN}", DOMAIN, tls=True)
    assert status == 200 and headers["content-type"].startswith("application/x-apple-aspen-config")
    (d / "signed.der").write_bytes(body)
    p = subprocess.run(["openssl", "cms", "-verify", "-inform", "DER", "-in", str(d / "signed.der"),
                        "-CAfile", str(d / "cert.pem"), "-purpose", "any", "-binary"],
                       capture_output=True, timeout=30, check=False)
    assert p.returncode == 0, p.stderr.decode()
    profile = plistlib.loads(p.stdout)
    assert profile["PayloadContent"][0]["IncomingMailServerPortNumber"] == h.ports["imaps"]
