"""``postroom user add --admin``, ``user set``, ``user list`` flags and ``user app-password``
(postroom/accounts/cli.py), run in-process against a store made by ``postroom init``."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from postroom.accounts import attributes
from postroom.accounts.credentials import normalize_app_password
from postroom.cli import main
from postroom.config import load
from postroom.storage import open_store


@pytest.fixture(scope="module")
def cfg(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("acli") / "srv"
    assert main(["init", str(d), "--domain", "example.test"]) == 0
    return d / "postroom.toml"


def cli(cfg: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["-c", str(cfg), *args])
    out, err = capsys.readouterr()
    return code, out, err


def account(cfg: Path, address: str):
    async def get():
        store = open_store(load(cfg))
        await store.open()
        try:
            acct = await store.get_account(address)
            creds = await store.list_credentials(acct.id, "app") if acct else []
            return acct, creds
        finally:
            await store.close()
    return asyncio.run(get())


async def _set_totp(cfg: Path, address: str) -> None:
    store = open_store(load(cfg))
    await store.open()
    try:
        await attributes.set_totp_secret(store, address, "JBSWY3DPEHPK3PXP")
    finally:
        await store.close()


def refused(result: tuple[int, str, str]) -> str:
    code, _, err = result
    assert code != 0 and "Traceback" not in err
    assert err.strip().count("\n") == 0 and err.startswith("postroom: "), err
    return err


def test_admin_and_disabled_flags(cfg: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(cfg, capsys, "user", "add", "root@example.test", "--password", "pw", "--admin")[0] == 0
    assert cli(cfg, capsys, "user", "add", "joe@example.test", "--password", "pw")[0] == 0
    code, out, _ = cli(cfg, capsys, "user", "list")
    assert code == 0 and out.splitlines() == ["joe@example.test", "root@example.test admin"]
    acct, _ = account(cfg, "root@example.test")
    assert acct.admin and not acct.disabled
    code, out, _ = cli(cfg, capsys, "user", "set", "joe@example.test", "--disable")
    assert code == 0 and "disabled" in out
    acct, _ = account(cfg, "joe@example.test")
    assert acct.disabled and acct.session_epoch == 1
    assert cli(cfg, capsys, "user", "set", "joe@example.test", "--admin", "--enable")[0] == 0
    assert cli(cfg, capsys, "user", "list")[1].splitlines()[0] == "joe@example.test admin"
    assert cli(cfg, capsys, "user", "set", "joe@example.test", "--no-admin")[0] == 0
    assert cli(cfg, capsys, "user", "set", "joe@example.test", "--logout")[0] == 0
    assert cli(cfg, capsys, "user", "passwd", "joe@example.test", "--password", "new")[0] == 0
    acct, _ = account(cfg, "joe@example.test")
    assert not acct.admin and not acct.disabled and acct.session_epoch == 4  # disable, no-admin, logout, passwd
    refused(cli(cfg, capsys, "user", "set", "joe@example.test"))  # nothing to change
    asyncio.run(_set_totp(cfg, "joe@example.test"))
    assert account(cfg, "joe@example.test")[0].totp_secret == "JBSWY3DPEHPK3PXP"
    assert cli(cfg, capsys, "user", "set", "joe@example.test", "--clear-totp")[0] == 0
    acct, _ = account(cfg, "joe@example.test")
    assert acct.totp_secret is None and acct.session_epoch == 5 and not acct.disabled
    refused(cli(cfg, capsys, "user", "set", "nobody@example.test", "--admin"))
    with pytest.raises(SystemExit):  # argparse: the two are exclusive
        cli(cfg, capsys, "user", "set", "joe@example.test", "--admin", "--no-admin")


def test_app_password_commands(cfg: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(cfg, capsys, "user", "add", "ann@example.test", "--password", "pw")[0] == 0
    code, out, _ = cli(cfg, capsys, "user", "app-password", "add", "ann@example.test", "Ann's phone")
    assert code == 0
    password = out.splitlines()[-1]
    raw = normalize_app_password(password)
    assert raw is not None
    _, creds = account(cfg, "ann@example.test")
    assert [c.name for c in creds] == ["Ann's phone"]
    refused(cli(cfg, capsys, "user", "app-password", "add", "ann@example.test", "Ann's phone"))  # exists
    refused(cli(cfg, capsys, "user", "app-password", "add", "ann@example.test", " "))
    refused(cli(cfg, capsys, "user", "app-password", "add", "nobody@example.test", "x"))
    code, out, _ = cli(cfg, capsys, "user", "app-password", "list", "ann@example.test")
    assert code == 0 and out.startswith("Ann's phone\tcreated ") and "last used never" in out
    assert password not in out and raw not in out
    code, out, _ = cli(cfg, capsys, "user", "app-password", "revoke", "ann@example.test", "Ann's phone")
    assert code == 0 and "revoked" in out
    assert account(cfg, "ann@example.test")[1] == []
    refused(cli(cfg, capsys, "user", "app-password", "revoke", "ann@example.test", "Ann's phone"))
