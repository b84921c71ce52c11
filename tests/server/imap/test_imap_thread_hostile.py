"""Deeply nested THREAD and SORT input over the wire (issue #14, bad input): nested search
criteria are refused with a tagged BAD, and a reply tree nested hundreds deep is threaded and
written without recursion, in time, with every message once. The algorithms' own tables and
10,000-deep chains are in tests/unit/imap/test_imap_threadalg.py."""

from __future__ import annotations

import time

import pytest
from imap_harness import PASSWORD, msg

from postroom.storage.models import DeliveryTarget


def login(srv, acc):
    c = srv.raw()
    assert c.cmd(b"l LOGIN %s %s" % (acc.address.encode(), PASSWORD.encode()))[-1].startswith(b"l OK")
    assert c.cmd(b"s SELECT INBOX")[-1].startswith(b"s OK")
    return c


@pytest.fixture(scope="module")
def one_message(srv):
    """One connection, INBOX selected, holding one message: shared by the parameters below."""
    acc = srv.new_user()
    srv.deliver(acc, msg("one"))
    c = login(srv, acc)
    yield c
    c.close()


@pytest.mark.parametrize("criteria", [
    b"(" * 2000 + b"ALL" + b")" * 2000,
    b"NOT " * 2000 + b"ALL",
    b"OR ALL " * 1000 + b"ALL",  # (all within [limits] line_length, 8192)
    b"(" * 41 + b"ALL" + b")" * 41,  # just past the bound
])
@pytest.mark.parametrize("command", [b"THREAD REFERENCES UTF-8", b"THREAD ORDEREDSUBJECT UTF-8",
                                     b"UID THREAD REFERENCES UTF-8", b"SORT (DATE) UTF-8"])
def test_nested_criteria_are_bad(one_message, command, criteria):
    c = one_message
    got = c.cmd(b"t " + command + b" " + criteria)
    assert len(got) == 1 and got[0].startswith(b"t BAD "), got[:3]
    assert c.cmd(b"n NOOP")[-1].startswith(b"n OK")  # the connection goes on
    ok = c.cmd(b"u " + command + b" " + b"(" * 30 + b"ALL" + b")" * 30)  # nested within the bound
    assert ok[-1].startswith(b"u OK") and ok[0].startswith((b"* THREAD (1)", b"* SORT 1")), ok


def _reply_tree(n: int) -> list[bytes]:
    """Message 1 starts a thread; each odd message 2k+1 replies to 2k-1 and so does the even
    message 2k (a leaf), so THREAD REFERENCES nests about n/2 deep: (1 (2)(3 (4)(5 …)))."""
    out = []
    for i in range(1, n + 1):
        parent = None if i == 1 else (i - 1 if i % 2 == 0 else i - 2)
        chain = list(range(1, (parent or 0) + 1, 2))[-300:] if parent else []  # odd ancestors, as References
        refs = " ".join(f"<t{j}@outside.test>" for j in chain)
        extra = f"References: {refs}\r\nIn-Reply-To: <t{parent}@outside.test>\r\n" if parent else ""
        out.append(msg(f"t{i}", extra=extra).replace(b"Subject: t%d\r\n" % i, b"Subject: Re: topic\r\n"))
    return out


def test_deep_reply_tree_over_the_wire(srv):
    n = 1000
    acc = srv.new_user()

    async def fill() -> None:
        target = [DeliveryTarget(acc.id)]
        for m in _reply_tree(n):  # in order: sequence number i is message t{i}
            await srv.store.deliver(m, target)

    srv.call(fill(), timeout=300)
    c = login(srv, acc)
    t = time.monotonic()
    got = c.cmd(b"t THREAD REFERENCES UTF-8 ALL")
    assert time.monotonic() - t < 10
    assert got[-1].startswith(b"t OK"), got[-1]
    line = got[0].rstrip(b"\r\n")
    assert line.startswith(b"* THREAD (1 (2)(3 (4)(5 (6)(7 ")
    depth = deepest = 0
    for ch in line:
        depth += {40: 1, 41: -1}.get(ch, 0)
        assert depth >= 0
        deepest = max(deepest, depth)
    assert depth == 0 and deepest >= n // 2
    numbers = line[len(b"* THREAD "):].replace(b"(", b" ").replace(b")", b" ").split()
    assert sorted(int(x) for x in numbers) == list(range(1, n + 1))
    # ORDEREDSUBJECT puts all of them in one flat thread under the first (RFC 5256 §3).
    got = c.cmd(b"o THREAD ORDEREDSUBJECT UTF-8 ALL")
    assert got[-1].startswith(b"o OK") and got[0].startswith(b"* THREAD (1 (2)(3)")
    assert c.cmd(b"n NOOP")[-1].startswith(b"n OK")
    c.close()
