"""``postroom user set`` and ``postroom user app-password``: the admin flags and app
passwords from the command line, for admins without the web (cli.py registers them).

Functions: ``add_parsers(user_subparsers, run)``, ``flags_of(account)`` (what ``user
list`` prints after an address), ``run(store, args)`` (``user set``, ``user
app-password``).
"""

from __future__ import annotations

import argparse
import datetime
from collections.abc import Callable
from typing import Any

from ..errors import AccountNotFound, UsageError
from ..storage.api import UNSET, Store
from ..storage.models import Account
from . import app_passwords, attributes


def add_parsers(u: Any, run: Callable[..., int], parser_class: type[argparse.ArgumentParser]) -> None:
    """Add ``set`` and ``app-password`` to the ``user`` subparsers (``u``), each running ``run``."""
    s = u.add_parser("set", help="change an account's flags")
    s.add_argument("address")
    g = s.add_mutually_exclusive_group()
    g.add_argument("--admin", dest="admin", action="store_true", default=None,
                   help="may use the web administration and API tokens")
    g.add_argument("--no-admin", dest="admin", action="store_false")
    g = s.add_mutually_exclusive_group()
    g.add_argument("--disable", dest="disabled", action="store_true", default=None,
                   help="refuse every login (mail is still delivered)")
    g.add_argument("--enable", dest="disabled", action="store_false")
    s.add_argument("--logout", action="store_true", help="end every web session of the account")
    s.add_argument("--clear-totp", action="store_true",
                   help="turn the web's two-factor login off (a lost phone); ends its web sessions")
    s.set_defaults(run=run)
    ap = u.add_parser("app-password", help="per-device passwords for mail clients").add_subparsers(
        dest="app_action", required=True, parser_class=parser_class)
    a = ap.add_parser("add", help="make one (printed once) named NAME, e.g. the device")
    a.add_argument("address")
    a.add_argument("name")
    a = ap.add_parser("list", help="names, when made and last used")
    a.add_argument("address")
    a = ap.add_parser("revoke", help="refuse it from now on")
    a.add_argument("address")
    a.add_argument("name")
    for parser in ap.choices.values():
        parser.set_defaults(run=run)


def flags_of(account: Account) -> str:
    return " ".join(f for f, on in (("admin", account.admin), ("disabled", account.disabled)) if on)


def _when(t: float | None) -> str:
    if t is None:
        return "never"
    return datetime.datetime.fromtimestamp(t, datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")


async def run(store: Store, address: str, args: argparse.Namespace) -> int:
    if args.action == "set":
        if args.admin is None and args.disabled is None and not args.logout and not args.clear_totp:
            raise UsageError("user set takes --admin/--no-admin, --disable/--enable, --logout or --clear-totp")
        account = await store.set_account_attributes(
            address, admin=args.admin, disabled=args.disabled, totp_secret=None if args.clear_totp else UNSET,
            bump_epoch=bool(args.logout or args.disabled or args.admin is False or args.clear_totp))
        print(f"{account.address}: {flags_of(account) or 'user'}")
        return 0
    account_or_none = await attributes.get(store, address)
    if account_or_none is None:
        raise AccountNotFound(address)
    account = account_or_none
    if args.app_action == "add":
        try:
            cred, password = await app_passwords.create(store, account, args.name)
        except ValueError as exc:
            raise UsageError(f"app password name: {exc}") from None
        print(f"app password {cred.name!r} for {account.address} (shown once; use it instead of the "
              f"account password in that device's mail settings):")
        print(password)
    elif args.app_action == "list":
        for cred in await app_passwords.list_for(store, account):
            print(f"{cred.name}\tcreated {_when(cred.created)}\tlast used {_when(cred.last_used)}")
    elif args.app_action == "revoke":
        if not await app_passwords.revoke(store, account, args.name):
            raise UsageError(f"{account.address} has no app password named {args.name!r}")
        print(f"revoked app password {args.name.strip()!r} of {account.address}")
    return 0
