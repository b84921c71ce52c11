"""Executable attachments refused at the end of DATA ([attachments] enabled), over real SMTP."""

from __future__ import annotations

import base64
import io
import resource
import smtplib
import struct
import time
import zipfile

import pytest
from scanner_harness import start_server

PE = b"MZ" + b"\0" * 58 + struct.pack("<I", 64) + b"PE\0\0" + b"\0" * 400


def mail(subject: str, name: str, data: bytes) -> bytes:
    b64 = base64.encodebytes(data).replace(b"\n", b"\r\n")
    return (f"From: <a@remote.example>\r\nTo: <ann@example.test>\r\nSubject: {subject}\r\nMIME-Version: 1.0\r\n"
            "Content-Type: multipart/mixed; boundary=XYZ\r\n\r\n--XYZ\r\nContent-Type: text/plain\r\n\r\nHello.\r\n"
            f"--XYZ\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=\"{name}\"\r\n"
            "Content-Transfer-Encoding: base64\r\n\r\n").encode() + b64 + b"--XYZ--\r\n"


def zipped(*members: tuple[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        for name, data in members:
            z.writestr(name, data)
    return buf.getvalue()


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    s = start_server(tmp_path_factory, "[attachments]\nenabled = true\n")
    yield s
    s.stop()


def send(srv, msg: bytes) -> tuple[int, str]:  # type: ignore[no-untyped-def]
    with smtplib.SMTP("127.0.0.1", srv.ports["smtp"], timeout=30) as c:
        c.ehlo("client.example")
        c.mail("a@remote.example")
        c.rcpt("ann@example.test")
        code, text = c.data(msg)
        return code, text.decode()


def subjects(srv) -> list[str]:  # type: ignore[no-untyped-def]
    out = []
    for m in srv.inbox("ann"):
        for line in m.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
            if line.startswith(b"Subject: "):
                out.append(line[9:].decode())
    return out


def test_exe_by_name(srv) -> None:  # type: ignore[no-untyped-def]
    assert send(srv, mail("exe", "Setup.EXE", b"not really a program")) == \
        (550, "5.7.1 Executable attachments are not accepted: Setup.EXE")
    assert "exe" not in subjects(srv)


def test_pe_payload_with_an_innocent_name(srv) -> None:  # type: ignore[no-untyped-def]
    assert send(srv, mail("pe", "invoice.pdf", PE)) == (550, "5.7.1 Executable attachments are not accepted: invoice.pdf")


def test_exe_inside_a_zip(srv) -> None:  # type: ignore[no-untyped-def]
    z = zipped(("readme.txt", b"read me"), ("bin/tool.exe", b"x"))
    assert send(srv, mail("zip", "docs.zip", z)) == \
        (550, "5.7.1 Executable attachments are not accepted: docs.zip/bin/tool.exe")
    z = zipped(("inner.zip", zipped(("photo.jpg", PE))))
    assert send(srv, mail("zip2", "docs.zip", z))[1] == \
        "5.7.1 Executable attachments are not accepted: docs.zip/inner.zip/photo.jpg"


def test_innocent_attachments_are_delivered(srv) -> None:  # type: ignore[no-untyped-def]
    assert send(srv, mail("pdf", "report.pdf", b"%PDF-1.7\n..."))[0] == 250
    assert send(srv, mail("zip-ok", "photos.zip", zipped(("a.jpg", b"\xff\xd8\xff"), ("b.txt", b"hi"))))[0] == 250
    assert {"pdf", "zip-ok"} <= set(subjects(srv))


def _bomb(megabytes: int) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z, z.open("zeros.bin", "w") as f:
        for _ in range(megabytes):
            f.write(b"\0" * (1 << 20))  # about 1000:1 deflated
    return buf.getvalue()


def test_zip_bombs_neither_hang_nor_blow_memory(srv) -> None:  # type: ignore[no-untyped-def]
    # 100 MB in one member, and 2 x 50 MB bombs inside another ZIP (read whole, as ZIPs):
    # 200 MB in all, against a default budget of 20 MB unpacked per message.
    flat, nested = _bomb(100), zipped(("a.zip", _bomb(50)), ("b.zip", _bomb(50)))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KB; the server runs in this process
    started = time.monotonic()
    assert send(srv, mail("bomb-flat", "bomb.zip", flat))[0] == 250
    assert send(srv, mail("bomb-nested", "bombs.zip", nested))[0] == 250
    assert time.monotonic() - started < 20
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss < 120 * 1024
    assert {"bomb-flat", "bomb-nested"} <= set(subjects(srv))


def test_deeply_nested_zip_is_refused(srv) -> None:  # type: ignore[no-untyped-def]
    z = zipped(("a.txt", b"innocent"))
    for _ in range(6):
        z = zipped(("next.zip", z))
    code, text = send(srv, mail("deep", "deep.zip", z))
    assert code == 550 and text.startswith("5.7.1 Archive nested too deep to inspect: deep.zip/next.zip/next.zip")
