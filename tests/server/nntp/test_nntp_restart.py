"""Article numbers survive a server restart and are never reused (the group's UIDs)."""

from __future__ import annotations

from contextlib import closing
from pathlib import Path

import pytest
from nntp_harness import Harness, article, write_config

from postroom.storage.models import FlagOp


def test_article_numbers_after_restart(tmp_path: Path) -> None:
    pytest.importorskip("postroom.news.service")
    cfg = write_config(tmp_path)
    with closing(Harness(cfg)) as srv:
        g = srv.add_group()
        with srv.client("implicit") as c:
            mids = []
            for n in range(1, 4):
                code, text = c.post(article(g, n))
                assert code == 240, text
                mids.append(text.split()[-1])
        # the last article goes (cancel or expiry): its number must not come back
        box = srv.call(srv.news.get_group(g)).mailbox_id
        srv.call(srv.store.store_flags(box, [3], FlagOp.ADD, frozenset({"\\Deleted"})))
        srv.call(srv.store.expunge(box, [3]))
    with closing(Harness(cfg)) as srv, srv.client("implicit") as c:
        code, text = c.cmd(f"GROUP {g}")
        assert code == 211 and text.split()[:3] == ["2", "1", "3"]  # high never goes down
        assert c.cmd("STAT 1") == (223, f"1 {mids[0]}")
        assert c.cmd("STAT 2") == (223, f"2 {mids[1]}")
        assert c.cmd("STAT 3")[0] == 423
        assert c.cmd(f"STAT {mids[1]}") == (223, f"0 {mids[1]}")
        assert c.post(article(g, 4))[0] == 240
        assert c.cmd_multi(f"LISTGROUP {g}")[2] == [b"1", b"2", b"4"]
        # the history came through too: the old Message-ID is still a duplicate
        assert c.post(article(g, 5, mid=mids[0]))[0] == 441
