"""QUOTA (RFC 9208): GETQUOTAROOT, GETQUOTA, SETQUOTA, STATUS DELETED, and OVERQUOTA refusals."""

from __future__ import annotations

import re

from imap_harness import PASSWORD, msg

# RFC 9208 §7: quota-response = "QUOTA" SP astring SP quota-list;
# quota-list = "(" quota-resource *(SP quota-resource) ")"; quota-resource = resource-name SP usage SP limit
QUOTA_RE = re.compile(rb'^\* QUOTA "User quota" \(([A-Z-]+ \d+ \d+(?: [A-Z-]+ \d+ \d+)*)\)\r\n$')
QUOTAROOT_RE = re.compile(rb'^\* QUOTAROOT ("[^"]*"|\S+)((?: "[^"]*")*)\r\n$')


def _set_quota(srv, acc, storage=None, messages=None):
    srv.call(srv.store.set_quota(acc.address, storage, messages))


def _login(srv, acc):
    r = srv.raw()
    r.cmd(b'l LOGIN "%s" "%s"' % (acc.address.encode(), PASSWORD.encode()))
    return r


def _resources(line: bytes) -> dict[str, tuple[int, int]]:
    m = QUOTA_RE.match(line)
    assert m, line
    words = m.group(1).split()
    return {words[i].decode(): (int(words[i + 1]), int(words[i + 2])) for i in range(0, len(words), 3)}


def test_capability_advertises_quota_resources(srv):
    c = srv.imaplib(srv.new_user())
    caps = set(c.capabilities)
    assert {"QUOTA", "QUOTA=RES-STORAGE", "QUOTA=RES-MESSAGE"} <= caps
    assert "QUOTASET" not in caps  # SETQUOTA is refused: limits are the administrator's
    c.logout()


def test_no_limits_means_no_quota_root(srv):
    acc = srv.new_user()
    r = _login(srv, acc)
    out = r.cmd(b"a GETQUOTAROOT INBOX")
    assert out == [b'* QUOTAROOT "INBOX"\r\n', b"a OK Getquotaroot completed\r\n"]
    assert r.cmd(b'b GETQUOTA "User quota"')[-1].startswith(b"b NO [NONEXISTENT]")
    assert r.cmd(b"c GETQUOTAROOT Nope")[-1].startswith(b"c NO [NONEXISTENT]")
    r.close()


def test_getquotaroot_and_getquota_report_usage_and_limits(srv):
    acc = srv.new_user()
    m = msg("one", body="x" * 3000 + "\r\n")
    srv.deliver(acc, m)
    srv.deliver(acc, m, mailbox="Archive")
    _set_quota(srv, acc, storage=100 * 1024, messages=10)
    c = srv.imaplib(acc)
    typ, data = c.getquotaroot("INBOX")
    assert typ == "OK"
    roots, quotas = data
    assert roots == [b'"INBOX" "User quota"']
    used_kib = -(-2 * len(m) // 1024)
    assert _resources(b"* QUOTA " + quotas[0] + b"\r\n") == {"STORAGE": (used_kib, 100), "MESSAGE": (2, 10)}
    typ, data = c.getquota('"User quota"')
    assert typ == "OK" and _resources(b"* QUOTA " + data[0] + b"\r\n")["MESSAGE"] == (2, 10)
    c.logout()
    # Raw: the exact lines, one resource only when only one limit is set.
    _set_quota(srv, acc, messages=5)
    r = _login(srv, acc)
    out = r.cmd(b"a GETQUOTAROOT Archive")
    assert QUOTAROOT_RE.match(out[0]) and out[0] == b'* QUOTAROOT "Archive" "User quota"\r\n'
    assert out[1] == b'* QUOTA "User quota" (MESSAGE 2 5)\r\n'
    assert out[2] == b"a OK Getquotaroot completed\r\n"
    r.close()


def test_setquota_is_refused(srv):
    acc = srv.new_user()
    r = _login(srv, acc)
    assert r.cmd(b'a SETQUOTA "User quota" (STORAGE 512)')[-1].startswith(b"a NO [NOPERM]")
    assert r.cmd(b'b SETQUOTA "User quota" (STORAGE)')[-1].startswith(b"b BAD")
    r.close()


def test_append_over_quota_is_refused_before_the_upload(srv):
    acc = srv.new_user()
    _set_quota(srv, acc, storage=2000)
    c = srv.imaplib(acc)
    typ, data = c.append("INBOX", None, None, msg("small"))
    assert typ == "OK"
    typ, data = c.append("INBOX", None, None, msg("big", body="y" * 3000 + "\r\n"))
    assert typ == "NO" and b"[OVERQUOTA]" in data[0]
    c.logout()
    r = _login(srv, acc)
    # A synchronizing literal that cannot fit: NO instead of "+", nothing more is read.
    r.send(b"a APPEND INBOX {5000}\r\n")
    assert r.line().startswith(b"a NO [OVERQUOTA]")
    assert r.cmd(b"b NOOP")[-1] == b"b OK NOOP completed\r\n"
    # LITERAL+: the bytes come anyway; read, then refused.
    big = b"Subject: x\r\n\r\n" + b"z" * 3000 + b"\r\n"
    r.send(b"c APPEND INBOX {%d+}\r\n" % len(big) + big + b"\r\n")
    assert r.until_tagged(b"c")[-1].startswith(b"c NO [OVERQUOTA]")
    out = r.cmd(b"d STATUS INBOX (MESSAGES)")
    assert out[0] == b'* STATUS "INBOX" (MESSAGES 1)\r\n'
    r.close()


def test_message_limit_refuses_append_and_copy_but_not_move(srv):
    acc = srv.new_user()
    for i in range(2):
        srv.deliver(acc, msg(f"m{i}"))
    _set_quota(srv, acc, messages=3)
    c = srv.imaplib(acc, select="INBOX")
    typ, data = c.copy("1:2", "Archive")  # 2 more would make 4
    assert typ == "NO" and b"[OVERQUOTA]" in data[0]
    typ, _ = c.copy("1", "Archive")
    assert typ == "OK"
    typ, data = c.append("INBOX", None, None, msg("more"))
    assert typ == "NO" and b"[OVERQUOTA]" in data[0]
    # MOVE stays under the same quota root and uses nothing more.
    typ, _ = c._simple_command("MOVE", "1", "Trash")
    assert typ == "OK"
    typ, data = c.status("Trash", "(MESSAGES)")
    assert b"MESSAGES 1" in data[0]
    c.logout()


def test_status_deleted_and_deleted_storage(srv):
    acc = srv.new_user()
    sizes = []
    for i in range(3):
        m = msg(f"d{i}", body="q" * (1500 * i) + "\r\n")
        sizes.append(len(m))
        srv.deliver(acc, m, flags=frozenset({"\\Deleted"}) if i else frozenset())
    r = _login(srv, acc)
    out = r.cmd(b"a STATUS INBOX (MESSAGES DELETED DELETED-STORAGE)")
    expect = -(-(sizes[1] + sizes[2]) // 1024)
    assert out[0] == b'* STATUS "INBOX" (MESSAGES 3 DELETED 2 DELETED-STORAGE %d)\r\n' % expect
    r.close()
