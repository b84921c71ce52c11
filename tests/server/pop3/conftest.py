"""``srv``: a real Postroom runtime once per test module (``POP3_SETTINGS`` in the module
adds lines to its ``[pop3]`` section)."""

from __future__ import annotations

from typing import Iterator

import pytest

from pop3_harness import Harness, write_config


@pytest.fixture(scope="module")
def srv(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    pytest.importorskip("postroom.server")
    pop3 = getattr(request.module, "POP3_SETTINGS", "")
    d = tmp_path_factory.mktemp("pop3srv")
    h = Harness(write_config(d, pop3))
    try:
        yield h
    finally:
        h.close()
