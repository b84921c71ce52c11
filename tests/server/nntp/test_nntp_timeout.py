"""Before login the short ``[limits] idle_timeout`` applies; after it ``[nntp] idle_timeout``."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
from nntp_harness import Harness
from postroom_peer import write_config


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    pytest.importorskip("postroom.news.service")
    root: Path = tmp_path_factory.mktemp("nntpidle")
    cfg = write_config(root, """[limits]
idle_timeout = "1s"
auth_failures_per_ip = 1000
[mailauth]
check_listeners = []
[listeners.nntps]
address = "127.0.0.1:0"
tls = "implicit"
""", hostname="mail.example.test")
    with closing(Harness(cfg)) as h:
        yield h


def test_idle_before_login_is_disconnected(srv: Harness) -> None:
    with srv.client("implicit") as c:
        assert c.cmd("DATE")[0] == 111
        time.sleep(1.6)
        assert c.status()[0] == 400  # RFC 3977 §3.1: the server may close an idle session after 400
        assert c.closed()


def test_idle_after_login_is_kept(srv: Harness) -> None:
    acc = srv.new_user()
    with srv.login(acc, tls="implicit") as c:
        time.sleep(1.6)
        assert c.cmd("DATE")[0] == 111
