"""``postroom sendmail [-t] [-i] [-f SENDER] [RCPT...]``: submit a message from stdin.

Compatible with the options cron, scripts and web apps use of Sendmail's and
Postfix's ``sendmail``: ``-t`` takes recipients from To/Cc/Bcc (and removes Bcc),
``-i``/``-oi`` makes a line with a single "." ordinary text, ``-f`` sets the envelope
sender, ``-F`` the full name; other ``-o…``/``-b…`` options are accepted and ignored.
Recipients without a domain get the first served domain (``root`` → root@domain).

The message goes straight to the store (local recipients) and the outbound queue
(others), like mail accepted over SMTP, without the network: the caller is a local
program and is trusted to relay. Exit codes follow sysexits.h.
"""

from __future__ import annotations

import asyncio
import getpass
import sys
from email.parser import BytesHeaderParser
from email.utils import getaddresses
from typing import Any, BinaryIO, TextIO

from .. import log
from ..auth import Authenticator
from ..config import Config
from ..context import ServerContext
from ..storage import open_store
from ..wire.dotstuff import normalize_newlines
from . import delivery, recipients, settings as smtp_settings
from .address import AddressError, parse_path
from .transaction import Peer, Rcpt, Resolved, Transaction

EX_OK, EX_USAGE, EX_DATAERR, EX_NOUSER, EX_SOFTWARE, EX_TEMPFAIL = 0, 64, 65, 67, 70, 75

USAGE = "usage: postroom sendmail [-t] [-i] [-f SENDER] [-F NAME] [RCPT...] < message"


class _Args:
    def __init__(self) -> None:
        self.headers = False
        self.ignore_dots = False
        self.sender: str | None = None
        self.fullname: str | None = None
        self.rcpts: list[str] = []


def parse_args(argv: list[str]) -> _Args:
    a = _Args()
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if arg == "--":
            a.rcpts += argv[i:]
            break
        if not arg.startswith("-") or arg == "-":
            a.rcpts.append(arg)
            continue
        if arg == "-t":
            a.headers = True
        elif arg in ("-i", "-oi"):
            a.ignore_dots = True
        elif arg.startswith(("-f", "-r", "-F")):
            value = arg[2:]
            if not value:
                if i >= len(argv):
                    raise ValueError(f"{arg} needs a value")
                value = argv[i]
                i += 1
            if arg.startswith("-F"):
                a.fullname = value
            else:
                a.sender = value
        elif arg.startswith(("-o", "-b", "-v", "-N", "-R", "-V", "-X", "-B", "-q", "-U", "-L", "-h", "-C")):
            if arg in ("-bp", "-bs", "-bd", "-bv", "-q", "-bi"):
                raise ValueError(f"{arg} is not supported (use postroom's own commands)")
            if arg in ("-N", "-R", "-V", "-X", "-B", "-L", "-h", "-C") and i < len(argv):
                i += 1  # options that take a separate value
        else:
            raise ValueError(f"unknown option {arg}")
    return a


def read_message(stream: BinaryIO, ignore_dots: bool) -> bytes:
    data = stream.read()
    if not ignore_dots:
        # Traditional sendmail: a line with a single "." ends the message.
        lines = data.splitlines(keepends=True)
        for n, line in enumerate(lines):
            if line.rstrip(b"\r\n") == b".":
                data = b"".join(lines[:n])
                break
    data = normalize_newlines(data)
    if data and not data.endswith(b"\r\n"):
        data += b"\r\n"
    return data


def _split_headers(body: bytes) -> tuple[bytes, bytes]:
    end = body.find(b"\r\n\r\n")
    if end < 0:
        return body, b""
    return body[: end + 2], body[end + 2:]


def header_recipients(body: bytes) -> tuple[list[str], bytes]:
    """-t: addresses from To, Cc, Bcc; the message without its Bcc fields."""
    head, rest = _split_headers(body)
    msg = BytesHeaderParser().parsebytes(head + b"\r\n")
    fields = [v for name in ("to", "cc", "bcc") for v in msg.get_all(name, [])]
    addrs = [a for _, a in getaddresses([str(f) for f in fields]) if a]
    out, skip = [], False
    for line in head.split(b"\r\n"):
        if line[:1] in (b" ", b"\t"):
            if not skip:
                out.append(line)
            continue
        skip = line.lower().startswith(b"bcc:")
        if not skip:
            out.append(line)
    return addrs, b"\r\n".join(out) + rest


def _qualify(address: str, domain: str) -> str:
    address = address.strip().strip("<>")
    return address if "@" in address else f"{address}@{domain}"


def run(cfg: Config, argv: list[str], stdin: BinaryIO | None = None, stderr: TextIO | None = None) -> int:
    err = stderr or sys.stderr
    try:
        args = parse_args(argv)
    except ValueError as exc:
        print(f"sendmail: {exc}\n{USAGE}", file=err)
        return EX_USAGE
    body = read_message(stdin or sys.stdin.buffer, args.ignore_dots)
    domain = cfg.domains[0] if cfg.domains else cfg.hostname
    rcpts = list(args.rcpts)
    if args.headers:
        found, body = header_recipients(body)
        rcpts += found
    if not rcpts:
        print("sendmail: no recipients", file=err)
        return EX_USAGE
    sender = _qualify(args.sender, domain) if args.sender not in (None, "", "<>") else (
        "" if args.sender in ("", "<>") else f"{getpass.getuser()}@{domain}")
    head, _ = _split_headers(body)
    if not any(line.lower().startswith(b"from:") for line in head.split(b"\r\n")):
        name = f"{args.fullname} " if args.fullname else ""
        body = f"From: {name}<{sender or 'MAILER-DAEMON@' + domain}>\r\n".encode() + body
    try:
        return asyncio.run(_submit(cfg, sender, [_qualify(r, domain) for r in rcpts], body, err))
    except Exception as exc:  # e.g. the store cannot be opened: say so plainly
        print(f"sendmail: cannot submit: {exc}", file=err)
        return EX_TEMPFAIL


async def _submit(cfg: Config, sender: str, rcpts: list[str], body: bytes, err: TextIO) -> int:
    store = open_store(cfg)
    await store.open()
    queue: _LazyQueue | None = None
    try:
        ctx = ServerContext(cfg, store, None, Authenticator(store))
        txn = Transaction(sender=parse_path(f"<{sender}>", allow_null=True)[0],
                          smtputf8=not "".join([sender, *rcpts]).isascii(), body_8bit=not body.isascii())
        for addr in dict.fromkeys(rcpts):
            try:
                path, _ = parse_path(f"<{addr}>")
            except AddressError as exc:
                print(f"sendmail: {addr}: {exc}", file=err)
                return EX_DATAERR
            if await ctx.is_local_domain(path.domain):
                resolved = await recipients.resolve(store, ctx.is_local_domain, path.key)
                if resolved is None:
                    print(f"sendmail: {addr}: no such user here", file=err)
                    return EX_NOUSER
            else:
                resolved = Resolved(remote=(path.address,))
            txn.rcpts.append(Rcpt(path, resolved))
        # Opened on first use: by remote recipients, or by a Sieve redirect or vacation reply
        # of a local one (postroom.sieve.delivery).
        queue = ctx.outbound = _LazyQueue(cfg)
        peer = Peer("", "", True, None, None, log.new_id(), True)
        reply = await delivery.deliver(ctx, smtp_settings.parse(cfg, []), peer, txn, body)
        if reply.code != 250:
            print(f"sendmail: {reply}", file=err)
            return EX_TEMPFAIL
        return EX_OK
    finally:
        if queue is not None:
            await queue.close()
        await store.close()


class _LazyQueue:
    """The outbound queue, opened only when something is enqueued."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.queue: Any = None

    async def enqueue(self, envelope: Any, raw: bytes) -> str:
        if self.queue is None:
            self.queue = await _open_queue(self.cfg)
        return str(await self.queue.enqueue(envelope, raw))

    async def close(self) -> None:
        if self.queue is not None:
            await self.queue.close()


async def _open_queue(cfg: Config) -> Any:
    from ..outbound.backends import open_queue  # SQLite here, or PostgreSQL shared by the nodes

    return await open_queue(cfg)
