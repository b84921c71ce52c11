"""DKIM keys on disk, their states and rotation.

Layout under the data directory: ``dkim/DOMAIN/SELECTOR.pem`` (PKCS#8 private key,
mode 0600, the format OpenDKIM reads too) and ``dkim/DOMAIN/SELECTOR.json`` (algorithm,
state, times). A key is **pending** (generated, its TXT record to be published),
**active** (signs mail) or **retired** (no longer signs; keep its record published a
few days so that mail still in transit verifies, then delete it).

Rotation: ``dkim keygen`` makes the first key of each algorithm for a domain active at
once; a later one is pending until ``dkim activate``, which retires the key it replaces
(same domain and algorithm). RSA and Ed25519 keys are active side by side (RFC 8463
§4: sign with both until verifiers know Ed25519). The metadata file is replaced by
rename, so a reader sees the old state or the new, never half of one.
"""

from __future__ import annotations

import base64
import json
import os
import re
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

ALGORITHMS = ("rsa", "ed25519")
STATES = ("pending", "active", "retired")
_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


class DkimKeyError(Exception):
    """A key operation that cannot be done; the message is for the admin."""


@dataclass(frozen=True, slots=True)
class DkimKey:
    domain: str
    selector: str
    algorithm: str  # "rsa" | "ed25519"
    state: str  # one of STATES
    created: float
    path: Path  # the .pem file
    changed: float = 0.0  # when the state last changed

    @property
    def signature_algorithm(self) -> bytes:
        """The DKIM a= value (RFC 6376 §3.3, RFC 8463 §3)."""
        return b"rsa-sha256" if self.algorithm == "rsa" else b"ed25519-sha256"

    @property
    def record_name(self) -> str:
        return f"{self.selector}._domainkey.{self.domain}"

    def private_pem(self) -> bytes:
        return self.path.read_bytes()

    def dkimpy_private(self) -> bytes:
        """The private key as dkimpy's ``sign`` wants it: PEM for RSA, base64 raw for Ed25519."""
        pem = self.private_pem()
        if self.algorithm == "rsa":
            return pem
        key = serialization.load_pem_private_key(pem, password=None)
        assert isinstance(key, ed25519.Ed25519PrivateKey)
        raw = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                serialization.NoEncryption())
        return base64.b64encode(raw)

    def public_b64(self) -> str:
        key = serialization.load_pem_private_key(self.private_pem(), password=None)
        pub = key.public_key()
        if isinstance(pub, ed25519.Ed25519PublicKey):  # RFC 8463 §4.2: the raw 32 bytes
            data = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        else:  # RFC 6376 §3.6.1: SubjectPublicKeyInfo, DER
            data = pub.public_bytes(serialization.Encoding.DER,
                                    serialization.PublicFormat.SubjectPublicKeyInfo)
        return base64.b64encode(data).decode("ascii")

    def txt_record(self) -> str:
        """The TXT record's text (RFC 6376 §3.6.1)."""
        return f"v=DKIM1; k={self.algorithm}; p={self.public_b64()}"


def key_dir(data_dir: Path, domain: str) -> Path:
    return Path(data_dir) / "dkim" / domain.lower().rstrip(".")


def _meta_path(pem: Path) -> Path:
    return pem.with_suffix(".json")


def _write_atomic(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def _save_meta(key: DkimKey) -> None:
    meta = {"algorithm": key.algorithm, "state": key.state, "created": key.created, "changed": key.changed}
    _write_atomic(_meta_path(key.path), json.dumps(meta, indent=1).encode() + b"\n", 0o644)


def _load(pem: Path, domain: str) -> DkimKey | None:
    try:
        meta = json.loads(_meta_path(pem).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict) or meta.get("algorithm") not in ALGORITHMS or meta.get("state") not in STATES:
        return None
    return DkimKey(domain, pem.stem, meta["algorithm"], meta["state"], float(meta.get("created", 0)), pem,
                   float(meta.get("changed", 0)))


def list_keys(data_dir: Path, domain: str | None = None) -> list[DkimKey]:
    """Every key (of one domain, or all), by domain then creation time."""
    root = Path(data_dir) / "dkim"
    domains = [domain.lower().rstrip(".")] if domain else sorted(p.name for p in root.iterdir()) \
        if root.is_dir() else []
    out: list[DkimKey] = []
    for d in domains:
        folder = root / d
        if not folder.is_dir():
            continue
        for pem in sorted(folder.glob("*.pem")):
            k = _load(pem, d)
            if k is not None:
                out.append(k)
    out.sort(key=lambda k: (k.domain, k.created, k.selector))
    return out


def default_selector(algorithm: str, when: float | None = None) -> str:
    """``202612r`` / ``202612e``: the month it was made, and the algorithm (one of each a month)."""
    return time.strftime("%Y%m", time.gmtime(when or time.time())) + ("r" if algorithm == "rsa" else "e")


def keygen(data_dir: Path, domain: str, selector: str | None = None, algorithm: str = "rsa",
           bits: int = 2048) -> DkimKey:
    domain = domain.lower().rstrip(".")
    if algorithm not in ALGORITHMS:
        raise DkimKeyError(f"unknown algorithm {algorithm!r} (rsa or ed25519)")
    selector = (selector or default_selector(algorithm)).lower()
    if not _LABEL.match(selector):
        raise DkimKeyError(f"{selector!r} is not a valid selector (letters, digits and '-', up to 63)")
    if not re.fullmatch(r"[a-z0-9]([a-z0-9.-]*[a-z0-9])?", domain) or "." not in domain:
        raise DkimKeyError(f"{domain!r} is not a domain name")
    if bits < 1024 or bits > 8192:
        raise DkimKeyError("RSA keys must have 1024 to 8192 bits (2048 recommended)")
    folder = key_dir(data_dir, domain)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    pem_path = folder / f"{selector}.pem"
    if pem_path.exists():
        raise DkimKeyError(f"selector {selector} already exists for {domain}")
    priv: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
    priv = rsa.generate_private_key(65537, bits) if algorithm == "rsa" else ed25519.Ed25519PrivateKey.generate()
    pem = priv.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())
    others = [k for k in list_keys(data_dir, domain) if k.algorithm == algorithm and k.state == "active"]
    now = time.time()
    key = DkimKey(domain, selector, algorithm, "pending" if others else "active", now, pem_path, now)
    _write_atomic(pem_path, pem, 0o600)
    _save_meta(key)
    _cache.clear()
    return key


def _find(data_dir: Path, domain: str, selector: str) -> DkimKey:
    for k in list_keys(data_dir, domain):
        if k.selector == selector.lower():
            return k
    raise DkimKeyError(f"no key {selector} for {domain.lower()} (see 'postroom dkim list')")


def activate(data_dir: Path, domain: str, selector: str) -> list[DkimKey]:
    """Make the key active; the active key it replaces (same algorithm) is retired. Returns both."""
    key = _find(data_dir, domain, selector)
    now = time.time()
    changed = []
    for other in list_keys(data_dir, domain):
        if other.algorithm == key.algorithm and other.state == "active" and other.selector != key.selector:
            old = replace(other, state="retired", changed=now)
            _save_meta(old)
            changed.append(old)
    new = replace(key, state="active", changed=now)
    _save_meta(new)
    _cache.clear()
    return [new, *changed]


def retire(data_dir: Path, domain: str, selector: str) -> DkimKey:
    key = replace(_find(data_dir, domain, selector), state="retired", changed=time.time())
    _save_meta(key)
    _cache.clear()
    return key


# -- the signer's view: active keys, re-read when the folder changes -------------------
_cache: dict[tuple[str, str], tuple[float, list[DkimKey]]] = {}
_cache_lock = threading.Lock()


def active_keys(data_dir: Path, domain: str) -> list[DkimKey]:
    """The keys that sign mail from ``domain`` now. Cheap: a stat per call.

    The folder's mtime changes with every rename :func:`_save_meta` does, also when
    another process (the CLI) rotates keys under a running server.
    """
    domain = domain.lower().rstrip(".")
    folder = key_dir(data_dir, domain)
    try:
        mtime = folder.stat().st_mtime_ns
    except OSError:
        return []
    ck = (str(data_dir), domain)
    with _cache_lock:
        hit = _cache.get(ck)
        if hit is not None and hit[0] == mtime:
            return hit[1]
    keys = [k for k in list_keys(data_dir, domain) if k.state == "active"]
    with _cache_lock:
        _cache[ck] = (mtime, keys)
    return keys
