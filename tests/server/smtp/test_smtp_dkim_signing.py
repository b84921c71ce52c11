"""Submission signs what leaves: an authenticated user's mail to another domain is DKIM-signed
for its From domain before it enters the outbound queue; mail for local users is not."""

from __future__ import annotations

import smtplib

import dkim

from conftest import DOMAIN, PASSWORD, client_tls
from postroom.mailauth import keys


def test_authenticated_mail_to_a_remote_domain_is_signed(smtp_server) -> None:
    data_dir = smtp_server.cfg.data_dir
    rsa = keys.keygen(data_dir, DOMAIN, selector="sub1", algorithm="rsa")
    ed = keys.keygen(data_dir, DOMAIN, selector="sub2", algorithm="ed25519")
    records = {f"{k.record_name}.".encode(): k.txt_record().encode() for k in (rsa, ed)}
    before = len(smtp_server.queue.items)
    msg = (f"From: Ann <ann@{DOMAIN}>\r\nTo: friend@remote.example\r\nSubject: signed on the way out\r\n\r\n"
           "hello\r\n").encode()
    with smtplib.SMTP_SSL("127.0.0.1", smtp_server.ports["submissions"], context=client_tls()) as c:
        c.login(f"ann@{DOMAIN}", PASSWORD)
        c.sendmail(f"ann@{DOMAIN}", ["friend@remote.example", f"bob@{DOMAIN}"], msg)
    [(_env, raw)] = smtp_server.queue.items[before:]
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert head.count(b"DKIM-Signature:") == 2 and b"d=example.test" in head
    for i in range(2):
        assert dkim.DKIM(raw).verify(idx=i, dnsfunc=lambda name, timeout=5: records.get(name))
    # the local copy is not signed (nothing checks it), and carries no Authentication-Results of ours
    [local] = smtp_server.wait_inbox("bob", 1)[-1:]
    assert b"DKIM-Signature:" not in local.split(b"\r\n\r\n", 1)[0]
    for sel in ("sub1", "sub2"):
        keys.retire(data_dir, DOMAIN, sel)
