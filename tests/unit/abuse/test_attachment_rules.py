"""The executable-attachment rules (postroom.abuse.attachments.inspect), without a server."""

from __future__ import annotations

import base64
import io
import struct
import time
import tracemalloc
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from postroom.abuse.attachments import (
    AttachmentSettings,
    Finding,
    executable_magic,
    inspect,
    parse,
)
from postroom.config import from_dict

ON = AttachmentSettings(enabled=True)
# A minimal PE: the DOS header with e_lfanew at 0x3c pointing at "PE\0\0".
PE = b"MZ" + b"\0" * 58 + struct.pack("<I", 64) + b"PE\0\0" + b"\0" * 200
ELF = b"\x7fELF\x02\x01\x01" + b"\0" * 100


def mail(*parts: tuple[str | None, bytes], disposition_param: str | None = None) -> bytes:
    """A multipart message; each part is (file name or None, content), base64-encoded."""
    out = [(b"From: a@example.org\r\nTo: b@example.test\r\nSubject: files\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: multipart/mixed; boundary=\"==b\"\r\n\r\n--==b\r\nContent-Type: text/plain\r\n\r\nHi.\r\n")]
    for name, data in parts:
        out.append(b"--==b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n")
        if disposition_param is not None:
            out.append(f"Content-Disposition: attachment; {disposition_param}\r\n".encode())
        elif name is not None:
            out.append(f"Content-Disposition: attachment; filename=\"{name}\"\r\n".encode())
        out.append(b"\r\n" + base64.encodebytes(data).replace(b"\n", b"\r\n"))
    out.append(b"--==b--\r\n")
    return b"".join(out)


def zipped(*members: tuple[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members:
            z.writestr(name, data)
    return buf.getvalue()


@pytest.mark.parametrize("name", ["setup.exe", "SETUP.EXE", "photo.jpg.scr", "run.js", "a.b.c.LnK",
                                  "evil.exe.", "evil.exe ", "C:\\temp\\x.bat", "dir/x.vbs"])
def test_refused_by_name(name: str) -> None:
    found = inspect(mail((name, b"harmless bytes")), ON)
    # (The name as the MIME parser decodes it: a quoted string loses its backslashes.)
    assert found is not None and found.why == "extension" and found.name.strip().endswith(name.strip()[-4:])


@pytest.mark.parametrize("name", ["report.pdf", "exe", "notes.txt", "archive.tar.gz", "photo.jpeg", "x.exe.pdf"])
def test_innocent_names_pass(name: str) -> None:
    assert inspect(mail((name, b"harmless bytes")), ON) is None


def test_rfc2231_encoded_name() -> None:
    msg = mail((None, b"x"), disposition_param="filename*=UTF-8''r%C3%A9sum%C3%A9.exe")
    assert inspect(msg, ON) == Finding("résumé.exe", "extension")


def test_name_in_content_type_only() -> None:
    msg = (b"MIME-Version: 1.0\r\nContent-Type: application/x-msdownload; name=\"tool.com\"\r\n"
           b"Content-Transfer-Encoding: base64\r\n\r\n" + base64.b64encode(b"data") + b"\r\n")
    assert inspect(msg, ON) == Finding("tool.com", "extension")


@pytest.mark.parametrize(("data", "kind"), [(PE, "PE"), (ELF, "ELF"), (b"\xcf\xfa\xed\xfe" + b"\0" * 40, "Mach-O"),
                                            (b"MZ" + b"\0" * 62, "DOS executable")])
def test_refused_by_content_under_an_innocent_name(data: bytes, kind: str) -> None:
    assert inspect(mail(("invoice.pdf", data)), ON) == Finding("invoice.pdf", kind)
    assert inspect(mail((None, data)), ON) == Finding("unnamed application/octet-stream part", kind)


def test_short_mz_text_and_text_bodies_pass() -> None:
    assert executable_magic(b"MZ is a postcode") is None
    assert inspect(b"Subject: x\r\n\r\nMZ" + b"z" * 100 + b"\r\n", ON) is None  # the body text itself
    assert inspect(mail(("invoice.pdf", PE)), replace(ON, check_content=False)) is None


def test_extension_list_is_configurable() -> None:
    s = replace(ON, extensions=frozenset({"pdf"}))
    assert inspect(mail(("report.pdf", b"x")), s) == Finding("report.pdf", "extension")
    assert inspect(mail(("setup.exe", b"x")), s) is None


def test_inside_zip_by_name_and_by_content() -> None:
    assert inspect(mail(("docs.zip", zipped(("readme.txt", b"hi"), ("setup.exe", b"x")))), ON) == \
        Finding("docs.zip/setup.exe", "extension")
    assert inspect(mail(("docs.zip", zipped(("invoice.pdf", PE)))), ON) == Finding("docs.zip/invoice.pdf", "PE")
    # A ZIP under another name is still opened (content, not name, says it is one).
    assert inspect(mail(("photos.dat", zipped(("a/b/run.vbs", b"x")))), ON) == \
        Finding("photos.dat/a/b/run.vbs", "extension")
    assert inspect(mail(("docs.zip", zipped(("readme.txt", b"hi"), ("img/", b"")))), ON) is None
    assert inspect(mail(("docs.zip", zipped(("setup.exe", b"x")))), replace(ON, archives=False)) is None


def test_nested_zips_and_the_depth_limit() -> None:
    inner = zipped(("tool.scr", b"x"))
    two = zipped(("inner.zip", inner))
    assert inspect(mail(("outer.zip", two)), ON) == Finding("outer.zip/inner.zip/tool.scr", "extension")
    innocent = zipped(("a.txt", b"x"))
    for _ in range(3):
        innocent = zipped(("level.zip", innocent))
    # outer.zip → level.zip → level.zip → level.zip: four levels, the limit is three.
    found = inspect(mail(("outer.zip", innocent)), ON)
    assert found == Finding("outer.zip/level.zip/level.zip/level.zip", "archive nested too deep")
    assert inspect(mail(("outer.zip", innocent)), replace(ON, max_depth=4)) is None


def test_member_limit() -> None:
    members = [(f"f{i}.txt", b"x") for i in range(30)] + [("late.exe", b"x")]
    assert inspect(mail(("many.zip", zipped(*members))), replace(ON, max_members=30)) is None
    assert inspect(mail(("many.zip", zipped(*members))), ON) == Finding("many.zip/late.exe", "extension")


def _bomb(size: int) -> bytes:
    """A ZIP whose one member inflates to ``size`` zero octets (about 1000:1)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z, z.open("zeros.txt", "w") as f:
        block = b"\0" * (1 << 20)
        for _ in range(size >> 20):
            f.write(block)
    return buf.getvalue()


def test_zip_bombs_cost_little_time_and_memory() -> None:
    bomb = _bomb(200 << 20)  # 200 MB inflated, about 200 KB on the wire
    # The bomb's member under a ZIP name (so that it is read whole), nested a few times, and
    # its own magic put first so that it looks like a ZIP: each read stops at the budget.
    fake_zip = zipped(("big.zip", b"PK\x03\x04" + b"\0" * (30 << 20)))
    nested = zipped(*[(f"b{i}.zip", bomb) for i in range(3)])
    msg = mail(("bomb.zip", bomb), ("fake.zip", fake_zip), ("nested.zip", nested))
    s = replace(ON, max_unpacked=8 << 20)
    tracemalloc.start()
    started = time.process_time()
    try:
        assert inspect(msg, s) is None
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert time.process_time() - started < 5
    assert peak < 4 * len(msg) + 3 * s.max_unpacked


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2000))
def test_any_message_bytes_give_an_answer(raw: bytes) -> None:
    assert inspect(raw, ON) is None or isinstance(inspect(raw, ON), Finding)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400), st.integers(min_value=0, max_value=300))
def test_damaged_archives_never_raise(noise: bytes, cut: int) -> None:
    good = zipped(("a.txt", b"hello"), ("b.bin", PE))
    damaged = good[:cut] + noise + good[cut + len(noise):]
    found = inspect(mail(("x.zip", damaged)), ON)
    assert found is None or isinstance(found, Finding)


def test_settings_parse() -> None:
    base = {"hostname": "mx.example.test", "domains": ["example.test"], "storage": {"path": "data"},
            "listeners": {"smtp": {"protocol": "smtp", "address": "127.0.0.1:25"}}}
    cfg = from_dict({**base, "attachments": {"enabled": True, "extensions": [".EXE", "Scr"], "max_depth": 2,
                                             "max_unpacked": "1M", "listeners": ["smtp"]}}, Path("/x.toml"))
    problems: list[str] = []
    s = parse(cfg, problems)
    assert problems == []
    assert (s.enabled, s.extensions, s.max_depth, s.max_unpacked, s.listeners) == \
        (True, frozenset({"exe", "scr"}), 2, 1 << 20, ("smtp",))
    assert parse(from_dict(base, Path("/x.toml")), problems).enabled is False
    cfg = from_dict({**base, "attachments": {"max_depth": 0, "listeners": ["nope"], "extensions": ["tar.gz"],
                                             "colour": "red"}}, Path("/x.toml"))
    parse(cfg, problems)
    assert sorted(p.split(":")[0] for p in problems) == ["attachments.colour", "attachments.extensions",
                                                          "attachments.listeners", "attachments.max_depth"]


def test_deeply_nested_multiparts_are_refused_not_a_recursion_error() -> None:
    parts = [b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b0\r\n\r\n"]
    parts += [b"--b%d\r\nContent-Type: multipart/mixed; boundary=b%d\r\n\r\n" % (i - 1, i) for i in range(1, 5000)]
    assert inspect(b"".join(parts), ON) == Finding("the message", "MIME nested too deep")
    parts = [b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b0\r\n\r\n"]
    parts += [b"--b%d\r\nContent-Type: multipart/mixed; boundary=b%d\r\n\r\n" % (i - 1, i) for i in range(1, 10)]
    parts += [b"--b9\r\nContent-Type: text/plain; name=deep.exe\r\n\r\nx\r\n"]
    assert inspect(b"".join(parts), ON) == Finding("deep.exe", "extension")
