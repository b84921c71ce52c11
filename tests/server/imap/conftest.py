"""``srv``: a real Postroom runtime once per test module (``IMAP_SETTINGS`` in the module
replaces its ``[imap]`` section)."""

from __future__ import annotations

from contextlib import closing
from typing import Iterator

import pytest

from imap_harness import Harness, write_config


@pytest.fixture(scope="module")
def srv(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    imap = getattr(request.module, "IMAP_SETTINGS", "allow_plaintext_auth = true")
    with closing(Harness(write_config(tmp_path_factory.mktemp("imapsrv"), imap))) as h:
        yield h
