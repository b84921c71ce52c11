"""The CLI contract: exact command forms, one-line errors, non-zero exits."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from postroom.cli import main
from postroom.config import check, load

from .serving import Serving, make_server_dir

PY = [sys.executable, "-m", "postroom.cli"]


def run(*args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*PY, *args], capture_output=True, text=True, input=input, timeout=60)


def one_line_error(p: subprocess.CompletedProcess[str]) -> None:
    assert p.returncode != 0
    assert "Traceback" not in p.stderr
    assert p.stderr.strip().count("\n") == 0 and p.stderr.startswith("postroom: "), p.stderr


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("cli") / "srv"
    assert main(["init", str(d), "--domain", "example.test", "--port-offset", "31000"]) == 0
    return d / "postroom.toml"


def test_init_layout_and_ports(srv: Path) -> None:
    cfg = load(srv)
    assert cfg.domains == ("example.test",)
    assert cfg.tls_cert.is_file() and (cfg.tls_key.stat().st_mode & 0o777) == 0o600
    ports = {lst.name: lst.port for lst in cfg.listeners}
    standard = {"smtp": 25, "submission": 587, "submissions": 465, "imap": 143, "imaps": 993, "pop3": 110,
                "pop3s": 995, "managesieve": 4190, "nntp": 119, "nntps": 563, "http": 80, "https": 443}
    for name, port in ports.items():
        assert port == standard[name] + 31000
    assert all(lst.host == "127.0.0.1" for lst in cfg.listeners)
    assert check(srv) == []
    p = run("init", str(srv.parent), "--domain", "example.test")
    one_line_error(p)  # refuses to overwrite


def test_user_domain_alias_commands(srv: Path) -> None:
    c = ["-c", str(srv)]
    assert run(*c, "user", "add", "alice@example.test", "--password", "pw1").returncode == 0
    assert run(*c, "user", "add", "bob@example.test", "--password-stdin", input="pw2\n").returncode == 0
    assert run(*c, "user", "list").stdout.split()[:2] == ["alice@example.test", "bob@example.test"]
    assert run(*c, "user", "passwd", "bob@example.test", "--password", "pw3").returncode == 0
    one_line_error(run(*c, "user", "add", "alice@example.test", "--password", "x"))
    from passlib.hash import sha512_crypt

    imported = "{SHA512-CRYPT}" + sha512_crypt.hash("old-pw")
    assert run(*c, "user", "add", "carol@example.test", "--password-hash", imported).returncode == 0
    one_line_error(run(*c, "user", "add", "dave@example.test", "--password-hash", "{MD5}abc"))
    one_line_error(run(*c, "user", "add", "x@other.test", "--password", "x"))
    one_line_error(run(*c, "user", "add", "not-an-address", "--password", "x"))
    one_line_error(run(*c, "user", "del", "nobody@example.test"))
    assert run(*c, "domain", "add", "other.test").returncode == 0
    assert run(*c, "domain", "list").stdout.split() == ["example.test", "other.test"]
    assert run(*c, "user", "add", "x@other.test", "--password", "x").returncode == 0
    one_line_error(run(*c, "domain", "del", "other.test"))  # still has accounts
    assert run(*c, "user", "del", "x@other.test").returncode == 0
    assert run(*c, "domain", "del", "other.test").returncode == 0
    assert run(*c, "alias", "add", "team@example.test", "alice@example.test", "friend@remote.test").returncode == 0
    assert run(*c, "alias", "add", "@example.test", "alice@example.test").returncode == 0
    out = run(*c, "alias", "list").stdout
    assert "team@example.test: alice@example.test, friend@remote.test" in out and "@example.test:" in out
    assert run(*c, "alias", "del", "team@example.test").returncode == 0
    one_line_error(run(*c, "alias", "add", "x@nowhere.test", "alice@example.test"))


def test_bad_arguments_and_config(tmp_path: Path, srv: Path) -> None:
    p = run("-c", str(srv), "user", "frobnicate")
    assert p.returncode == 2 and "Traceback" not in p.stderr
    one_line_error(run("-c", str(tmp_path / "missing.toml"), "user", "list"))
    bad = tmp_path / "bad.toml"
    bad.write_text('hostname = "ok"\nworkers = "two"\n[limits]\nmessage_size = "huge"\nbogus = 1\n'
                   '[listeners.smtp]\naddress = "127.0.0.1:99999"\n[listeners.weird]\naddress = "1.2.3:4"\n')
    p = run("-c", str(bad), "check")
    assert p.returncode == 2 and "Traceback" not in p.stderr
    lines = p.stderr.strip().splitlines()
    for key in ("workers", "limits.message_size", "limits.bogus", "listeners.smtp.address",
                "listeners.weird.protocol"):
        assert any(line.startswith(f"postroom: config: {key}:") for line in lines), (key, lines)
    bad.write_text("this is [not toml")
    one_line_error(run("-c", str(bad), "check"))


@pytest.mark.parametrize("workers", [1, 2])
def test_serve_sigterm_sighup(tmp_path: Path, workers: int) -> None:
    cfgp = make_server_dir(tmp_path / "s", workers)
    if not load(cfgp).listeners:
        pytest.skip("no protocol listeners in this build yet")
    srv = Serving(cfgp, workers)
    try:
        ports = srv.wait_listening()
        port = next(iter(ports.values()))
        socket.create_connection(("127.0.0.1", port), 5).close()
        srv.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 20
        while srv.log().count("configuration reloaded") < workers and time.monotonic() < deadline:
            time.sleep(0.1)
        assert srv.log().count("configuration reloaded") == workers
        socket.create_connection(("127.0.0.1", port), 5).close()  # still serving after the reload
        assert srv.proc.poll() is None
        srv.proc.send_signal(signal.SIGTERM)
        assert srv.proc.wait(timeout=40) == 0
    finally:
        srv.stop()
    assert "Traceback" not in srv.log()


def test_serve_refuses_bad_config(tmp_path: Path) -> None:
    bad = tmp_path / "postroom.toml"
    bad.write_text('[listeners.smtp]\naddress = "127.0.0.1:1"\n[tls]\ncert = "nope.pem"\n')
    p = run("-c", str(bad), "serve")
    assert p.returncode == 2 and "tls.cert" in p.stderr and "Traceback" not in p.stderr


def test_unusable_store_is_a_one_line_error(tmp_path: Path) -> None:
    """A store whose database is not SQLite (damaged, overwritten) or whose folders are
    files: every command, serve included, says which file in one line and exits 1."""
    d = tmp_path / "srv"
    assert main(["init", str(d), "--domain", "example.test", "--port-offset", "33000"]) == 0
    cfg = str(d / "postroom.toml")
    db = d / "data" / "store.db"
    for extra in ("-wal", "-shm"):
        Path(f"{db}{extra}").unlink(missing_ok=True)
    db.write_bytes(b"not a database, " * 1000)
    for args in (["user", "list"], ["user", "add", "x@example.test", "--password", "pw"], ["serve"]):
        p = run("-c", cfg, *args)
        one_line_error(p)
        assert p.returncode == 1 and str(db) in p.stderr and "not a database" in p.stderr, p.stderr
    db.unlink()
    seg = d / "data" / "segments"
    seg.rename(d / "data" / "old-segments")
    seg.write_text("a file where a folder belongs")
    p = run("-c", cfg, "user", "list")
    one_line_error(p)
    assert p.returncode == 1 and str(seg) in p.stderr


def test_sighup_with_a_mismatched_key_keeps_the_working_certificate(tmp_path: Path) -> None:
    """A renewal half done (the new certificate in place, the key still the old one) must
    not break TLS: SIGHUP refuses it and the old pair keeps serving; once the matching
    key is there, the next SIGHUP takes the new certificate."""
    import shutil
    import ssl

    from cryptography import x509
    from cryptography.x509.oid import NameOID

    from postroom.net.tls import write_self_signed

    cfgp = make_server_dir(tmp_path / "s")
    tls = tmp_path / "s" / "tls"
    srv = Serving(cfgp)

    def served_name(port: int) -> str:
        client = ssl.create_default_context()
        client.check_hostname, client.verify_mode = False, ssl.CERT_NONE
        with client.wrap_socket(socket.create_connection(("127.0.0.1", port), 5)) as s:
            der = s.getpeercert(binary_form=True)
        assert der is not None
        cn = x509.load_der_x509_certificate(der).subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        return str(cn[0].value)

    def sighup_until(text: str, count: int) -> None:
        srv.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 20
        while srv.log().count(text) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        assert srv.log().count(text) == count, srv.log()

    try:
        port = srv.wait_listening()["imaps"]
        first = served_name(port)
        write_self_signed(tmp_path / "new.pem", tmp_path / "new.key", "renewed.example.test")
        shutil.copy(tmp_path / "new.pem", tls / "cert.pem")
        sighup_until("reload failed", 1)
        assert served_name(port) == first  # before the fix: every handshake failed from here on
        shutil.copy(tmp_path / "new.key", tls / "key.pem")
        sighup_until("configuration reloaded", 1)
        assert served_name(port) == "renewed.example.test"
    finally:
        srv.stop()
    assert "Traceback" not in srv.log()


def test_user_quota(srv: Path) -> None:
    c = ["-c", str(srv)]
    assert run(*c, "user", "add", "quota@example.test", "--password", "pw").returncode == 0
    p = run(*c, "user", "quota", "quota@example.test")
    assert p.returncode == 0
    assert p.stdout == "quota@example.test: storage 0 of unlimited bytes, messages 0 of unlimited\n"
    p = run(*c, "user", "quota", "quota@example.test", "--storage", "10M")
    assert p.stdout == "quota@example.test: storage 0 of 10485760 bytes, messages 0 of unlimited\n"
    p = run(*c, "user", "quota", "quota@example.test", "--messages", "500")  # keeps the storage limit
    assert p.stdout == "quota@example.test: storage 0 of 10485760 bytes, messages 0 of 500\n"
    p = run(*c, "user", "quota", "quota@example.test", "--none")
    assert p.stdout == "quota@example.test: storage 0 of unlimited bytes, messages 0 of unlimited\n"
    for bad in (["--storage", "lots"], ["--messages", "-1"], ["--none", "--storage", "1M"]):
        p = run(*c, "user", "quota", "quota@example.test", *bad)
        one_line_error(p)
        assert p.returncode == 2
    p = run(*c, "user", "quota", "nobody@example.test")
    one_line_error(p)
    assert p.returncode == 1 and "no such account" in p.stderr
