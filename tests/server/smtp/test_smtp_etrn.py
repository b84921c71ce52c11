"""ETRN (RFC 1985) through smtplib against the real outbound queue."""

from __future__ import annotations

import smtplib
import ssl

from conftest import DOMAIN, PASSWORD, server_fixture

from postroom.outbound.service import _service

etrn_server = server_fixture(idle_timeout="30s")


def test_etrn_starts_a_queue_run(etrn_server):
    srv = etrn_server
    real = _service(srv.ctx) or srv.ctx.state.get("outbound")
    assert real is not None, "the outbound service did not start"
    srv.ctx.outbound = real  # the fixture records hand-offs by default; use the real queue here
    try:
        ctx = ssl._create_unverified_context()
        with smtplib.SMTP("127.0.0.1", srv.ports["submission"], timeout=30) as c:
            c.starttls(context=ctx)
            c.ehlo()
            assert c.has_extn("etrn")
            assert c.docmd("ETRN", "remote.example")[0] == 459  # not logged in yet
            c.login(f"joe@{DOMAIN}", PASSWORD)
            c.sendmail(f"joe@{DOMAIN}", ["friend@remote.example"], b"Subject: queued\r\n\r\nhi\r\n")
            assert c.docmd("ETRN", "remote.example")[0] == 250
            assert c.docmd("ETRN", "@example")[0] == 250  # subdomains
            assert c.docmd("ETRN", "nothing-queued.example")[0] == 251
            assert c.docmd("ETRN", "#named")[0] == 458
    finally:
        srv.ctx.outbound = srv.queue
