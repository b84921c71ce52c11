"""``srv``: a real Postroom runtime once per test module (``MANAGESIEVE_SETTINGS`` and
``SIEVE_SETTINGS``, ``LIMITS`` in the module add lines to the ``[managesieve]``, ``[sieve]`` and
``[limits]`` sections)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing

import pytest
from managesieve_harness import Harness, write_test_config


@pytest.fixture(scope="module")
def srv(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    cfg = write_test_config(tmp_path_factory.mktemp("sievesrv"), getattr(request.module, "MANAGESIEVE_SETTINGS", ""),
                            getattr(request.module, "SIEVE_SETTINGS", ""), getattr(request.module, "LIMITS", ""))
    with closing(Harness(cfg)) as h:
        yield h
