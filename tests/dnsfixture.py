"""A small authoritative DNS server for tests, on 127.0.0.1 and a random UDP port.

    with DnsFixture() as dns_srv:
        dns_srv.mx("example.test", [(10, "mx1.example.test"), (20, "mx2.example.test")])
        dns_srv.a("mx1.example.test", "127.0.0.2")
        resolver = f"{dns_srv.host}:{dns_srv.port}"   # for [outbound] resolver

Names not given answer NXDOMAIN; a known name asked for another type answers
NOERROR with no data; :meth:`servfail` makes a name answer SERVFAIL and :meth:`silent`
makes it never answer (a timeout). :meth:`txt` publishes TXT records of any length
(split into 255-byte strings, RFC 7208 §3.3) and :meth:`load_zone` a zone-file
snippet such as ``postroom dns records`` prints. :meth:`cname` makes an alias that
answers follow, :meth:`secure` marks names whose answers carry the AD bit (as a
validating resolver's would, for queries with DO or AD: DANE tests) and :meth:`tlsa`
publishes TLSA records. Records can be changed while the
server runs. Built on dnspython's message helpers; one thread. ``port=53`` on a spare
loopback address (root only) serves programs that read /etc/resolv.conf.
"""

from __future__ import annotations

import socket
import threading
from typing import Iterable

import dns.flags
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset


def _escape(byte: int) -> str:
    """One byte of a TXT string in zone-file syntax: printable ASCII as itself, the rest
    as ``\\DDD`` (RFC 1035 §5.1), so that a string is never longer than its bytes."""
    if byte in (0x22, 0x5C):
        return "\\" + chr(byte)
    return chr(byte) if 0x20 <= byte < 0x7F else f"\\{byte:03d}"


def _norm(name: str) -> str:
    return name.lower().rstrip(".") + "."


class DnsFixture:
    def __init__(self, host: str = "127.0.0.1", ttl: int = 1, port: int = 0) -> None:
        self.host = host
        self.ttl = ttl
        self.records: dict[tuple[str, str], list[str]] = {}
        self.failing: set[str] = set()
        self.silenced: set[str] = set()
        self.validated: set[str] = set()  # names answered with AD (see secure())
        self.queries: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, port))
        self.port = self.sock.getsockname()[1]
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    @property
    def address(self) -> str:
        """``IP:PORT`` as ``[outbound] resolver`` wants it."""
        return f"{self.host}:{self.port}"

    # -- records -----------------------------------------------------------------
    def set(self, name: str, rdtype: str, values: Iterable[str]) -> None:
        with self._lock:
            self.records[(_norm(name), rdtype.upper())] = list(values)

    def mx(self, domain: str, hosts: Iterable[tuple[int, str]]) -> None:
        self.set(domain, "MX", [f"{pref} {_norm(h) if h not in ('', '.') else '.'}" for pref, h in hosts])

    def null_mx(self, domain: str) -> None:
        """RFC 7505: ``MX 0 .``"""
        self.set(domain, "MX", ["0 ."])

    def a(self, name: str, *addresses: str) -> None:
        self.set(name, "A", addresses)

    def aaaa(self, name: str, *addresses: str) -> None:
        self.set(name, "AAAA", addresses)

    def txt(self, name: str, *texts: str) -> None:
        """TXT records, one per text; long texts become several strings of one record."""
        def quoted(text: str) -> str:
            data = text.encode()
            parts = [data[i:i + 255] for i in range(0, len(data), 255)] or [b""]
            return " ".join('"' + "".join(_escape(b) for b in p) + '"' for p in parts)
        self.set(name, "TXT", [quoted(t) for t in texts])

    def srv(self, name: str, priority: int, weight: int, port: int, target: str) -> None:
        self.set(name, "SRV", [f"{priority} {weight} {port} {_norm(target) if target != '.' else '.'}"])

    def cname(self, name: str, target: str) -> None:
        """``name`` is an alias of ``target``; queries of other types follow it."""
        self.set(name, "CNAME", [_norm(target)])

    def tlsa(self, name: str, *records: str) -> None:
        """TLSA records (RFC 6698 §2.2 presentation form), e.g. ``"3 1 1 <sha-256 hex>"``."""
        self.set(name, "TLSA", records)

    def secure(self, *names: str, on: bool = True) -> None:
        """Answer queries for ``names`` that ask with DO or AD with the AD bit set."""
        with self._lock:
            for name in names:
                (self.validated.add if on else self.validated.discard)(_norm(name))

    def load_zone(self, text: str, origin: str = ".") -> int:
        """Records from a zone-file snippet (``$ORIGIN``/``$TTL`` lines allowed); returns how many."""
        import dns.zone

        zone = dns.zone.from_text(text, origin=origin, relativize=False, check_origin=False)
        n = 0
        for name, node in zone.nodes.items():
            for rds in node.rdatasets:
                self.set(name.to_text(), dns.rdatatype.to_text(rds.rdtype), [r.to_text() for r in rds])
                n += len(rds)
        return n

    def silent(self, name: str, on: bool = True) -> None:
        """Never answer queries for ``name``: the client times out."""
        with self._lock:
            (self.silenced.add if on else self.silenced.discard)(_norm(name))

    def servfail(self, name: str, on: bool = True) -> None:
        with self._lock:
            (self.failing.add if on else self.failing.discard)(_norm(name))

    def remove(self, name: str) -> None:
        with self._lock:
            for key in [k for k in self.records if k[0] == _norm(name)]:
                del self.records[key]

    # -- serving -----------------------------------------------------------------
    def answer(self, wire: bytes) -> bytes | None:
        try:
            return self._answer(wire)
        except Exception:  # a bad record must not kill the server thread (every later query would time out)
            return None

    def _answer(self, wire: bytes) -> bytes | None:
        try:
            query = dns.message.from_wire(wire)
        except Exception:
            return None
        resp = dns.message.make_response(query)
        resp.flags |= dns.flags.AA
        if not query.question:
            resp.set_rcode(dns.rcode.FORMERR)
            return resp.to_wire()
        q = query.question[0]
        name = q.name.to_text().lower()
        rdtype = dns.rdatatype.to_text(q.rdtype)
        with self._lock:
            self.queries.append((name, rdtype))
            if name in self.silenced:
                return None
            if name in self.failing:
                resp.set_rcode(dns.rcode.SERVFAIL)
                return resp.to_wire()
            values = self.records.get((name, rdtype))
            # A CNAME is followed, as a recursive resolver would (RFC 1034 §4.3.2), up to 8 links.
            owners = [name]
            while not values and rdtype != "CNAME" and (owners[-1], "CNAME") in self.records and len(owners) < 9:
                owners.append(_norm(self.records[(owners[-1], "CNAME")][0]))
                values = self.records.get((owners[-1], rdtype))
            known = any(k[0] == owners[-1] for k in self.records)
            # RFC 6840 §5.7, RFC 4035 §3.2.3: AD only for a query that asked with AD or DO,
            # and only when every name of the CNAME chain is secure.
            if all(o in self.validated for o in owners) and (query.flags & dns.flags.AD
                                                             or query.ednsflags & dns.flags.DO):
                resp.flags |= dns.flags.AD
        for owner, target in zip(owners, owners[1:]):
            resp.answer.append(dns.rrset.from_text_list(owner, self.ttl, dns.rdataclass.IN, "CNAME", [target]))
        if values:
            resp.answer.append(dns.rrset.from_text_list(owners[-1], self.ttl, dns.rdataclass.IN, q.rdtype, values))
        elif not known:
            resp.set_rcode(dns.rcode.NXDOMAIN)
        return resp.to_wire()

    def _serve(self) -> None:
        self.sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                wire, peer = self.sock.recvfrom(65535)
            except socket.timeout:
                continue
            except OSError:
                return
            out = self.answer(wire)
            if out is not None:
                try:
                    self.sock.sendto(out, peer)
                except OSError:
                    pass

    def start(self) -> "DnsFixture":
        self._thread = threading.Thread(target=self._serve, name="dns-fixture", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2)
        self.sock.close()

    def __enter__(self) -> "DnsFixture":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


try:  # a pytest fixture for those who import it: ``from dnsfixture import dns_server``
    import pytest

    @pytest.fixture
    def dns_server():  # type: ignore[no-untyped-def]
        with DnsFixture() as srv:
            yield srv
except ImportError:  # pragma: no cover - used outside pytest (bench)
    pass
