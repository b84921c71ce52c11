"""``srv``: a real Postroom runtime with HTTP and HTTPS listeners, once per test module."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing

import pytest
from http_harness import Harness, write_http_config


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    pytest.importorskip("aiohttp")
    with closing(Harness(write_http_config(tmp_path_factory.mktemp("httpsrv")))) as h:
        yield h
