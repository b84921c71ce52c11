"""RFC 3464 notices: structure, fields, NOTIFY and RET handling."""

import email
import email.policy

import pytest

from postroom.outbound.dsn import RecipientReport, build_dsn, wants_notice

ORIGINAL = b"From: a@here.test\r\nTo: b@there.test\r\nSubject: hi\r\n\r\nbody line\r\n"


def parse(raw):
    return email.message_from_bytes(raw, policy=email.policy.compat32)


def dsn(action="failed", ret=None, envid=None, **kw):
    rep = RecipientReport(address="b@there.test", action=action, status=kw.pop("status", "5.1.1"),
                          orcpt="rfc822;B@there.test", diagnostic="550 5.1.1 no such user",
                          remote_mta="mx.there.test [127.0.0.3]", last_attempt=1_700_000_100,
                          will_retry_until=1_700_400_000 if action == "delayed" else None)
    return build_dsn(reporting_mta="mx.here.test", sender="a@here.test", queue_id="Q1", arrival=1_700_000_000,
                     now=1_700_000_200, reports=[rep], original=ORIGINAL, ret=ret, envid=envid)


@pytest.mark.parametrize("sender, notify, action, expected", [
    ("", (), "failed", False),  # RFC 5321 §4.5.5: never to the null reverse-path
    ("a@x", (), "failed", True),
    ("a@x", (), "delayed", True),
    ("a@x", (), "relayed", False),
    ("a@x", ("NEVER",), "failed", False),
    ("a@x", ("SUCCESS",), "failed", False),
    ("a@x", ("SUCCESS",), "relayed", True),
    ("a@x", ("FAILURE",), "delayed", False),
    ("a@x", ("DELAY", "FAILURE"), "delayed", True),
])
def test_wants_notice(sender, notify, action, expected):
    assert wants_notice(sender, notify, action) is expected


def test_failure_structure():
    raw = dsn(envid="ENV-1")
    assert b"\n" not in raw.replace(b"\r\n", b"")  # CRLF only
    msg = parse(raw)
    assert msg.get_content_type() == "multipart/report"
    assert msg.get_param("report-type") == "delivery-status"
    assert msg["Auto-Submitted"] == "auto-replied"
    assert msg["To"] == "<a@here.test>"
    parts = msg.get_payload()
    assert [p.get_content_type() for p in parts] == ["text/plain", "message/delivery-status", "message/rfc822"]
    assert b"no such user" in parts[0].get_payload(decode=True)
    status = parts[1].get_payload()  # list of header blocks
    per_msg, per_rcpt = status[0], status[1]
    assert per_msg["Reporting-MTA"] == "dns; mx.here.test"
    assert per_msg["Original-Envelope-Id"] == "ENV-1"
    assert per_msg["Arrival-Date"]
    assert per_rcpt["Final-Recipient"] == "rfc822; b@there.test"
    assert per_rcpt["Original-Recipient"] == "rfc822; B@there.test"
    assert per_rcpt["Action"] == "failed" and per_rcpt["Status"] == "5.1.1"
    assert per_rcpt["Remote-MTA"] == "dns; mx.there.test"
    assert per_rcpt["Diagnostic-Code"] == "smtp; 550 5.1.1 no such user"
    returned = parts[2].get_payload()[0]
    assert returned["Subject"] == "hi" and "body line" in returned.get_payload()


def test_ret_hdrs_returns_headers_only():
    msg = parse(dsn(ret="HDRS"))
    last = msg.get_payload()[2]
    assert last.get_content_type() == "text/rfc822-headers"
    assert "Subject: hi" in last.get_payload() and "body line" not in last.get_payload()


def test_delay_notice():
    msg = parse(dsn(action="delayed", status="4.4.1"))
    assert "Delayed" in msg["Subject"]
    rcpt = msg.get_payload()[1].get_payload()[1]
    assert rcpt["Action"] == "delayed" and rcpt["Status"] == "4.4.1" and rcpt["Will-Retry-Until"]
    assert msg.get_payload()[2].get_content_type() == "text/rfc822-headers"  # no RET: headers for delays


def test_reply_text_cannot_inject_fields():
    rep = RecipientReport("b@x", "failed", "5.0.0", diagnostic="550 bad\r\nAction: delivered")
    raw = build_dsn(reporting_mta="h", sender="a@x", queue_id="Q", arrival=0, now=0, reports=[rep], original=b"")
    rcpt = parse(raw).get_payload()[1].get_payload()[1]
    assert rcpt.get_all("Action") == ["failed"]
