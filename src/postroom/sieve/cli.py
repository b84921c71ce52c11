"""``postroom sieve …``: manage accounts' Sieve scripts from the shell, check script files.

The same rules as ManageSieve (RFC 5804): names per §1.6, at most ``[sieve] max_scripts``
scripts of at most ``max_script_size`` octets, scripts compiled before they are stored or
activated, the active script not deletable. Works on the store directly, so it needs no
running server; a running server sees the change at the next delivery.

Errors are one line on stderr: exit 2 for bad usage (a malformed address or name, an
unreadable file), 1 when the operation cannot be done (no such account or script, a
script that does not compile: ``FILE: line L, column C: message``).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from ..config import Config
from ..errors import ConfigError, PostroomError, UsageError
from ..storage.api import (
    InvalidSieveScriptName,
    SieveScriptActive,
    SieveScriptExists,
    SieveScriptNotFound,
    SieveScriptQuota,
    sieve_script_name_problem,
)
from .api import SieveError
from .settings import SieveSettings, compile_with, read_settings


class SieveCommandError(PostroomError):
    """A script operation that cannot be done (exit 1)."""


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("sieve", help="Sieve filter scripts: store, list, activate, check")
    ps = p.add_subparsers(dest="sieve_cmd", metavar="COMMAND", required=True)
    put = ps.add_parser("put", help="store (or replace) a script for an account, after checking it")
    put.add_argument("address")
    put.add_argument("name")
    put.add_argument("file", help="the script file ('-': standard input)")
    put.add_argument("--activate", action="store_true", help="also make it the account's active script")
    get = ps.add_parser("get", help="print a script")
    get.add_argument("address")
    get.add_argument("name")
    ps.add_parser("list", help="an account's scripts; '*' marks the active one").add_argument("address")
    act = ps.add_parser("activate", help="make a script the one that runs at delivery")
    act.add_argument("address")
    act.add_argument("name")
    ps.add_parser("deactivate", help="run no script for the account").add_argument("address")
    rm = ps.add_parser("del", help="delete a script (not the active one)")
    rm.add_argument("address")
    rm.add_argument("name")
    ps.add_parser("check", help="compile a script file and report its first error").add_argument(
        "file", help="the script file ('-': standard input)")
    # `sieve test` and `sieve testsuite` run scripts with no store and no config file
    # (postroom.sieve.offline): engine default limits, every mailbox taken to exist.
    tst = ps.add_parser("test", help="print the actions a script would take on a message, delivering nothing")
    tst.add_argument("script", help="the script file")
    tst.add_argument("message", help="the message file (RFC 5322; '-': standard input)")
    tst.add_argument("--from", dest="sender", default="", metavar="ADDR",
                     help="envelope sender (default: the null sender)")
    tst.add_argument("--to", dest="recipient", default="", metavar="ADDR",
                     help="envelope recipient (default: the message's first To: address, else user@localhost)")
    tst.set_defaults(run=_offline, needs_config=False)
    suite = ps.add_parser("testsuite", help="run vnd.dovecot.testsuite files (.svtest); exit 0 when all pass")
    suite.add_argument("files", nargs="+", metavar="FILE")
    suite.set_defaults(run=_offline, needs_config=False)
    p.set_defaults(run=run)


# -- helpers -------------------------------------------------------------------------


def _address(text: str) -> str:
    local, at, domain = text.strip().lower().rpartition("@")
    if not at or not local or not domain or " " in text:
        raise UsageError(f"{text!r} is not an address like user@example.org")
    return f"{local}@{domain}"


def _name(text: str) -> str:
    problem = sieve_script_name_problem(text)
    if problem:
        raise UsageError(f"{text!r}: {problem}")
    return text


def _read_script(path: str, settings: SieveSettings) -> str:
    """The file's text: at most ``max_script_size`` octets of UTF-8 (RFC 5228 §2.1)."""
    try:
        data = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
    except OSError as exc:
        raise UsageError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if len(data) > settings.max_script_size:
        raise SieveCommandError(f"{path}: {len(data)} octets, more than [sieve] max_script_size "
                                f"({settings.max_script_size})")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise SieveCommandError(f"{path}: line {line}: not valid UTF-8") from None


def _compile(label: str, text: str, settings: SieveSettings) -> None:
    try:
        compile_with(settings, text)
    except SieveError as exc:
        raise SieveCommandError(f"{label}: {exc}") from None


async def _account_id(store: Any, address: str) -> int:
    acct = await store.get_account(address)
    if acct is None:
        raise SieveCommandError(f"no such account: {address}")
    return int(acct.id)


# -- commands on the store -----------------------------------------------------------


async def _put(store: Any, settings: SieveSettings, args: argparse.Namespace) -> int:
    address, name = _address(args.address), _name(args.name)
    text = _read_script(args.file, settings)
    _compile(args.file, text, settings)
    aid = await _account_id(store, address)
    try:
        await store.put_sieve_script(aid, name, text, max_scripts=settings.max_scripts, activate=args.activate)
    except SieveScriptQuota:
        raise SieveCommandError(f"{address} already has {settings.max_scripts} scripts ([sieve] max_scripts); "
                                "delete one first") from None
    print(f"stored {name!r} for {address}" + (" (active)" if args.activate else ""))
    return 0


async def _get(store: Any, settings: SieveSettings, args: argparse.Namespace) -> int:
    address, name = _address(args.address), _name(args.name)
    text = await store.get_sieve_script(await _account_id(store, address), name)
    if text is None:
        raise SieveCommandError(f"{address} has no script {name!r}")
    sys.stdout.write(text)
    return 0


async def _list(store: Any, settings: SieveSettings, args: argparse.Namespace) -> int:
    address = _address(args.address)
    scripts = await store.list_sieve_scripts(await _account_id(store, address))
    if not scripts:
        print(f"{address} has no scripts (store one: postroom sieve put {address} NAME FILE)")
    for info in scripts:
        print(f"{'*' if info.active else ' '} {info.name}")
    return 0


async def _activate(store: Any, settings: SieveSettings, args: argparse.Namespace) -> int:
    address, name = _address(args.address), _name(args.name)
    aid = await _account_id(store, address)
    text = await store.get_sieve_script(aid, name)
    if text is None:
        raise SieveCommandError(f"{address} has no script {name!r}")
    _compile(name, text, settings)  # stored under older limits, it might not compile any more
    await store.set_active_sieve_script(aid, name)
    print(f"{name!r} is now the active script of {address}")
    return 0


async def _deactivate(store: Any, settings: SieveSettings, args: argparse.Namespace) -> int:
    address = _address(args.address)
    await store.set_active_sieve_script(await _account_id(store, address), None)
    print(f"{address} has no active script now")
    return 0


async def _delete(store: Any, settings: SieveSettings, args: argparse.Namespace) -> int:
    address, name = _address(args.address), _name(args.name)
    try:
        await store.delete_sieve_script(await _account_id(store, address), name)
    except SieveScriptActive:
        raise SieveCommandError(f"{name!r} is the active script of {address}; "
                                f"deactivate it first (postroom sieve deactivate {address})") from None
    print(f"deleted {name!r} of {address}")
    return 0


_COMMANDS = {"put": _put, "get": _get, "list": _list, "activate": _activate, "deactivate": _deactivate,
             "del": _delete}


# -- commands on files ---------------------------------------------------------------


def _check(settings: SieveSettings, args: argparse.Namespace) -> int:
    text = _read_script(args.file, settings)
    _compile(args.file, text, settings)
    print(f"{args.file}: OK")
    return 0


_FILE_COMMANDS = {"check": _check}


def _offline(args: argparse.Namespace) -> int:
    from .offline_cli import run_test, run_testsuite

    return run_test(args) if args.sieve_cmd == "test" else run_testsuite(args)


def run(cfg: Config, args: argparse.Namespace) -> int:
    problems: list[str] = []
    settings = read_settings(cfg, problems)
    if problems:
        raise ConfigError(problems)
    if args.sieve_cmd in _FILE_COMMANDS:
        return _FILE_COMMANDS[args.sieve_cmd](settings, args)
    return asyncio.run(_with_store(cfg, settings, args))


async def _with_store(cfg: Config, settings: SieveSettings, args: argparse.Namespace) -> int:
    from ..storage import open_store

    store = open_store(cfg)
    await store.open()
    try:
        return await _COMMANDS[args.sieve_cmd](store, settings, args)
    except SieveScriptNotFound as exc:
        raise SieveCommandError(f"{_address(args.address)} has no script {str(exc)!r}") from None
    except (SieveScriptExists, InvalidSieveScriptName) as exc:
        raise SieveCommandError(str(exc)) from None
    finally:
        await store.close()
