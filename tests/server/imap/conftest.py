"""``srv``: a real Postroom runtime once per test module (``IMAP_SETTINGS`` in the module
replaces its ``[imap]`` section, ``LIMITS`` adds to its ``[limits]``)."""

from __future__ import annotations

from contextlib import closing
from typing import Iterator

import pytest

from imap_harness import Harness, write_config


@pytest.fixture(scope="module")
def srv(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    imap = getattr(request.module, "IMAP_SETTINGS", "allow_plaintext_auth = true")
    cfgp = write_config(tmp_path_factory.mktemp("imapsrv"), imap)
    limits = getattr(request.module, "LIMITS", "")
    if limits:
        cfgp.write_text(cfgp.read_text().replace("[limits]\n", f"[limits]\n{limits}\n", 1))
    with closing(Harness(cfgp)) as h:
        yield h
