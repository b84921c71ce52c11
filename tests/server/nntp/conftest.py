"""``srv``: a real Postroom runtime once per test module (``NNTP_SETTINGS`` in the module
adds lines to its ``[nntp]`` section)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing

import pytest
from nntp_harness import Harness, write_config


@pytest.fixture(scope="module")
def srv(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    pytest.importorskip("postroom.news.service")
    nntp = getattr(request.module, "NNTP_SETTINGS", "")
    with closing(Harness(write_config(tmp_path_factory.mktemp("nntpsrv"), nntp))) as h:
        yield h
