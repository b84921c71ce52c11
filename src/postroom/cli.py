"""The ``postroom`` command: init, check, serve, and the admin commands.

Every failure an admin can cause (bad config, bad arguments, a missing user, a
broken import file) ends in one clear line on stderr and a non-zero exit status,
never a traceback. Exit codes: 0 success, 1 the operation failed, 2 bad usage or
configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sqlite3
import sys
from pathlib import Path
from typing import Any, Awaitable, Callable, NoReturn

from . import __version__, protocols
from .config import STANDARD_LISTENERS, Config, ConfigError, load
from .errors import PostroomError, UsageError

DEFAULT_CONFIG = os.environ.get("POSTROOM_CONFIG", "/etc/postroom/postroom.toml")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"postroom: {message} (see '{self.prog} --help')\n")


def _store_cmd(fn: Callable[..., Awaitable[int | None]]) -> Callable[[Config, argparse.Namespace], int]:
    """Run an async admin command with the configured store opened around it."""

    def run(cfg: Config, args: argparse.Namespace) -> int:
        from .storage import open_store

        async def main() -> int:
            store = open_store(cfg)
            await store.open()
            try:
                for d in cfg.domains:
                    if not await store.has_domain(d):
                        await store.add_domain(d)
                return (await fn(store, cfg, args)) or 0
            finally:
                await store.close()

        return asyncio.run(main())

    return run


def _password(args: argparse.Namespace) -> str:
    if getattr(args, "password_stdin", False):
        pw = sys.stdin.readline().rstrip("\r\n")
    elif getattr(args, "password", None) is not None:
        pw = args.password
    elif sys.stdin.isatty():
        pw = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != pw:
            raise UsageError("passwords do not match")
    else:
        raise UsageError("give --password PW or --password-stdin")
    if not pw:
        raise UsageError("the password must not be empty")
    return pw


def _check_address(address: str) -> str:
    local, at, domain = address.strip().lower().rpartition("@")
    if not at or not local or not domain or " " in address or "." not in domain and domain != "localhost":
        raise UsageError(f"{address!r} is not an address like user@example.org")
    return f"{local}@{domain}"


async def _new_hash(args: argparse.Namespace) -> str:
    """argon2id of the given password, or a hash imported as-is (``--password-hash``)."""
    from .auth.passwords import hash_password, scheme_of

    imported = getattr(args, "password_hash", None)
    if imported:
        if scheme_of(imported) not in ("ARGON2ID", "SHA512-CRYPT", "SHA256-CRYPT", "BLF-CRYPT"):
            raise UsageError("--password-hash takes a Dovecot-style {ARGON2ID}, {SHA512-CRYPT}, "
                             "{SHA256-CRYPT} or {BLF-CRYPT} hash")
        return imported
    return await asyncio.to_thread(hash_password, _password(args))


# -- user / domain / alias --------------------------------------------------------
@_store_cmd
async def cmd_user(store: Any, cfg: Config, args: argparse.Namespace) -> int:
    if args.action == "list":
        from .accounts.cli import flags_of
        from .news.account import is_reserved

        for acct in await store.list_accounts():
            if not is_reserved(acct.address):  # the newsgroups' internal account
                print(f"{acct.address} {flags_of(acct)}".rstrip())
        return 0
    address = _check_address(args.address)
    if args.action in ("set", "app-password"):
        from .accounts import cli as accounts_cli

        return await accounts_cli.run(store, address, args)
    if args.action == "add":
        domain = address.rpartition("@")[2]
        if not await store.has_domain(domain):
            raise UsageError(f"domain {domain} is not served here; add it first: postroom domain add {domain}")
        await store.create_account(address, await _new_hash(args))
        if args.admin:
            await store.set_account_attributes(address, admin=True)
        print(f"added {address}{' (admin)' if args.admin else ''}")
    elif args.action == "del":
        await store.delete_account(address)
        print(f"deleted {address} and all its mail")
    elif args.action == "passwd":
        await store.set_password_hash(address, await _new_hash(args))
        await store.set_account_attributes(address, bump_epoch=True)  # ends its web sessions
        print(f"password changed for {address}")
    elif args.action == "apop":
        await store.set_apop_secret(address, None if args.clear else _password(args))
        print(f"APOP secret {'cleared' if args.clear else 'set'} for {address}")
    elif args.action == "quota":
        return await _quota(store, address, args)
    return 0


def _quota_size(value: str) -> int:
    from .config import parse_size

    try:
        return parse_size(value.strip())
    except ValueError:
        raise UsageError(f"--storage takes a size such as 500M, 2G or 1048576, not {value!r}") from None


async def _quota(store: Any, address: str, args: argparse.Namespace) -> int:
    """``user quota ADDRESS``: show limits and usage; with options, set them first."""
    from .errors import AccountNotFound

    acct = await store.get_account(address)
    if acct is None:
        raise AccountNotFound(address)
    if args.none and (args.storage is not None or args.messages is not None):
        raise UsageError("--none cannot be combined with --storage or --messages")
    if args.messages is not None and args.messages < 0:
        raise UsageError("--messages takes a number of messages (0 or more)")
    if args.none or args.storage is not None or args.messages is not None:
        old = await store.get_quota(acct.id)
        storage = None if args.none else (_quota_size(args.storage) if args.storage is not None
                                          else old.storage_limit)
        messages = None if args.none else (args.messages if args.messages is not None else old.message_limit)
        await store.set_quota(address, storage, messages)
    q = await store.get_quota(acct.id, with_usage=True)

    def limit(v: int | None) -> str:
        return "unlimited" if v is None else str(v)

    print(f"{address}: storage {q.storage_used} of {limit(q.storage_limit)} bytes, "
          f"messages {q.messages_used} of {limit(q.message_limit)}")
    return 0


@_store_cmd
async def cmd_domain(store: Any, cfg: Config, args: argparse.Namespace) -> int:
    if args.action == "list":
        for d in sorted(set(await store.list_domains()) | set(cfg.domains)):
            print(d)
        return 0
    domain = args.domain.strip().lower().rstrip(".")
    if not domain or "@" in domain or " " in domain:
        raise UsageError(f"{args.domain!r} is not a domain name")
    if args.action == "add":
        await store.add_domain(domain)
        print(f"added {domain}")
    else:
        if domain in cfg.domains:
            raise UsageError(f"{domain} is listed in {cfg.path} (domains = …); remove it there")
        if any(a.address.endswith("@" + domain) for a in await store.list_accounts()):
            raise UsageError(f"{domain} still has accounts; delete them first")
        await store.delete_domain(domain)
        print(f"deleted {domain}")
    return 0


@_store_cmd
async def cmd_alias(store: Any, cfg: Config, args: argparse.Namespace) -> int:
    if args.action == "list":
        for alias in await store.list_aliases():
            print(f"{alias.source}: {', '.join(alias.targets)}")
        return 0
    source = args.source.strip().lower()
    if source.startswith("@"):
        domain = source[1:]
    else:
        domain = _check_address(source).rpartition("@")[2]
    if args.action == "add":
        if not await store.has_domain(domain):
            raise UsageError(f"domain {domain} is not served here")
        targets = [_check_address(t) for t in args.targets]
        await store.set_alias(source, targets)
        print(f"{source} → {', '.join(targets)}")
    else:
        await store.delete_alias(source)
        print(f"deleted alias {source}")
    return 0


# -- group (NNTP newsgroups, postroom.news) ----------------------------------------
@_store_cmd
async def cmd_group(store: Any, cfg: Config, args: argparse.Namespace) -> int:
    from .news.records import group_name_problem
    from .news.service import News, NewsSettings

    if args.action != "list" and group_name_problem(args.name):
        raise UsageError(group_name_problem(args.name) or "")
    if getattr(args, "retention", None) is not None and args.retention < 1:
        raise UsageError("--retention takes a number of days (1 or more)")
    lst = getattr(args, "list", None)
    if lst:
        lst = _check_address(lst)
    news = await News.for_store(store, NewsSettings(cfg.hostname))
    try:
        if args.action == "list":
            for g in await news.list_groups():
                extra = f" retention={g.retention}d" if g.retention else ""
                extra += f" list={g.list_address}" if g.list_address else ""
                print(f"{g.name} {g.posting} read={g.read} post={g.post}{extra}"
                      f"{' ' + g.description if g.description else ''}")
        elif args.action == "add":
            await news.add_group(args.name, posting=args.posting or "y", description=args.description or "",
                                 read=args.read or "accounts", post=args.post or "accounts",
                                 retention=args.retention, list_address=lst)
            print(f"added group {args.name}")
        elif args.action == "set":
            await news.set_group(args.name, posting=args.posting, description=args.description, read=args.read,
                                 post=args.post, retention=args.retention, clear_retention=args.no_retention,
                                 list_address=lst, clear_list=args.no_list)
            print(f"changed group {args.name}")
        else:
            await news.delete_group(args.name)
            print(f"deleted group {args.name} and its articles")
    finally:
        await news.close()
    return 0


@_store_cmd
async def cmd_import(store: Any, cfg: Config, args: argparse.Namespace) -> int:
    from .importexport import import_mail

    n = await import_mail(store, _check_address(args.address), args.format, Path(args.path), args.mailbox)
    print(f"imported {n} messages")
    return 0


@_store_cmd
async def cmd_export(store: Any, cfg: Config, args: argparse.Namespace) -> int:
    from .importexport import export_mail

    damaged: list[str] = []
    n = await export_mail(store, _check_address(args.address), args.format, Path(args.dir), damaged)
    print(f"exported {n} messages")
    return _report_damaged(damaged, "not exported")


@_store_cmd
async def cmd_backup(store: Any, cfg: Config, args: argparse.Namespace) -> int:
    dest = Path(args.dest).resolve()
    data = Path(cfg.data_dir).resolve()
    if dest == data or data in dest.parents:
        raise UsageError(f"backup: {args.dest} is inside the data directory {cfg.data_dir}")
    if dest.exists() and not dest.is_dir():
        raise UsageError(f"backup: {args.dest} is not a directory")
    r = await store.backup(dest)
    print(f"backed up {r.messages} messages to {dest}: {r.segments} segment files, {r.copied} bytes copied"
          + (f", {r.removed} purged segment files removed" if r.removed else ""))
    return 0


@_store_cmd
async def cmd_verify(store: Any, cfg: Config, args: argparse.Namespace) -> int:
    from .verify import verify_store

    report = await verify_store(store)
    groups = f" ({report.articles} in newsgroups)" if report.articles else ""
    print(f"verified {report.messages} messages{groups} of {report.accounts} accounts: "
          f"{len(report.damaged) or 'none'} damaged")
    return _report_damaged(report.damaged, "damaged")


def _report_damaged(damaged: list[str], what: str) -> int:
    """One stderr line per message whose bytes cannot be read back; exit 1 if any."""
    for line in damaged:
        print(f"postroom: {what}: {line}", file=sys.stderr)
    return 1 if damaged else 0


@_store_cmd
async def cmd_purge(store: Any, cfg: Config, args: argparse.Namespace) -> int:
    removed, freed = await store.purge()
    # SQLite removes segment files; PostgreSQL deletes unreferenced message bodies.
    what = "unused message bodies" if cfg.backend == "postgresql" else "segment file(s)"
    print(f"removed {removed} {what}, freed {freed} bytes")
    return 0


def cmd_migrate(cfg: Config, args: argparse.Namespace) -> int:
    """Bring the store's schema up to date (as every start does) and print the versions."""
    from .storage import migrate

    for component, version in asyncio.run(migrate(cfg)):
        print(f"{component}: schema version {version}")
    return 0


def cmd_migrate_store(cfg: Config, args: argparse.Namespace) -> int:
    """Copy this (SQLite) installation into an empty PostgreSQL database and verify it."""
    from .config import PgSettings, parse_pg_url
    from .migrate_store import migrate_store

    why = parse_pg_url(args.to)
    if why is not None:
        raise UsageError(f"--to {args.to}: {why}")
    pg = PgSettings(url=args.to, password_file=Path(args.password_file).resolve() if args.password_file else None,
                    password_env=args.password_env)
    return asyncio.run(migrate_store(cfg, pg, force=args.force, progress=not args.no_progress))


# -- init / check / serve ---------------------------------------------------------
def cmd_init(args: argparse.Namespace) -> int:
    from .init import init

    init(Path(args.dir), args.domain, args.port_offset, args.hostname, args.listen, force=args.force)
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from .config import check

    problems = check(args.config)
    for p in problems:
        print(f"postroom: config: {p}", file=sys.stderr)
    if problems:
        return 2
    from .config import load
    from .resolver import deprecations

    for w in deprecations(load(args.config)):
        print(f"postroom: config: warning: {w}", file=sys.stderr)
    print(f"{args.config}: OK")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from .config import check
    from .server import serve

    problems = check(args.config)
    if problems:
        for p in problems:
            print(f"postroom: config: {p}", file=sys.stderr)
        return 2
    return serve(args.config)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="postroom", description="Postroom mail server")
    p.add_argument("-c", "--config", default=DEFAULT_CONFIG, help="config file (default: %(default)s)")
    p.add_argument("--version", action="version", version=f"postroom {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    s = sub.add_parser("init", help="create a config, store and self-signed certificate in DIR")
    s.add_argument("dir")
    s.add_argument("--domain", required=True)
    s.add_argument("--port-offset", type=int, default=0)
    s.add_argument("--hostname", default=None, help="server host name (default: mail.DOMAIN)")
    s.add_argument("--listen", default="127.0.0.1", help="IP address for every listener")
    s.add_argument("--force", action="store_true", help="overwrite an existing config")
    s.set_defaults(run=cmd_init, needs_config=False)

    sub.add_parser("check", help="validate the config").set_defaults(run=cmd_check, needs_config=False)
    sub.add_parser("serve", help="run every listener until SIGTERM").set_defaults(run=cmd_serve, needs_config=False)

    u = sub.add_parser("user", help="accounts").add_subparsers(dest="action", required=True, parser_class=_Parser)
    for action in ("add", "passwd"):
        a = u.add_parser(action)
        a.add_argument("address")
        g = a.add_mutually_exclusive_group()
        g.add_argument("--password")
        g.add_argument("--password-stdin", action="store_true")
        g.add_argument("--password-hash", metavar="HASH",
                       help="import a hash from another server, e.g. {SHA512-CRYPT}$6$… (upgraded at first login)")
    u.choices["add"].add_argument("--admin", action="store_true", help="may use the web administration")
    u.add_parser("list")
    u.add_parser("del").add_argument("address")
    a = u.add_parser("apop", help="set the secret APOP logins use (opt-in)")
    a.add_argument("address")
    g = a.add_mutually_exclusive_group()
    g.add_argument("--password", help="the APOP secret")
    g.add_argument("--password-stdin", action="store_true")
    g.add_argument("--clear", action="store_true")
    a = u.add_parser("quota", help="show the account's quota and usage; set it with the options")
    a.add_argument("address")
    a.add_argument("--storage", metavar="SIZE", help="limit on the size of all its mail: 500M, 2G, bytes")
    a.add_argument("--messages", metavar="N", type=int, help="limit on the number of messages")
    a.add_argument("--none", action="store_true", help="remove both limits")
    for parser in u.choices.values():
        parser.set_defaults(run=cmd_user)
    from .accounts.cli import add_parsers as add_account_parsers

    add_account_parsers(u, cmd_user, _Parser)  # user set, user app-password

    d = sub.add_parser("domain", help="served domains").add_subparsers(dest="action", required=True,
                                                                       parser_class=_Parser)
    d.add_parser("add").add_argument("domain")
    d.add_parser("del").add_argument("domain")
    d.add_parser("list")
    for parser in d.choices.values():
        parser.set_defaults(run=cmd_domain)

    al = sub.add_parser("alias", help="aliases and lists").add_subparsers(dest="action", required=True,
                                                                          parser_class=_Parser)
    a = al.add_parser("add", help="SOURCE (user@domain or @domain for a catch-all) → TARGET...")
    a.add_argument("source")
    a.add_argument("targets", nargs="+")
    al.add_parser("del").add_argument("source")
    al.add_parser("list")
    for parser in al.choices.values():
        parser.set_defaults(run=cmd_alias)

    gr = sub.add_parser("group", help="NNTP newsgroups").add_subparsers(dest="action", required=True,
                                                                       parser_class=_Parser)
    for action in ("add", "set"):
        ga = gr.add_parser(action)
        ga.add_argument("name")
        ga.add_argument("--posting", choices=("y", "n", "m"), help="y: allowed, n: not, m: moderated")
        ga.add_argument("--description")
        ga.add_argument("--read", help="anyone | accounts (default) | a comma list of addresses")
        ga.add_argument("--post", help="anyone | accounts (default) | a comma list of addresses")
        ga.add_argument("--retention", metavar="DAYS", type=int, help="days an article is kept")
        ga.add_argument("--list", metavar="ADDRESS", help="the mailing list bound to the group")
        if action == "set":
            ga.add_argument("--no-retention", action="store_true", help="keep articles for ever")
            ga.add_argument("--no-list", action="store_true", help="unbind the mailing list")
    gr.add_parser("del").add_argument("name")
    gr.add_parser("list")
    for parser in gr.choices.values():
        parser.set_defaults(run=cmd_group)

    i = sub.add_parser("import", help="import an mbox file or a Maildir into an account")
    i.add_argument("format", choices=("mbox", "maildir"))
    i.add_argument("address")
    i.add_argument("path")
    i.add_argument("--mailbox", default=None, help="target mailbox (default: INBOX; Maildir folders keep their names)")
    i.set_defaults(run=cmd_import)

    e = sub.add_parser("export", help="export an account's mail")
    e.add_argument("address")
    e.add_argument("dir")
    e.add_argument("--format", choices=("mbox", "maildir"), default="maildir")
    e.set_defaults(run=cmd_export)

    sub.add_parser("purge", help="reclaim the disk space of expunged messages").set_defaults(run=cmd_purge)
    b = sub.add_parser("backup", help="copy the store, consistent while the server runs, to DEST (again: "
                                      "only what changed)")
    b.add_argument("dest")
    b.set_defaults(run=cmd_backup)
    sub.add_parser("verify", help="read back every stored message; list those that cannot be (exit 1)"
                   ).set_defaults(run=cmd_verify)

    sub.add_parser("migrate", help="run the store's schema migrations now (every start does) and print "
                                   "the schema versions").set_defaults(run=cmd_migrate)

    ms = sub.add_parser("migrate-store", help="copy this installation's store and queue into an empty "
                                              "PostgreSQL database, then verify the copy (server stopped)")
    ms.add_argument("--to", required=True, metavar="URL", help="postgresql://USER@HOST:PORT/DBNAME")
    g = ms.add_mutually_exclusive_group()
    g.add_argument("--password-file", metavar="FILE", help="file holding the database password")
    g.add_argument("--password-env", metavar="NAME", help="environment variable holding the password")
    ms.add_argument("--force", action="store_true",
                    help="accept a database that has the Postroom schema but no data")
    ms.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    ms.set_defaults(run=cmd_migrate_store)

    sm = sub.add_parser("sendmail", help="submit a message from stdin (sendmail-compatible)", add_help=False)
    sm.add_argument("rest", nargs=argparse.REMAINDER)
    sm.set_defaults(run=cmd_sendmail)

    import importlib

    # Command groups that live with their feature: each module has register(sub).
    for name in ("postroom.outbound.cli", "postroom.mailauth.cli", "postroom.mailauth.dnsrecords",
                 "postroom.sieve.cli", "postroom.abuse.ratelimit_cli"):
        try:
            mod = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        mod.register(sub)
    return p


def cmd_sendmail(cfg: Config, args: argparse.Namespace) -> int:
    try:
        from .smtp.sendmail import run
    except ImportError:
        raise UsageError("sendmail is not available in this build") from None
    return run(cfg, args.rest)


_WORDS = {
    "AccountNotFound": "no such account",
    "AccountExists": "account already exists",
    "DomainNotFound": "domain not served here",
    "MailboxNotFound": "no such mailbox",
    "MailboxExists": "mailbox already exists",
    "MaildropLocked": "mailbox is locked by another session",
    "GroupNotFound": "no such newsgroup",
    "GroupExists": "newsgroup already exists",
}


def _describe(exc: PostroomError) -> str:
    words = _WORDS.get(type(exc).__name__)
    return f"{words}: {exc}" if words else str(exc)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # Called as "sendmail" (a symlink), behave like sendmail(1).
    if Path(sys.argv[0]).name == "sendmail" and argv[:1] != ["sendmail"]:
        argv = ["sendmail", *argv]
    parser = build_parser()
    if "sendmail" in argv:
        # sendmail(1) options (-t -i -f …) come in any order; argparse must not see them.
        i = argv.index("sendmail")
        args = parser.parse_args(argv[:i + 1])
        args.rest = argv[i + 1:]
    else:
        args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        if getattr(args, "needs_config", True):
            cfg = load(args.config)
            from . import log

            log.setup("warning")
            return int(args.run(cfg, args) or 0)
        return int(args.run(args) or 0)
    except ConfigError as exc:
        for p in exc.problems:
            print(f"postroom: config: {p}", file=sys.stderr)
        return 2
    except UsageError as exc:
        print(f"postroom: {exc}", file=sys.stderr)
        return 2
    except PostroomError as exc:
        print(f"postroom: {_describe(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 1
    except (OSError, sqlite3.Error) as exc:  # a file or folder the command needs: one line, no traceback
        if isinstance(exc, OSError) and exc.strerror:
            where = f": {exc.filename}" if exc.filename else ""
            print(f"postroom: {exc.strerror}{where}", file=sys.stderr)
        else:
            print(f"postroom: {exc}", file=sys.stderr)
        # sendmail(1) callers retry on EX_TEMPFAIL, as when a real MTA cannot queue.
        return 75 if getattr(args, "run", None) is cmd_sendmail else 1


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["main", "build_parser", "STANDARD_LISTENERS", "protocols"]
