"""``postroom dkim …``: generate, list, activate and retire DKIM keys; print their DNS records.

Works on the key files under the data directory (:mod:`.keys`), so it needs no running
server: a running signer sees a rotation at its next message (``keys.active_keys``
watches the folder).

What ``keygen`` and ``record`` print on stdout is a zone-file snippet: the state as
``;`` comments, then the TXT record (no TTL, so the zone's ``$TTL`` applies). A domain
that is neither served (``postroom domain list``) nor the hostname's own gets a warning
on stderr, not a refusal: a key is best published days before the domain moves in.
Errors are one line on stderr: exit 2 for bad usage (a malformed domain, selector or
key size), 1 when the operation cannot be done (unknown selector, selector taken).
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from typing import Any

from ..config import Config
from ..errors import PostroomError, UsageError
from . import keys
from .dnsrecords import parse_domain, txt_rdata, warn_unserved

_SELECTOR = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")  # one DNS label (RFC 6376 §3.1)


class DkimCommandError(PostroomError):
    """A key operation that cannot be done (exit 1): :class:`keys.DkimKeyError` for the CLI."""


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("dkim", help="DKIM signing keys: generate, list, rotate, print DNS records")
    ps = p.add_subparsers(dest="dkim_cmd", metavar="COMMAND", required=True)
    k = ps.add_parser("keygen", help="make a key (active if the domain has none of its algorithm, else pending)")
    k.add_argument("domain")
    k.add_argument("--selector", help="DNS label for the key (default: YYYYMM and r or e, e.g. 202612r)")
    k.add_argument("--algorithm", choices=keys.ALGORITHMS, default="rsa",
                   help="rsa (every verifier) or ed25519 (RFC 8463; sign with both). Default: %(default)s")
    k.add_argument("--bits", type=int, help="RSA key size (default 2048; RFC 8301 §3.2)")
    ps.add_parser("list", help="every key with its state").add_argument("domain", nargs="?")
    a = ps.add_parser("activate", help="make a pending key sign; retires the active key of its algorithm")
    r = ps.add_parser("retire", help="stop signing with a key (keep its record published a few days)")
    for sp in (a, r):
        sp.add_argument("domain")
        sp.add_argument("selector")
    rec = ps.add_parser("record", help="print the TXT records of the active and pending keys (or of SELECTOR)")
    rec.add_argument("domain")
    rec.add_argument("selector", nargs="?")
    p.set_defaults(run=run)


def _selector(text: str) -> str:
    sel = text.strip().lower()
    if not _SELECTOR.match(sel):
        raise UsageError(f"{text!r} is not a selector (letters, digits and '-', up to 63)")
    return sel


def _record(key: keys.DkimKey) -> str:
    """``SEL._domainkey.DOMAIN. IN TXT ( "…" "…" )``, split into ≤255-byte strings."""
    return f"{key.record_name}. IN TXT {txt_rdata(key.txt_record())}"


def _state_words(key: keys.DkimKey) -> str:
    return {"pending": "pending: publish its record, then activate it",
            "active": "active: signs mail",
            "retired": "retired: signs nothing; keep its record published a few days"}[key.state]


def _keygen(cfg: Config, args: argparse.Namespace) -> int:
    domain = parse_domain(args.domain)
    selector = _selector(args.selector) if args.selector else None
    if args.bits is not None and args.algorithm != "rsa":
        raise UsageError("--bits is for RSA keys only (Ed25519 keys have one size)")
    bits = 2048 if args.bits is None else args.bits
    if not 1024 <= bits <= 8192:
        raise UsageError("--bits must be between 1024 and 8192 (2048 recommended)")
    if bits < 2048:
        print("postroom: warning: RFC 8301 §3.2 asks for RSA keys of at least 2048 bits", file=sys.stderr)
    elif bits > 4096:
        print("postroom: warning: some DNS hosts and verifiers cannot handle records of keys over 4096 bits",
              file=sys.stderr)
    warn_unserved(cfg, domain)
    key = keys.keygen(cfg.data_dir, domain, selector, args.algorithm, bits)
    what = f"{args.algorithm} key {key.selector}" + (f" ({bits} bits)" if args.algorithm == "rsa" else "")
    if key.state == "active":
        print(f"; {domain}: new {what}, active: it signs mail from {domain} from now on.")
        print("; Publish this record now: until it is in DNS, receivers cannot verify the signatures.")
    else:
        current = [k.selector for k in keys.list_keys(cfg.data_dir, domain)
                   if k.algorithm == key.algorithm and k.state == "active"]
        print(f"; {domain}: new {what}, pending: {', '.join(current) or 'the active key'} keeps signing for now.")
        print(f"; Publish this record, check it with 'postroom dns check {domain}', then run:")
        print(f";   postroom dkim activate {domain} {key.selector}")
    print(_record(key))
    return 0


def _list(cfg: Config, args: argparse.Namespace) -> int:
    domain = parse_domain(args.domain) if args.domain else None
    found = keys.list_keys(cfg.data_dir, domain)
    if not found:
        print(f"no DKIM keys{' for ' + domain if domain else ''} (make one: postroom dkim keygen DOMAIN)")
        return 0
    rows = [("DOMAIN", "SELECTOR", "ALGORITHM", "STATE", "CREATED (UTC)")]
    rows += [(k.domain, k.selector, k.algorithm, k.state, time.strftime("%Y-%m-%d %H:%M", time.gmtime(k.created)))
             for k in found]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1])
    return 0


def _activate(cfg: Config, args: argparse.Namespace) -> int:
    domain, selector = parse_domain(args.domain), _selector(args.selector)
    new, *retired = keys.activate(cfg.data_dir, domain, selector)
    print(f"{domain}: {new.selector} ({new.algorithm}) is active: it signs mail from now on")
    for old in retired:
        print(f"{domain}: {old.selector} ({old.algorithm}) retired: keep its record published a few days")
    return 0


def _retire(cfg: Config, args: argparse.Namespace) -> int:
    domain, selector = parse_domain(args.domain), _selector(args.selector)
    key = keys.retire(cfg.data_dir, domain, selector)
    print(f"{domain}: {key.selector} ({key.algorithm}) retired: keep its record published a few days")
    if not any(k.state == "active" for k in keys.list_keys(cfg.data_dir, domain)):
        print(f"postroom: warning: {domain} has no active key now: its mail leaves unsigned", file=sys.stderr)
    return 0


def _records(cfg: Config, args: argparse.Namespace) -> int:
    domain = parse_domain(args.domain)
    found = keys.list_keys(cfg.data_dir, domain)
    if args.selector:
        selector = _selector(args.selector)
        found = [k for k in found if k.selector == selector]
        if not found:
            raise DkimCommandError(f"no key {selector} for {domain} (see 'postroom dkim list')")
    else:
        found = [k for k in found if k.state in ("active", "pending")]
        if not found:
            raise DkimCommandError(f"{domain} has no active or pending DKIM key (postroom dkim keygen {domain})")
    for i, k in enumerate(found):
        if i:
            print()
        print(f"; {k.selector} ({k.algorithm}), {_state_words(k)}")
        print(_record(k))
    return 0


_COMMANDS = {"keygen": _keygen, "list": _list, "activate": _activate, "retire": _retire, "record": _records}


def run(cfg: Config, args: argparse.Namespace) -> int:
    try:
        return _COMMANDS[args.dkim_cmd](cfg, args)
    except keys.DkimKeyError as exc:  # not a PostroomError: main() would print a traceback
        raise DkimCommandError(str(exc)) from None
