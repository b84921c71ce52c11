"""``srv``: a real Postroom runtime once per test module (``POP3_SETTINGS`` in the module
adds lines to its ``[pop3]`` section)."""

from __future__ import annotations

from contextlib import closing
from typing import Iterator

import pytest

from pop3_harness import Harness, write_config


@pytest.fixture(scope="module")
def srv(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    pytest.importorskip("postroom.server")
    pop3 = getattr(request.module, "POP3_SETTINGS", "")
    with closing(Harness(write_config(tmp_path_factory.mktemp("pop3srv"), pop3))) as h:
        yield h
